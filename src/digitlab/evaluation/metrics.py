"""Classification metrics as pure, vectorised NumPy functions (no per-sample Python)."""
from __future__ import annotations

import numpy as np

from digitlab.models.runner import softmax

__all__ = ["averages", "confusion_matrix", "precision_recall_f1", "softmax", "top_k_accuracy"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Count matrix of shape (num_classes, num_classes): rows are true classes, columns predicted.

    y_true, y_pred : integer arrays of shape (n_samples,) with values in [0, num_classes).
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.size} labels but y_pred has {y_pred.size}")
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes}): min {arr.min()}, max {arr.max()}")
    flat = np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def precision_recall_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (precision, recall, f1, support) from a confusion matrix, each of shape (C,).

    A class never predicted has precision 0; a class absent from y_true has recall 0
    (scikit-learn's `zero_division=0` convention).
    """
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted = cm.sum(axis=0)  # column sums: how often each class was predicted
    support = cm.sum(axis=1)  # row sums: how often each class is the truth
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support.astype(np.int64)


def top_k_accuracy(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Fraction of samples whose true class is among the k highest scores.

    y_true : integer array of shape (n_samples,); scores : array of shape (n_samples, n_classes).
    Ties are broken towards the lower class index, as `np.argsort(kind="stable")` does.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[0] != y_true.size:
        raise ValueError(f"scores must have shape ({y_true.size}, n_classes), got {scores.shape}")
    if not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must be in [1, {scores.shape[1]}], got {k}")
    if y_true.size == 0:
        return float("nan")
    # Rank of the true class = number of classes scored strictly higher (plus lower-index ties).
    true_score = scores[np.arange(y_true.size), y_true][:, None]
    idx = np.arange(scores.shape[1])[None, :]
    better = (scores > true_score) | ((scores == true_score) & (idx < y_true[:, None]))
    return float(np.mean(better.sum(axis=1) < k))


def averages(
    precision: np.ndarray, recall: np.ndarray, f1: np.ndarray, support: np.ndarray
) -> tuple[dict[str, float], dict[str, float]]:
    """(macro, weighted) averages of per-class scores (C,), as scikit-learn's `classification_report`.

    macro: the unweighted mean over classes of precision, recall and f1; weighted: their mean
    weighted by support (0 when there are no samples, `zero_division=0`).
    """
    support = np.asarray(support, dtype=np.float64)
    total = support.sum()
    macro = {"precision": float(np.mean(precision)), "recall": float(np.mean(recall)), "f1": float(np.mean(f1))}
    weighted = {k: float(np.dot(v, support) / total) if total > 0 else 0.0
                for k, v in (("precision", precision), ("recall", recall), ("f1", f1))}
    return macro, weighted
