"""Calibration against independent computations: a grid search, SciPy, scikit-learn and hand-worked cases."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax as scipy_log_softmax
from scipy.special import softmax as scipy_softmax
from sklearn.metrics import log_loss

from digitlab.errors import DigitlabError
from digitlab.evaluation.calibration import (
    T_MAX,
    T_MIN,
    ReliabilityBins,
    calibrate,
    calibration_metrics,
    calibration_report,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_bins,
)


def _known_temperature_data(t0: float, n: int = 6000, c: int = 10, seed: int = 0):
    """Logits z (n, c) and labels drawn from softmax(z / t0): the NLL-optimal temperature is about t0."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=4.0, size=(n, c))
    p = scipy_softmax(z / t0, axis=1)
    y = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z, y


def _reference_nll(z: np.ndarray, y: np.ndarray, t: float) -> float:
    """Mean NLL of softmax(z / t) through SciPy's log-softmax: independent of digitlab's."""
    return float(-scipy_log_softmax(z / t, axis=1)[np.arange(len(y)), y].mean())


@pytest.mark.parametrize("t0", [0.5, 2.0])
def test_fit_temperature_recovers_the_true_one_and_beats_every_grid_point(t0):
    z, y = _known_temperature_data(t0)
    t = fit_temperature(z, y)
    assert t == pytest.approx(t0, rel=0.05)
    grid = np.geomspace(t0 / 2, t0 * 2, 601)  # ratio between neighbours 1.0023
    nll_grid = np.array([_reference_nll(z, y, g) for g in grid])
    assert _reference_nll(z, y, t) <= nll_grid.min() + 1e-12
    best = grid[nll_grid.argmin()]
    assert abs(np.log(t / best)) <= np.log(grid[1] / grid[0])  # the fit lies next to the grid's best


def test_fit_temperature_matches_scipy_bounded_minimisation_and_is_deterministic():
    z, y = _known_temperature_data(1.3, n=3000, c=7, seed=4)
    res = minimize_scalar(lambda log_t: _reference_nll(z, y, np.exp(log_t)), bounds=(np.log(T_MIN), np.log(T_MAX)),
                          method="bounded", options={"xatol": 1e-10})
    t = fit_temperature(z.astype(np.float32), y)
    assert t == pytest.approx(float(np.exp(res.x)), rel=1e-5)
    assert fit_temperature(z.astype(np.float32), y) == t


def test_fit_temperature_returns_the_bounds_when_the_optimum_lies_beyond():
    right = np.array([[8.0, 0.0, 0.0], [0.0, 9.0, 0.0]])  # all right with a margin: the NLL falls as T -> 0
    assert fit_temperature(right, np.array([0, 1])) == T_MIN
    wrong = np.array([[5.0, 0.0], [0.0, 5.0]])  # all confidently wrong: the NLL falls as T -> infinity
    assert fit_temperature(wrong, np.array([1, 0])) == T_MAX


def test_fit_temperature_checks_shapes():
    with pytest.raises(ValueError, match="shape"):
        fit_temperature(np.zeros((3, 4)), np.zeros(2, dtype=int))
    with pytest.raises(ValueError, match="labels must be in"):
        fit_temperature(np.zeros((2, 4)), np.array([0, 4]))


def test_ece_and_bins_of_a_hand_worked_case():
    # Five equal-width bins: (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]; top probability -> bin.
    proba = np.array([
        [0.90, 0.05, 0.05],  # top .90, bin 4, right
        [0.10, 0.85, 0.05],  # top .85, bin 4, wrong (label 0)
        [0.50, 0.30, 0.20],  # top .50, bin 2, right
        [0.30, 0.25, 0.45],  # top .45, bin 2, right
        [0.35, 0.33, 0.32],  # top .35, bin 1, wrong (label 1)
        [0.80, 0.10, 0.10],  # top .80 exactly: bins are closed on the right, so bin 3; right
    ])
    y = np.array([0, 0, 0, 2, 1, 0])
    bins = reliability_bins(proba, y, n_bins=5)
    assert bins.count.tolist() == [0, 1, 2, 1, 2]
    np.testing.assert_allclose(bins.confidence[1:], [0.35, 0.475, 0.80, 0.875])
    np.testing.assert_allclose(bins.accuracy[1:], [0.0, 1.0, 1.0, 0.5])
    assert np.isnan(bins.confidence[0]) and np.isnan(bins.accuracy[0])
    # ECE = (1 * |0 - .35| + 2 * |1 - .475| + 1 * |1 - .8| + 2 * |.5 - .875|) / 6 = 2.35 / 6
    assert expected_calibration_error(proba, y, n_bins=5) == pytest.approx(2.35 / 6)


