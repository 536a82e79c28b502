"""The end of a run: temperature and rejection threshold fitted on validation, stored once, used by Predictor."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.checkpoints import load_checkpoint
from digitlab.evaluation.calibration import fit_temperature
from digitlab.inference import Predictor
from digitlab.inference.rejection import BLANK, energy
from digitlab.models.runner import predict_logits, softmax


def _meta(run: Path) -> dict:
    return json.loads((run / "model.json").read_text())


def test_temperature_is_fitted_on_validation_and_stored(trained_run: Path, mnist) -> None:
    meta, report = _meta(trained_run), json.loads((trained_run / "report.json").read_text())
    n_val = meta["training"]["validation_size"]
    model = load_checkpoint(trained_run).model
    want = fit_temperature(predict_logits(model, mnist.x_train[:n_val]), mnist.y_train[:n_val])
    assert meta["calibration"]["temperature"] == pytest.approx(want, rel=1e-5)  # reloaded: logits equal to ~1e-6
    cal = report["calibration"]
    assert cal["temperature"] == meta["calibration"]["temperature"] and cal["n_validation"] == n_val
    assert cal["n"] == len(mnist.y_test) and cal["ece_after"] < cal["ece_before"]
    assert (trained_run / "reliability.png").is_file()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_predictor_probabilities_are_softmax_of_logits_over_t(trained_run: Path, mnist, backend: str) -> None:
    predictor = Predictor.load(trained_run, backend=backend)
    t = _meta(trained_run)["calibration"]["temperature"]
    assert predictor.temperature == t != 1.0
    x = mnist.x_test[:50]
    logits = predictor.predict_logits(x).astype(np.float64)
    z = logits / t
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(predictor.predict_proba(x), want, atol=1e-6)
    p = predictor.predict_prepared(x[:3])
    np.testing.assert_allclose([q.probabilities for q in p], want[:3], atol=1e-6)


def test_rejection_threshold_keeps_the_validation_share(trained_run: Path, mnist) -> None:
    meta = _meta(trained_run)
    rule, n_val = meta["rejection"], meta["training"]["validation_size"]
    t = meta["calibration"]["temperature"]
    assert rule["method"] == "energy" and rule["temperature"] == t  # the energy of the calibrated logits
    scores = energy(predict_logits(load_checkpoint(trained_run).model, mnist.x_train[:n_val]), t)
    # the fixture fits on validation images only: the smallest threshold keeping `keep` of them
    assert rule["fitted_on"] == {"validation": n_val} and rule["keep"] == {"validation": 0.99}
    assert rule["threshold"] == pytest.approx(np.quantile(scores, 0.99, method="inverted_cdf"), rel=1e-5)
    report = json.loads((trained_run / "report.json").read_text())["rejection"]
    assert report["threshold"] == rule["threshold"]
    other = report["other_dataset"]
    assert other["dataset"] == "fashion-mnist" and 0.5 < other["auroc"] <= 1


@pytest.fixture
def old_run(trained_run: Path, tmp_path: Path) -> Path:
    """The fixture's checkpoint as an older digitlab wrote it: no calibration, no rejection in model.json."""
    run = tmp_path / "old"
    run.mkdir()
    shutil.copy(trained_run / "model.safetensors", run)
    meta = _meta(trained_run)
    del meta["calibration"], meta["rejection"]
    (run / "model.json").write_text(json.dumps(meta))
    return run


def test_old_checkpoints_load_and_never_reject_by_score(old_run: Path, mnist) -> None:
    predictor = Predictor.load(old_run, backend="torch")
    assert predictor.temperature == 1.0 and predictor.rejection is None
    noise = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)  # nothing like a digit
    x = np.concatenate([noise, mnist.x_test[:20]])
    predictions = predictor.predict_prepared(x)
    assert not any(p.rejected for p in predictions)
    np.testing.assert_allclose(predictor.predict_proba(x), softmax(predictor.predict_logits(x)), atol=1e-7)
    # the ink checks still apply: a blank picture is rejected, and a per-request threshold works
    blank = predictor.predict_image(Image.new("RGB", (64, 64), "white"))
    assert blank.rejected and blank.reason == BLANK
    assert all(p.rejected for p in predictor.predict_prepared(noise, reject_threshold=-1e9))


def test_blank_picture_is_a_rejected_prediction(trained_run: Path) -> None:
    predictor = Predictor.load(trained_run, backend="torch")
    p = predictor.predict_image(np.full((80, 60), 255, np.uint8))
    assert p.rejected and p.reason == BLANK and p.model_id == predictor.model_id
    assert predictor.predict_prepared(np.zeros((1, 28, 28), np.uint8))[0].reason == BLANK


def test_heldout_nondigits_are_rejected_and_test_digits_kept(trained_run: Path, mnist) -> None:
    """The fixture model (outlier exposure on a few train-split synth pictures and Fashion-MNIST) against
    non-digits of the held-out split (other fonts, symbols and shapes) and MNIST test digits."""
    from digitlab.synth import build_set
    from digitlab.training.outliers import NONDIGIT_CONDITIONS

    predictor = Predictor.load(trained_run, backend="torch")
    pictures = [s.image for c in NONDIGIT_CONDITIONS for s in build_set(c, 8, seed=0, split="heldout", max_side=320)]
    nondigits = [p for p in predictor.predict_images(pictures)]
    digits = predictor.predict_prepared(mnist.x_test[:2000])
    nondigit_share = np.mean([p.rejected for p in nondigits])
    digit_share = np.mean([p.rejected for p in digits])
    assert nondigit_share >= 0.2 and digit_share <= 0.03, (nondigit_share, digit_share)  # loose: a 2-epoch model
    assert {p.reason for p in nondigits if p.rejected} <= {"not a digit", "several objects", "blank"}
    assert all(p.reason is None for p in digits if not p.rejected)
