"""Metrics against scikit-learn, an independent implementation."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from digitlab.evaluation.metrics import (
    averages,
    confusion_matrix,
    precision_recall_f1,
    softmax,
    top_k_accuracy,
)


@pytest.fixture
def preds() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n, c = 500, 7
    y = rng.integers(0, c, n)
    scores = rng.normal(size=(n, c))
    scores[np.arange(n), y] += 1.0  # better than chance, still plenty of mistakes
    scores[:, 6] -= 10.0  # class 6 is never predicted: precision's zero-division case
    return y, scores, scores.argmax(axis=1)


def test_confusion_matrix_matches_sklearn(preds):
    y, _, p = preds
    np.testing.assert_array_equal(confusion_matrix(y, p, 7), skm.confusion_matrix(y, p, labels=range(7)))


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)


def test_precision_recall_f1_matches_sklearn(preds):
    y, _, p = preds
    got = precision_recall_f1(confusion_matrix(y, p, 7))
    want = skm.precision_recall_fscore_support(y, p, labels=range(7), zero_division=0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)
    assert got[0][6] == 0.0  # never predicted


def test_precision_recall_f1_absent_class_has_zero_recall():
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 1, 1, 2])  # class 2 predicted but never true
    got = precision_recall_f1(confusion_matrix(y, p, 3))
    want = skm.precision_recall_fscore_support(y, p, labels=range(3), zero_division=0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)


@pytest.mark.parametrize("average", ["macro", "weighted"])
def test_averages_match_sklearn(preds, average):
    y, _, p = preds
    macro, weighted = averages(*precision_recall_f1(confusion_matrix(y, p, 7)))
    got = macro if average == "macro" else weighted
    want = skm.precision_recall_fscore_support(y, p, labels=range(7), average=average, zero_division=0)
    assert (got["precision"], got["recall"], got["f1"]) == pytest.approx(want[:3], abs=1e-12)


def test_weighted_average_of_nothing_is_zero():
    _, weighted = averages(*precision_recall_f1(np.zeros((3, 3), dtype=int)))
    assert weighted == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


@pytest.mark.filterwarnings("ignore:'k' .* greater than or equal to 'n_classes'")  # k=7 is meant
@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_top_k_accuracy_matches_sklearn(preds, k):
    y, scores, _ = preds
    assert top_k_accuracy(y, scores, k) == pytest.approx(skm.top_k_accuracy_score(y, scores, k=k, labels=range(7)))


def test_top_k_accuracy_validates_k(preds):
    y, scores, _ = preds
    with pytest.raises(ValueError, match="k must be"):
        top_k_accuracy(y, scores, 8)


def test_softmax_matches_scipy_and_keeps_dtype():
    from scipy.special import softmax as reference

    logits = np.random.default_rng(3).normal(scale=30, size=(20, 10)).astype(np.float32)
    got = softmax(logits)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference(logits.astype(np.float64), axis=1), rtol=1e-5, atol=1e-7)
