"""The training loop on small MNIST slices: records, reproducibility, resume, early stopping."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from digitlab.checkpoints import load_checkpoint
from digitlab.errors import DigitlabError
from digitlab.runs import train
from digitlab.training import TrainConfig

# A few seconds each: 1,000 training images, 500 validation images, one thread (the CPU is shared).
SMALL = dict(train_size=1000, validation_size=500, batch_size=100, device="cpu", threads=1)
TINY_CNN = dict(model="cnn", model_config={"channels": [4, 8, 16], "dropout": 0.2})


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_records_and_run_dir(mnist, tmp_path: Path) -> None:
    config = TrainConfig(**SMALL, **TINY_CNN, epochs=2, optimizer="adam", lr=3e-3, track_test=True,
                         eval_every_steps=4)
    result = train(config, mnist, run_dir=tmp_path)
    records = _jsonl(tmp_path / "metrics.jsonl")
    assert records == result.history and [r["epoch"] for r in records] == [1, 2]
    for r in records:
        for key in ("epoch", "elapsed", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                    "test_accuracy"):
            assert key in r, key
        assert 0 <= r["val_accuracy"] <= 1 and r["elapsed"] > 0
    assert records[1]["elapsed"] > records[0]["elapsed"] and records[1]["step"] == 20
    assert records[1]["val_loss"] < records[0]["val_loss"] < 2.3
    assert [r["step"] for r in result.step_history] == [4, 8, 12, 16, 20]
    assert _jsonl(tmp_path / "steps.jsonl") == result.step_history
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.meta.training == config.to_dict()
    assert ckpt.meta.metrics["val_accuracy"] == records[-1]["val_accuracy"]
    for a, b in zip(ckpt.model.state_dict().values(), result.model.state_dict().values()):
        assert torch.equal(a, b)
    # validation accuracy is what the returned model gets on the first 500 training images
    x = torch.from_numpy(mnist.x_train[:500]).float().div(255).unsqueeze(1)
    acc = (result.model(x).argmax(1).numpy() == mnist.y_train[:500]).mean()
    assert acc == pytest.approx(records[-1]["val_accuracy"])


def test_test_set_untouched_by_default(mnist) -> None:
    result = train(TrainConfig(**SMALL, model="softmax", epochs=1, lr=0.1), mnist)
    assert "test_accuracy" not in result.history[0]


def test_max_steps_stops_mid_epoch(mnist) -> None:
    result = train(TrainConfig(**SMALL, model="softmax", epochs=5, max_steps=13, lr=0.1), mnist)
    assert result.steps == 13 and [r["epoch"] for r in result.history] == [1, 2]


def test_same_seed_same_weights(mnist) -> None:
    config = TrainConfig(**SMALL, **TINY_CNN, epochs=1, augment=True, seed=3)
    a, b = train(config, mnist), train(config, mnist)
    assert all(torch.equal(x, y) for x, y in zip(_weights(a.model).values(), _weights(b.model).values()))
    c = train(config.replace(seed=4), mnist)
    assert not torch.equal(_weights(a.model)["layers.1.weight"], _weights(c.model)["layers.1.weight"])


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_equals_uninterrupted(mnist, tmp_path: Path, optimizer: str) -> None:
    """Interrupt in epoch 3, resume: the final weights equal an uninterrupted run's, bit for bit."""
    config = TrainConfig(**SMALL, **TINY_CNN, epochs=4, optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 3e-3,
                         schedule="onecycle", augment=True, weight_decay=1e-4, progress_every=1, seed=7)
    full = train(config, mnist, run_dir=tmp_path / "full")

    def interrupt(event: dict) -> None:
        if event["event"] == "step" and event["epoch"] == 3 and event["batch"] == 4:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, mnist, run_dir=tmp_path / "cut", callback=interrupt)
    assert [r["epoch"] for r in _jsonl(tmp_path / "cut" / "metrics.jsonl")] == [1, 2]
    assert load_checkpoint(tmp_path / "cut").meta.metrics["epoch"] == 2  # the last complete epoch survives
    resumed = train(config, mnist, run_dir=tmp_path / "cut", resume=True)
    for key, value in _weights(full.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    strip = lambda rs: [{k: v for k, v in r.items() if k != "elapsed"} for r in rs]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert strip(_jsonl(tmp_path / "cut" / "metrics.jsonl")) == strip(full.history)


def test_resume_errors(mnist, tmp_path: Path) -> None:
    config = TrainConfig(**SMALL, model="softmax", epochs=1, lr=0.1)
    with pytest.raises(DigitlabError, match="train_state.json"):
        train(config, mnist, run_dir=tmp_path, resume=True)
    train(config, mnist, run_dir=tmp_path)
    with pytest.raises(DigitlabError, match=r"config differs .*'lr'"):
        train(config.replace(lr=0.2), mnist, run_dir=tmp_path, resume=True)
    (tmp_path / "train_state.safetensors").write_bytes(b"garbage")
    with pytest.raises(DigitlabError, match="does not match"):
        train(config, mnist, run_dir=tmp_path, resume=True)


def test_early_stopping(mnist) -> None:
    """A learning rate far too large makes val_loss worse every epoch: stop after `patience` of them."""
    config = TrainConfig(**SMALL, model="softmax", model_config={"init": "zeros"}, epochs=20, lr=50.0,
                         momentum=0.9, patience=2)
    result = train(config, mnist)
    assert result.stopped_early and len(result.history) < 20
    losses = [r["val_loss"] for r in result.history]
    best = losses.index(min(losses))
    assert len(losses) == best + 1 + 2


def test_label_smoothing_changes_training_loss_only(mnist) -> None:
    base = TrainConfig(**SMALL, model="softmax", epochs=1, lr=0.1, max_steps=1)
    plain, smooth = train(base, mnist), train(base.replace(label_smoothing=0.2), mnist)
    # the first step's loss (zero init: uniform predictions) is log(10) for any smoothing
    assert plain.history[0]["train_loss"] == pytest.approx(smooth.history[0]["train_loss"], rel=1e-6)
    assert plain.history[0]["val_loss"] != smooth.history[0]["val_loss"]


def test_bad_inputs(mnist) -> None:
    with pytest.raises(DigitlabError, match="batch_size=100000 exceeds"):
        train(TrainConfig(**{**SMALL, "batch_size": 100000}, model="softmax", drop_last=True), mnist)
    with pytest.raises(DigitlabError, match="device 'tpu'"):
        train(TrainConfig(**{**SMALL, "device": "tpu"}, model="softmax"), mnist)


KILL_SCRIPT = """
import json, os, signal, sys
from digitlab.data import load
from digitlab.training import TrainConfig
from digitlab.runs import train

def kill_in_epoch_3(event):
    if event["event"] == "step" and event["epoch"] == 3 and event["batch"] == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: as a power cut would

train(TrainConfig.from_dict(json.loads(sys.argv[1])), load("mnist", data_dir=sys.argv[2]),
      run_dir=sys.argv[3], callback=kill_in_epoch_3)
"""


def test_resume_after_sigkill(mnist, mnist_dir: Path, tmp_path: Path) -> None:
    """A process killed with SIGKILL mid-epoch leaves a loadable checkpoint; resuming ends bitwise equal."""
    import subprocess
    import sys

    config = TrainConfig(**SMALL, **TINY_CNN, epochs=4, optimizer="adamw", lr=3e-3, schedule="onecycle",
                         augment=True, progress_every=1, seed=11)
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, json.dumps(config.to_dict()), str(mnist_dir),
                           str(tmp_path / "killed")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert load_checkpoint(tmp_path / "killed").meta.metrics["epoch"] == 2
    resumed = train(config, mnist, run_dir=tmp_path / "killed", resume=True)
    full = train(config, mnist)
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_update_ema_is_the_moving_average() -> None:
    """e <- d e + (1 - d) m for float tensors, with d ramped up over the first steps; integer buffers copied."""
    from digitlab.training.step import EMA_WARMUP, update_ema

    torch.manual_seed(0)
    model, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    model(torch.rand(8, 3))  # running stats and a batch count in the model
    with torch.no_grad():
        model.weight.copy_(torch.rand(3))
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    for step, decay in ((0, 0.999), (5000, 0.999), (5000, 0.5)):
        d = min(decay, (1 + step) / (EMA_WARMUP + step))
        want = {k: d * before[k] + (1 - d) * v if v.dtype.is_floating_point else v
                for k, v in model.state_dict().items()}
        update_ema(ema, model, decay, step)
        for key, value in ema.state_dict().items():
            assert torch.allclose(value.float(), want[key].float(), atol=1e-6), key
        before = {k: v.clone() for k, v in ema.state_dict().items()}


def test_ema_model_is_evaluated_saved_and_resumed(mnist, tmp_path: Path) -> None:
    """With `ema`, the returned and saved model is the average (not the raw weights), and a resumed run
    ends with the same average as an uninterrupted one."""
    config = TrainConfig(**SMALL, **TINY_CNN, epochs=3, optimizer="adamw", lr=3e-3, schedule="onecycle",
                         ema=0.9, progress_every=1, seed=5)
    full = train(config, mnist, run_dir=tmp_path / "full")
    saved = load_checkpoint(tmp_path / "full").model.state_dict()
    assert all(torch.equal(v, saved[k]) for k, v in _weights(full.model).items())
    plain = train(config.replace(ema=0.0), mnist)
    assert not torch.equal(_weights(plain.model)["layers.1.weight"], _weights(full.model)["layers.1.weight"])

    def interrupt(event: dict) -> None:
        if event["event"] == "step" and event["epoch"] == 2 and event["batch"] == 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train(config, mnist, run_dir=tmp_path / "cut", callback=interrupt)
    resumed = train(config, mnist, run_dir=tmp_path / "cut", resume=True)
    for key, value in _weights(full.model).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
