"""Keras-style progress of `train`: verbose 0 silent, 2 one line per epoch, 1 a bar too."""
from __future__ import annotations

import io
import sys
import types

import pytest

from digitlab.runs import train
from digitlab.training import Progress, TrainConfig, format_epoch

SMALL = {"train_size": 2000, "validation_size": 500, "batch_size": 100, "device": "cpu", "threads": 1}


def _events() -> list[dict]:
    record = {"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.8, "val_loss": 0.4, "val_accuracy": 0.85,
              "lr": 0.1, "elapsed": 1.0}
    return [{"event": "epoch_start", "epoch": 1, "epochs": 1, "steps": 20},
            *({"event": "step", "epoch": 1, "step": i, "batch": i, "loss": 0.5, "accuracy": 0.8, "lr": 0.1}
              for i in range(10, 21, 10)),
            {"event": "epoch_end", "epoch": 1, "epochs": 1, "metrics": record}]


@pytest.mark.parametrize("verbose", [0, 1, 2])
def test_verbose_levels(verbose: int) -> None:
    lines, bar = io.StringIO(), io.StringIO()
    progress = Progress(verbose, lines=lines, bar=bar)
    for event in _events():
        progress(event)
    want = format_epoch(_events()[-1]["metrics"], 1) + "\n"
    assert lines.getvalue() == ("" if verbose == 0 else want)
    assert ("epoch 1/1" in bar.getvalue()) == (verbose == 1)  # only verbose 1 draws a bar


def test_auto_is_a_line_per_epoch_when_not_a_terminal() -> None:
    assert Progress("auto", lines=io.StringIO(), bar=io.StringIO()).verbose == 2
    with pytest.raises(ValueError, match="verbose"):
        Progress(3)


def test_auto_asks_for_a_running_kernel_not_an_imported_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test suite that imports ipykernel (to run a notebook in a child) is still not a notebook;
    a running kernel (IPython's shell with a kernel) is."""
    def auto() -> int:
        return Progress("auto", lines=io.StringIO(), bar=io.StringIO()).verbose

    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    fake_ipython = types.ModuleType("IPython")
    fake_ipython.get_ipython = lambda: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake_ipython)
    assert auto() == 2
    fake_ipython.get_ipython = lambda: types.SimpleNamespace(kernel=object())  # type: ignore[attr-defined]
    assert auto() == 1


def test_train_prints_like_keras_fit(mnist, capsys) -> None:
    result = train(TrainConfig(**SMALL, model="softmax", epochs=2, lr=0.1), mnist, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert out == [format_epoch(r, 2) for r in result.history]
    train(TrainConfig(**SMALL, model="softmax", epochs=1, lr=0.1), mnist, verbose=0)
    assert capsys.readouterr().out == ""
