"""Measuring a not-a-digit detector: AUROC, false accepts at a kept share, and the threshold that keeps a share.

Scores are "higher = more outlying" (the energy score of `digitlab.inference.rejection`).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy.stats import mannwhitneyu


def auroc(inliers: np.ndarray, outliers: np.ndarray) -> float:
    """Area under the ROC curve of telling outliers from inliers by a score (higher = more outlying).

    The Mann-Whitney U statistic over the product of the set sizes (ties count one half): the
    probability that a random outlier scores above a random inlier. NaN when either set is empty.
    """
    a, b = np.asarray(inliers, np.float64).ravel(), np.asarray(outliers, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(mannwhitneyu(b, a, method="asymptotic").statistic / (a.size * b.size))


def threshold_keeping(scores: np.ndarray, keep: float) -> float:
    """The smallest threshold t with at least `keep` of `scores` at or below it (kept: score <= t)."""
    s = np.asarray(scores, np.float64).ravel()
    if s.size == 0:
        raise ValueError("threshold_keeping needs at least one score")
    return float(np.quantile(s, min(1.0, max(0.0, keep)), method="inverted_cdf"))


def false_accept_rate(inliers: np.ndarray, outliers: np.ndarray, keep: float = 0.95) -> float:
    """Share of outliers accepted (score <= t) where t accepts `keep` of the inliers (FPR at 95% TPR)."""
    b = np.asarray(outliers, np.float64).ravel()
    if b.size == 0 or np.asarray(inliers).size == 0:
        return float("nan")
    return float(np.mean(b <= threshold_keeping(inliers, keep)))


def choose_threshold(groups: Mapping[str, np.ndarray], keep: float | Mapping[str, float] = 0.99) -> float:
    """The threshold keeping at least `keep` of every group of in-distribution scores: the largest group threshold.

    `keep`: one share for every group, or a share per group name.
    """
    share = (lambda name: keep) if isinstance(keep, float | int) else (lambda name: keep[name])
    chosen = [threshold_keeping(s, share(name)) for name, s in groups.items() if np.asarray(s).size]
    if not chosen:
        raise ValueError("choose_threshold needs at least one non-empty group of scores")
    return max(chosen)
