"""The checkpoint format: round trip, every accepted path form, and clear errors for damage."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from digitlab.checkpoints import load_checkpoint, read_meta, save_checkpoint
from digitlab.errors import DigitlabError
from digitlab.models import build_model, get_config


def _saved(tmp_path: Path, name: str = "lenet", **config) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(name, **config)
    save_checkpoint(tmp_path, model, {"dataset": "mnist", "class_names": list("0123456789"),
                                      "training": {"epochs": 1}, "metrics": {"val_accuracy": 0.5}})
    return model.eval(), tmp_path


@pytest.mark.parametrize("name", ["softmax", "mlp", "lenet", "cnn"])
def test_round_trip_outputs_identical(tmp_path: Path, name: str) -> None:
    model, run_dir = _saved(tmp_path, name)
    with torch.no_grad():  # make BatchNorm's running stats non-trivial so they must travel too
        for buf_name, buf in model.named_buffers():
            if buf.dtype.is_floating_point and buf_name.endswith(("running_mean", "running_var")):
                buf.uniform_(0.5, 1.5)
    save_checkpoint(run_dir, model, {"dataset": "mnist"})
    x = torch.rand(5, 1, 28, 28)
    for path in (run_dir, run_dir / "model.json", run_dir / "model.safetensors"):
        ckpt = load_checkpoint(path)
        assert not ckpt.model.training
        assert ckpt.run_dir == run_dir
        assert torch.equal(ckpt.model(x), model(x))


def test_model_json_contract(tmp_path: Path) -> None:
    _, run_dir = _saved(tmp_path, "cnn", channels=[8, 16, 32])
    meta = json.loads((run_dir / "model.json").read_text())
    for key in ("format", "model", "num_classes", "class_names", "dataset", "input", "training",
                "metrics", "versions", "created"):
        assert key in meta
    assert meta["format"] == 1
    assert meta["model"] == {"name": "cnn", "config": get_config(build_model("cnn", channels=[8, 16, 32]))}
    assert meta["input"] == {"shape": [1, 28, 28], "scale": "pixels/255", "mean": 0.1307, "std": 0.3081}
    assert meta["class_names"] == list("0123456789")
    assert read_meta(run_dir).metrics == {"val_accuracy": 0.5}


def test_no_pickle_in_weights(tmp_path: Path) -> None:
    _, run_dir = _saved(tmp_path)
    from safetensors import safe_open

    with safe_open(run_dir / "model.safetensors", framework="pt") as fh:
        assert set(fh.keys()) == set(build_model("lenet").state_dict())


def _expect_error(path: Path, *fragments: str) -> None:
    with pytest.raises(DigitlabError) as info:
        load_checkpoint(path)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_files(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope", "no such file")
    _, run_dir = _saved(tmp_path)
    (run_dir / "model.safetensors").unlink()
    _expect_error(run_dir, "model.safetensors", "missing")


def test_bad_json(tmp_path: Path) -> None:
    _, run_dir = _saved(tmp_path)
    (run_dir / "model.json").write_text("{not json")
    _expect_error(run_dir, "model.json", "not valid JSON")


def test_unknown_model(tmp_path: Path) -> None:
    _, run_dir = _saved(tmp_path)
    meta = json.loads((run_dir / "model.json").read_text())
    meta["model"]["name"] = "transformer"
    (run_dir / "model.json").write_text(json.dumps(meta))
    _expect_error(run_dir, "transformer", "unknown")


def test_shape_mismatch(tmp_path: Path) -> None:
    _, run_dir = _saved(tmp_path, "mlp", hidden=[64])
    meta = json.loads((run_dir / "model.json").read_text())
    meta["model"]["config"]["hidden"] = [32]
    del meta["weights"]  # a hand-edited model.json without the hash: the shapes must still be checked
    (run_dir / "model.json").write_text(json.dumps(meta))
    _expect_error(run_dir, "does not fit model 'mlp'")


def test_truncated_weights(tmp_path: Path) -> None:
    _, run_dir = _saved(tmp_path)
    path = run_dir / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    _expect_error(run_dir, "SHA-256")
    meta = json.loads((run_dir / "model.json").read_text())
    del meta["weights"]
    (run_dir / "model.json").write_text(json.dumps(meta))
    _expect_error(run_dir, "not a readable safetensors")


def test_weights_from_another_run(tmp_path: Path) -> None:
    _, a = _saved(tmp_path / "a")
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "b", build_model("lenet"), {})
    (a / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    _expect_error(a, "does not match")
