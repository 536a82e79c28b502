"""obtain_datasets: every dataset a config needs is had before any work, or one line says how to get it."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from digitlab.data import registry
from digitlab.errors import DigitlabError
from digitlab.runs import obtain_datasets, train
from digitlab.training import TrainConfig


@pytest.fixture
def no_fashion(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fashion-MNIST unobtainable: an empty cache, offline, no system folder, no DIGITLAB_DATA_DIR."""
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")
    monkeypatch.delenv("DIGITLAB_DATA_DIR", raising=False)
    spec = dataclasses.replace(registry.DATASETS["fashion-mnist"], system_dirs=(tmp_path / "nowhere",))
    monkeypatch.setitem(registry.DATASETS, "fashion-mnist", spec)


def test_a_missing_outlier_dataset_is_one_line_before_any_file(mnist, no_fashion, tmp_path: Path) -> None:
    config = TrainConfig(model="softmax", epochs=1, train_size=200, validation_size=100, oe_weight=0.5,
                         oe_datasets=["fashion-mnist"], device="cpu")
    run_dir = tmp_path / "run"
    with pytest.raises(DigitlabError) as info:
        train(config, mnist, run_dir=run_dir)
    message = str(info.value)
    assert "\n" not in message and "fashion-mnist" in message and "outlier exposure" in message
    assert "apt-get install dataset-fashion-mnist" in message and "digitlab data fetch fashion-mnist" in message
    assert not run_dir.exists()  # nothing half-written


def test_the_cli_says_it_before_making_the_run(no_fashion, tmp_path: Path, capsys) -> None:
    from digitlab.cli import main

    run_dir = tmp_path / "run"
    assert main(["train", "--recipe", "fashion-cnn", "--run-dir", str(run_dir)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "apt-get install dataset-fashion-mnist" in err[0] and "to train on" in err[0]
    assert not run_dir.exists()


def test_obtained_datasets_come_back(mnist) -> None:
    config = TrainConfig(model="softmax")
    assert obtain_datasets(config, mnist) is mnist
