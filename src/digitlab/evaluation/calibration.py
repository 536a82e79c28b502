"""Confidence calibration after Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017).

Temperature scaling divides a model's logits by one scalar T > 0 fitted to minimise the
negative log-likelihood (NLL) on held-out validation data; the argmax, hence the accuracy, is
unchanged. The expected calibration error (ECE) compares the mean top probability with the
accuracy in 15 equal-width bins of the top probability. Everything here is a pure, vectorised
NumPy function of logits or probabilities (N, C) and integer labels (N,); the softmax, log-softmax
and the one-dimensional minimisation are SciPy's.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from digitlab.errors import DigitlabError
from digitlab.models.runner import softmax

__all__ = [
    "N_BINS",
    "CalibrationResult",
    "ReliabilityBins",
    "calibrate",
    "calibration_metrics",
    "calibration_report",
    "expected_calibration_error",
    "fit_temperature",
    "negative_log_likelihood",
    "reliability_bins",
]

N_BINS = 15  # Guo et al.'s bins: (0, 1/15], (1/15, 2/15], ..., (14/15, 1]
T_MIN, T_MAX = 0.01, 100.0  # the fitted temperature is kept in here (model.json accepts 0 < T < 1000)
LOG_T_TOLERANCE = 1e-8  # the fit stops when log T is known to this: T to 1e-8 relative, far below any effect


def _check(scores: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(scores as float64 (N, C), labels as int64 (N,)) or ValueError naming what is wrong."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64).ravel()
    if scores.ndim != 2 or scores.shape[0] != labels.size:
        raise ValueError(f"{what} must have shape ({labels.size}, n_classes) to match the labels, got {scores.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels must be in [0, {scores.shape[1]}), got min {labels.min()}, max {labels.max()}")
    return scores, labels


def negative_log_likelihood(scores: np.ndarray, labels: np.ndarray, *, from_logits: bool = False) -> float:
    """Mean negative log-likelihood (nats) of the true labels: -mean_i log p[i, labels[i]].

    scores : probabilities of shape (n_samples, n_classes), clipped to [eps, 1] as scikit-learn's
    `log_loss` does (eps = float64 machine epsilon), or logits of that shape with
    `from_logits=True` (then computed by log-softmax, exact even where a probability underflows).
    labels : integer array of shape (n_samples,).
    """
    scores, labels = _check(scores, labels, "logits" if from_logits else "probabilities")
    if labels.size == 0:
        return float("nan")
    if from_logits:
        log_p = log_softmax(scores, axis=1)[np.arange(labels.size), labels]
    else:
        eps = np.finfo(np.float64).eps
        p = scores / scores.sum(axis=1, keepdims=True)  # log_loss renormalises rows too
        log_p = np.log(np.clip(p[np.arange(labels.size), labels], eps, 1.0))
    return float(-log_p.mean())


@dataclass(frozen=True)
class ReliabilityBins:
    """Per-bin statistics of the top probability: what a reliability diagram draws.

    Bin b holds the samples whose top probability lies in (edges[b], edges[b + 1]] (a top
    probability of exactly 0 would go to bin 0; it cannot happen, the top is >= 1/C).
    """

    edges: np.ndarray  # (n_bins + 1,) from 0 to 1
    confidence: np.ndarray  # (n_bins,) mean top probability of the bin's samples; NaN where empty
    accuracy: np.ndarray  # (n_bins,) fraction of them predicted right; NaN where empty
    count: np.ndarray  # (n_bins,) int64 number of samples

    @property
    def ece(self) -> float:
        """sum over bins of |accuracy - confidence| * count / N (empty bins contribute 0)."""
        n = int(self.count.sum())
        if n == 0:
            return float("nan")
        full = self.count > 0
        return float(np.sum(np.abs(self.accuracy[full] - self.confidence[full]) * self.count[full]) / n)

    def to_dict(self) -> dict[str, list[Any]]:
        """JSON-ready lists; empty bins have null confidence and accuracy."""
        def clean(a: np.ndarray) -> list[float | None]:
            return [None if np.isnan(v) else float(v) for v in a]

        return {"edges": [float(e) for e in self.edges], "confidence": clean(self.confidence),
                "accuracy": clean(self.accuracy), "count": [int(c) for c in self.count]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReliabilityBins:
        """The inverse of `to_dict` (as read back from report.json)."""
        def arr(key: str) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in d[key]], dtype=np.float64)

        return cls(arr("edges"), arr("confidence"), arr("accuracy"), np.asarray(d["count"], dtype=np.int64))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> ReliabilityBins:
    """Bin samples by their top probability into `n_bins` equal-width bins of (0, 1].

    probabilities : array of shape (n_samples, n_classes); labels : integers of shape (n_samples,).
    The prediction is the argmax (lowest index on ties); correct when it equals the label.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    proba, labels = _check(probabilities, labels, "probabilities")
    top = proba.max(axis=1) if labels.size else np.zeros(0)
    correct = (proba.argmax(axis=1) == labels).astype(np.float64) if labels.size else np.zeros(0)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # searchsorted(side="left") - 1 puts edges[b] < top <= edges[b + 1] into bin b.
    which = np.clip(np.searchsorted(edges, top, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(which, weights=top, minlength=n_bins) / count
        accuracy = np.bincount(which, weights=correct, minlength=n_bins) / count
    empty = count == 0
    confidence[empty] = np.nan
    accuracy[empty] = np.nan
    return ReliabilityBins(edges, confidence, accuracy, count.astype(np.int64))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """ECE = sum over bins of |accuracy - mean top probability| * n_bin / N, equal-width bins of (0, 1].

    probabilities : array of shape (n_samples, n_classes); labels : integers of shape (n_samples,).
    NaN when there are no samples.
    """
    return reliability_bins(probabilities, labels, n_bins).ece


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the mean NLL of softmax(logits / T) on (held-out) data.

    logits : array of shape (n_samples, n_classes); labels : integers of shape (n_samples,).
    In beta = 1/T the NLL is convex (log-sum-exp of lines minus a line), so it has one minimum in
    log T too, found by SciPy's bounded Brent search (`minimize_scalar`) to LOG_T_TOLERANCE:
    deterministic. The result is kept in [T_MIN, T_MAX]: a bound is returned when the optimum lies
    at or beyond it (e.g. every sample right with a margin, where the NLL keeps falling as T -> 0).
    """
    z, labels = _check(logits, labels, "logits")
    if labels.size == 0:
        raise ValueError("fit_temperature needs at least one sample; got none")

    def nll(log_t: float) -> float:
        return negative_log_likelihood(z / np.exp(log_t), labels, from_logits=True)

    best = minimize_scalar(nll, bounds=(np.log(T_MIN), np.log(T_MAX)), method="bounded",
                           options={"xatol": LOG_T_TOLERANCE})
    for bound in (T_MAX, T_MIN):  # the search never tries a bound itself: one at least as good is the optimum
        if nll(np.log(bound)) <= best.fun:
            return bound
    return float(np.exp(best.x))


def calibration_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float,
                        n_bins: int = N_BINS) -> dict[str, Any]:
    """ECE, NLL and reliability bins of logits (N, C) before (T = 1) and after dividing by `temperature`.

    The JSON-ready dict report.json keeps under `calibration`: `temperature`, `n`, `n_bins`,
    `accuracy` (the same at any T > 0), `ece_before`, `ece_after`, `nll_before`, `nll_after`,
    `reliability` {"before", "after"} (`ReliabilityBins.to_dict`).
    """
    z, labels = _check(logits, labels, "logits")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    before, after = softmax(z), softmax(z, temperature)
    bins_before, bins_after = reliability_bins(before, labels, n_bins), reliability_bins(after, labels, n_bins)
    return {
        "method": "temperature scaling",
        "temperature": float(temperature),
        "n": int(labels.size),
        "n_bins": int(n_bins),
        "accuracy": float(np.mean(before.argmax(axis=1) == labels)) if labels.size else float("nan"),
        "ece_before": bins_before.ece,
        "ece_after": bins_after.ece,
        "nll_before": negative_log_likelihood(z, labels, from_logits=True),
        "nll_after": negative_log_likelihood(z / temperature, labels, from_logits=True),
        "reliability": {"before": bins_before.to_dict(), "after": bins_after.to_dict()},
    }


@dataclass(frozen=True)
class CalibrationResult:
    """A fitted temperature and how it does on the test set."""

    temperature: float
    report: dict[str, Any]  # report.json's `calibration` (calibration_metrics on the test set + n_validation)

    @property
    def meta(self) -> dict[str, float]:
        """model.json's `calibration`: `{"temperature": T}` (Predictor divides the logits by it)."""
        return {"temperature": self.temperature}


def calibrate(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray, test_labels: np.ndarray,
              *, n_bins: int = N_BINS) -> CalibrationResult:
    """Fit the temperature on validation logits (N_val, C), then measure it on test logits (N_test, C).

    Raises DigitlabError when there is no validation data: the temperature must not be fitted
    on the test set it is judged on.
    """
    if len(val_labels) == 0:
        raise DigitlabError("calibration: no validation images to fit the temperature on; "
                            "train with validation_size > 0, or skip calibration")
    temperature = fit_temperature(val_logits, val_labels)
    report = calibration_metrics(test_logits, test_labels, temperature, n_bins)
    report["n_validation"] = len(val_labels)
    return CalibrationResult(temperature, report)


def calibration_report(val_logits: np.ndarray, val_labels: np.ndarray, test_logits: np.ndarray,
                       test_labels: np.ndarray, *, n_bins: int = N_BINS) -> dict[str, Any]:
    """report.json's `calibration`: temperature fitted on validation, ECE/NLL before and after on test."""
    return calibrate(val_logits, val_labels, test_logits, test_labels, n_bins=n_bins).report
