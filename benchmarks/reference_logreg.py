"""The softmax-regression baseline: scikit-learn's LogisticRegression on the 784 pixels.

As people run it: pixels flattened and scaled with `/ 255.0` (float64), the default
`lbfgs` solver (multinomial loss) with its default `max_iter=100` and C=1.0. On MNIST
lbfgs stops at the iteration limit with a ConvergenceWarning; that is what the common
snippet does too, so the baseline is the fit's wall time and its final test accuracy.
"""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np


def fit_logreg(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    *, max_iter: int = 100,
) -> dict[str, Any]:
    """Fit LogisticRegression on uint8 images (N, 28, 28); returns times and test accuracy.

    `fit_seconds` is `fit` alone (scaling is done before the timer, as a data step);
    `predict_images_per_second` is `predict` on the whole test set in one call.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    xtr = x_train.reshape(len(x_train), -1) / 255.0  # (N, 784) float64
    xte = x_test.reshape(len(x_test), -1) / 255.0
    clf = LogisticRegression(max_iter=max_iter)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        t0 = time.perf_counter()
        clf.fit(xtr, y_train)
        fit_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    pred = clf.predict(xte)
    predict_seconds = time.perf_counter() - t0
    return {
        "fit_seconds": fit_seconds,
        "test_accuracy": float((pred == y_test).mean()),
        "n_iter": int(np.max(clf.n_iter_)),
        "max_iter": max_iter,
        "converged": not any(issubclass(w.category, ConvergenceWarning) for w in caught),
        "predict_images_per_second": len(xte) / predict_seconds,
        "train_images_per_second": len(xtr) * int(np.max(clf.n_iter_)) / fit_seconds,
    }
