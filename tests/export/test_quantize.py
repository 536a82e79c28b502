"""int8 export: calibrated, accuracy-checked, picked by Predictor "auto", refused when stale."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from digitlab.checkpoints import save_checkpoint  # noqa: E402
from digitlab.errors import DigitlabError  # noqa: E402
from digitlab.export import export_int8  # noqa: E402
from digitlab.export.onnx import onnx_metadata  # noqa: E402
from digitlab.inference import Predictor  # noqa: E402
from digitlab.layout import INT8_ONNX as INT8_NAME  # noqa: E402


@pytest.fixture(scope="module")
def int8_run(trained_run, mnist, tmp_path_factory):
    """A copy of the trained run with its int8 model written by export_int8."""
    run = tmp_path_factory.mktemp("int8") / "run"
    shutil.copytree(trained_run, run)
    result = export_int8(run, dataset=mnist)
    return run, result


def test_int8_export_keeps_the_accuracy_and_records_how_it_was_made(int8_run, mnist):
    run, result = int8_run
    assert result.kept and result.path == run / INT8_NAME
    assert result.float_accuracy - result.int8_accuracy <= 0.001
    assert result.check_images == 5000 and result.calibration_images == 1000
    meta = onnx_metadata(result.path)
    quant = json.loads(meta["digitlab.quantization"])
    assert quant["calibration_images"] == 1000 and quant["weights"] == "int8 per-channel"
    assert len(quant["float_nodes"]) == 1  # the conv on the one-channel image stays float
    float_meta = json.loads(meta["digitlab.model"])
    assert float_meta["name"] == "cnn" and meta["digitlab.weights_sha256"]
    import onnx

    ops = {n.op_type for n in onnx.load(str(result.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "BatchNormalization" not in ops
    # an independent check on the test set: int8 and PyTorch agree on almost every image
    int8 = Predictor.load(run, backend="int8")
    torch_ = Predictor.load(run, backend="torch")
    x, y = mnist.x_test[:2000], mnist.y_test[:2000]
    agree = np.mean(int8.predict(x) == torch_.predict(x))
    assert agree >= 0.995, agree
    assert abs(np.mean(int8.predict(x) == y) - np.mean(torch_.predict(x) == y)) <= 0.004
    np.testing.assert_allclose(int8.predict_proba(x[:50]).sum(1), 1.0, atol=1e-5)


def test_auto_prefers_a_current_int8_model(int8_run, tmp_path):
    run, _ = int8_run
    p = Predictor.load(run, backend="auto")
    assert p.backend == "int8" and p.model_id == Predictor.load(run, backend="torch").model_id
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / INT8_NAME).unlink()
    assert Predictor.load(copy, backend="auto").backend == "onnx"
    with pytest.raises(DigitlabError, match=r"model\.int8\.onnx does not exist.*--int8"):
        Predictor.load(copy, backend="int8")


def test_stale_int8_model_is_refused_by_int8_and_skipped_by_auto(int8_run, tmp_path):
    import torch

    from digitlab.checkpoints import load_checkpoint

    run, _ = int8_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ckpt = load_checkpoint(copy)
    with torch.no_grad():
        next(ckpt.model.parameters()).add_(0.01)  # retrained weights: the int8 file is now stale
    save_checkpoint(copy, ckpt.model, {k: ckpt.meta.to_json()[k] for k in ("dataset", "class_names")})
    with pytest.raises(DigitlabError, match="other weights"):
        Predictor.load(copy, backend="int8")
    assert Predictor.load(copy, backend="auto").backend == "onnx"


def test_int8_is_not_kept_when_it_loses_accuracy(trained_run, mnist, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / INT8_NAME).unlink(missing_ok=True)  # the one `train` wrote
    result = export_int8(run, dataset=mnist, max_drop=-1.0, calibration_images=200, check_images=500)
    assert not result.kept and result.path is None and not (run / INT8_NAME).exists()
    assert "not kept" in result.summary() and result.check_images == 500
    assert Predictor.load(run, backend="auto").backend == "onnx"


@pytest.mark.parametrize(("int8_speed", "kept"), [(2000.0, True), (900.0, False)])
def test_require_faster_keeps_int8_only_when_it_serves_more_images(trained_run, mnist, tmp_path, monkeypatch,
                                                                    int8_speed, kept):
    """With require_faster, both models are timed against each other; int8 is written only when faster."""
    from digitlab.export import speed as benchmark

    timed: list[tuple[str, ...]] = []

    def fake_timing(predictors, x, *, batch_sizes, rounds, window_seconds):
        timed.append(tuple(sorted(predictors)))
        speeds = {"onnx": 1000.0, "int8": int8_speed}
        return {name: {b: [speeds[name]] * rounds for b in batch_sizes} for name in predictors}

    monkeypatch.setattr(benchmark, "interleaved_images_per_second", fake_timing)
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / INT8_NAME).unlink(missing_ok=True)
    result = export_int8(run, dataset=mnist, calibration_images=200, check_images=500, require_faster=True,
                         max_drop=1.0)  # speed alone decides here
    assert timed == [("int8", "onnx")]
    assert (result.int8_images_per_second, result.float_images_per_second) == (int8_speed, 1000.0)
    assert result.kept is kept and (run / INT8_NAME).exists() is kept
    assert ("no faster than float" in result.summary()) is (not kept)
