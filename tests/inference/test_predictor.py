"""Predictor and ONNX export: parity between PyTorch and ONNX Runtime on real MNIST images."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from digitlab.checkpoints import load_checkpoint
from digitlab.errors import DigitlabError
from digitlab.export import export_onnx
from digitlab.export.onnx import compare_onnx, onnx_metadata
from digitlab.inference import Predictor


def test_export_onnx_parity_and_dynamic_batch(cnn_run, mnist, tmp_path):
    out = export_onnx(cnn_run, tmp_path / "m.onnx")
    assert out.stat().st_size > 0
    meta = load_checkpoint(cnn_run).meta
    assert onnx_metadata(out)["digitlab.weights_sha256"] == meta.sha256
    for n in (1, 7, 300):  # batch axis is dynamic
        assert compare_onnx(cnn_run, out, mnist.x_test[:n]) < 1e-4


def test_torch_predictor_matches_the_model(cnn_run, mnist):
    x = mnist.x_test[:50]
    p = Predictor.load(cnn_run, backend="torch", batch_size=16)
    model = load_checkpoint(cnn_run).model
    with torch.no_grad():
        want = torch.softmax(model(torch.from_numpy(x).float().div(255).unsqueeze(1)), dim=1).numpy()
    proba = p.predict_proba(x)
    assert proba.dtype == np.float32 and proba.shape == (50, 10)
    np.testing.assert_allclose(proba, want, atol=1e-5)
    np.testing.assert_array_equal(p.predict(x), want.argmax(1))
    assert p.class_names == tuple(str(i) for i in range(10))
    sha = load_checkpoint(cnn_run).meta.sha256
    assert p.model_id == f"cnn-{sha[:12]}" and p.meta.model.name == "cnn"


def test_onnx_predictor_agrees_with_torch(cnn_run, mnist, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    x = mnist.x_test[:200]
    before = sorted(p.name for p in run.iterdir())
    t = Predictor.load(run, backend="torch")
    o = Predictor.load(run, backend="onnx")  # exports in memory (and to the user cache) on first use
    assert o.backend == "onnx" and sorted(p.name for p in run.iterdir()) == before  # the run is not written
    np.testing.assert_allclose(o.predict_proba(x), t.predict_proba(x), atol=1e-5)
    np.testing.assert_array_equal(o.predict(x), t.predict(x))
    assert o.model_id == t.model_id
    assert Predictor.load(run, backend="auto").backend == "onnx"


def test_stale_onnx_export_is_not_used(cnn_run, mnist, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(cnn_run, run)
    export_onnx(run)
    meta_before = onnx_metadata(run / "model.onnx")
    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    torch.manual_seed(1)  # "retrain": different weights in the same run directory
    save_checkpoint(run, build_model("cnn"), {"dataset": "mnist"})
    p = Predictor.load(run, backend="onnx")
    t = Predictor.load(run, backend="torch")
    x = mnist.x_test[:64]
    np.testing.assert_allclose(p.predict_proba(x), t.predict_proba(x), atol=1e-5)  # the new weights answer
    assert onnx_metadata(run / "model.onnx") == meta_before  # the stale file was left alone, not used
    assert not p.model_id.endswith(meta_before["digitlab.weights_sha256"][:12])


def test_predictor_rejects_bad_input_and_backend(cnn_run):
    p = Predictor.load(cnn_run, backend="torch")
    assert p.predict_proba(np.zeros((28, 28), np.uint8)).shape == (1, 10)  # one image
    with pytest.raises(ValueError, match="uint8"):
        p.predict_proba(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(DigitlabError, match="backend"):
        Predictor.load(cnn_run, backend="tensorflow")


@pytest.mark.parametrize(("dataset", "want"), [("fashion-mnist", "fashion"), ("mnist", "mnist"), ("kmnist", "mnist"),
                                               ("/data/my-idx-folder", "mnist"), (None, "mnist")])
def test_predictor_preprocessing_follows_the_checkpoint_dataset(tmp_path, dataset, want):
    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    meta = {"class_names": [str(i) for i in range(10)]}
    if dataset is not None:
        meta["dataset"] = dataset
    save_checkpoint(tmp_path, build_model("softmax"), meta)
    assert Predictor.load(tmp_path, backend="torch").preprocessing == want


def test_export_trims_conv_rows_the_pool_never_reads(cnn_run, mnist, tmp_path):
    """cnn 32-64-128: the 7x7 conv before a 2x2 pool computes 6x6 only; logits unchanged."""
    import onnx

    out = export_onnx(cnn_run, tmp_path / "m.onnx")
    pads = [[list(a.ints) for a in n.attribute if a.name == "pads"][0]
            for n in onnx.load(str(out)).graph.node if n.op_type == "Conv"]
    assert pads == [[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 0]]  # 28 -> 14 -> 7 (even) -> 7 (odd: trimmed)
    assert compare_onnx(cnn_run, out, mnist.x_test[:300]) < 1e-4
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": np.zeros((3, 1, 28, 28), np.float32)})[0].shape == (3, 10)
