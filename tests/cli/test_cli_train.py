"""`digitlab train`: help names defaults, recipes list, dry run, a short real run, resume."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from digitlab.cli import build_parser, main
from digitlab.training import RECIPES, recipe_config


def test_every_option_names_its_default() -> None:
    import argparse

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train_parser = sub.choices["train"]
    for action in train_parser._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in (action.help or ""), action.option_strings


def test_list_recipes(capsys) -> None:
    assert main(["train", "--list-recipes"]) == 0
    out = capsys.readouterr().out
    for name in RECIPES:
        assert name in out


def test_dry_run(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", "--dry-run", "--data-dir", str(mnist_dir), "--run-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "reloaded checkpoint" in out and (tmp_path / "model.safetensors").is_file()
    assert (tmp_path / "report.json").is_file()


def test_short_run_saves_evaluates_reloads(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    args = ["train", "--recipe", "tf-softmax-25", "--epochs", "2", "--data-dir", str(mnist_dir),
            "--run-dir", str(run), "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Epoch   2/2" in out
    report = json.loads((run / "report.json").read_text())
    meta = json.loads((run / "model.json").read_text())
    assert meta["metrics"]["test_accuracy"] == report["accuracy"] > 0.3  # N(0, 1) init learns slowly
    assert f"reloaded checkpoint: test accuracy {report['accuracy']:.4f}" in out
    assert list(run.glob("*.png"))
    # the int8 export ran and the file exists exactly when the printed verdict says it was kept
    line = next(text for text in out.splitlines() if text.startswith("int8 export: accuracy"))
    assert (run / "model.int8.onnx").is_file() == line.endswith(str(run / "model.int8.onnx"))
    # --resume on the finished run: nothing left to train, the saved config is used
    assert main(["train", "--resume", "--run-dir", str(run), "--data-dir", str(mnist_dir), "--no-plots"]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_without_state(tmp_path: Path, capsys) -> None:
    assert main(["train", "--resume", "--run-dir", str(tmp_path)]) == 1
    assert "train_state.json" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--recipe", "nope"], ["--model", "resnet"]])
def test_bad_arguments(bad: list[str], mnist_dir: Path, tmp_path: Path, capsys) -> None:
    assert main(["train", *bad, "--data-dir", str(mnist_dir), "--run-dir", str(tmp_path), "--dry-run"]) == 1
    assert "digitlab: error:" in capsys.readouterr().err


def test_help_quotes_the_cnn_recipe() -> None:
    """The help's "e.g. cnn: X" examples are the cnn recipe's actual values."""
    import argparse

    from digitlab.training import recipe_config

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub.choices["train"]._actions}
    cnn = recipe_config("cnn")
    for dest in ("epochs", "batch_size", "lr", "optimizer", "schedule"):
        assert f"cnn: {getattr(cnn, dest)})" in helps[dest], dest


def test_print_config_round_trips_through_config_and_set(tmp_path: Path, capsys) -> None:
    """--print-config writes TOML that --config reads back to the same config; --set wins over both."""
    from digitlab.training import TrainConfig

    assert main(["train", "--recipe", "cnn", "--epochs", "3", "--print-config"]) == 0
    text = capsys.readouterr().out
    assert TrainConfig.from_toml(text) == recipe_config("cnn", epochs=3)
    path = tmp_path / "run.toml"
    path.write_text(text.replace("epochs = 3", "epochs = 2"))
    args = ["train", "--config", str(path), "--set", "weight_decay=0.01", "--set", "augment=false",
            "--set", "model_config={channels=[8, 16]}", "--print-config"]
    assert main(args) == 0
    got = TrainConfig.from_toml(capsys.readouterr().out)
    assert got == recipe_config("cnn", epochs=2, weight_decay=0.01, augment=False, model_config={"channels": [8, 16]})


@pytest.mark.parametrize(("setting", "message"), [
    ("weight_decy=0.1", "did you mean 'weight_decay'"),
    ("epochs=ten", "epochs"),
    ("noequals", "KEY=VALUE"),
])
def test_bad_settings_are_one_clear_error(setting: str, message: str, capsys) -> None:
    assert main(["train", "--set", setting, "--print-config"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("digitlab: error:") and message in err and len(err.splitlines()) == 1


def test_misspelt_recipe_suggests_the_closest(capsys) -> None:
    assert main(["train", "--recipe", "fashoin-cnn", "--print-config"]) == 1
    assert "did you mean 'fashion-cnn'" in capsys.readouterr().err


def test_existing_run_is_not_overwritten_without_overwrite(mnist_dir: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "run"
    base = ["train", "--recipe", "tf-softmax", "--set", "max_steps=20", "--data-dir", str(mnist_dir),
            "--run-dir", str(run), "--no-plots", "--verbose", "2"]
    assert main(base) == 0
    assert (run / "config.toml").is_file() and "max_steps = 20" in (run / "config.toml").read_text()
    first = (run / "model.json").read_bytes()
    capsys.readouterr()
    assert main(base) == 1
    assert "--overwrite" in capsys.readouterr().err and (run / "model.json").read_bytes() == first
    assert main([*base, "--overwrite"]) == 0


def test_tensorboard_scalars_and_images(mnist_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    assert main(["train", "--recipe", "tf-softmax", "--set", "max_steps=1200", "--data-dir", str(mnist_dir),
                 "--run-dir", str(run), "--tensorboard", "--verbose", "0"]) == 0
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"loss/train", "loss/validation", "accuracy/validation", "learning_rate"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("loss/train")] == [1, 2]
    assert "plots/predictions" in tags["images"]