def test_ece_with_the_default_15_bins_of_an_over_confident_model():
    # Ten predictions at 0.99, nine of them right: one bin, |0.9 - 0.99| = 0.09.
    proba = np.tile([0.99, 0.01], (10, 1))
    y = np.array([0] * 9 + [1])
    assert expected_calibration_error(proba, y) == pytest.approx(0.09)
    assert reliability_bins(proba, y).count.tolist() == [0] * 14 + [10]


def test_reliability_bins_survive_json():
    proba = np.array([[0.9, 0.1], [0.6, 0.4]])
    bins = reliability_bins(proba, np.array([0, 1]), n_bins=4)
    text = json.dumps(bins.to_dict(), allow_nan=False)  # empty bins are null, not NaN
    back = ReliabilityBins.from_dict(json.loads(text))
    for a, b in zip((bins.edges, bins.confidence, bins.accuracy, bins.count),
                    (back.edges, back.confidence, back.accuracy, back.count)):
        np.testing.assert_array_equal(a, b)
    assert back.ece == bins.ece


def test_nll_matches_sklearn_log_loss():
    rng = np.random.default_rng(5)
    logits = rng.normal(scale=3.0, size=(400, 6))
    y = rng.integers(0, 6, 400)
    proba = scipy_softmax(logits, axis=1)
    want = log_loss(y, proba, labels=range(6))
    assert negative_log_likelihood(proba, y) == pytest.approx(want, rel=1e-12)
    assert negative_log_likelihood(logits, y, from_logits=True) == pytest.approx(want, rel=1e-9)


def test_nll_from_logits_is_finite_where_the_probability_underflows():
    logits = np.array([[0.0, 2000.0]])  # p(label 0) = e^-2000: 0.0 in float64
    assert negative_log_likelihood(logits, np.array([0]), from_logits=True) == pytest.approx(2000.0)


def test_calibration_report_fits_on_validation_and_measures_on_test():
    z, y = _known_temperature_data(2.0, n=12_000, seed=7)  # labels noisier than the logits say: over-confident
    val, test = slice(0, 4000), slice(4000, None)
    report = calibration_report(z[val], y[val], z[test], y[test])
    assert report["temperature"] == fit_temperature(z[val], y[val])
    assert report["n_validation"] == 4000 and report["n"] == 8000 and report["n_bins"] == 15
    assert report["accuracy"] == pytest.approx(np.mean(z[test].argmax(1) == y[test]))
    p_test = scipy_softmax(z[test], axis=1)
    assert report["ece_before"] == pytest.approx(expected_calibration_error(p_test, y[test]))
    assert report["nll_before"] == pytest.approx(log_loss(y[test], p_test, labels=range(10)))
    p_after = scipy_softmax(z[test] / report["temperature"], axis=1)
    assert report["nll_after"] == pytest.approx(log_loss(y[test], p_after, labels=range(10)))
    assert report["ece_after"] < 0.02 < report["ece_before"]
    assert report["nll_after"] < report["nll_before"]
    json.dumps(report, allow_nan=False)  # goes into report.json as is


def test_calibrate_gives_the_model_json_section_and_needs_validation_data():
    z, y = _known_temperature_data(0.7, n=2000)
    result = calibrate(z[:1000], y[:1000], z[1000:], y[1000:])
    assert result.meta == {"temperature": result.temperature}
    assert result.report == calibration_metrics(z[1000:], y[1000:], result.temperature) | {"n_validation": 1000}
    with pytest.raises(DigitlabError, match="validation"):
        calibrate(z[:0], y[:0], z, y)
