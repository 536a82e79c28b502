"""Measuring a not-a-digit detector: AUROC and thresholds against scikit-learn's."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from digitlab.evaluation.rejection import auroc, choose_threshold, false_accept_rate, threshold_keeping


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_matches_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    inliers = np.round(rng.normal(0, 1, 300), 1)  # rounded: many ties, within and across the sets
    outliers = np.round(rng.normal(1, 1, 200), 1)
    labels = np.r_[np.zeros(300), np.ones(200)]
    assert auroc(inliers, outliers) == pytest.approx(roc_auc_score(labels, np.r_[inliers, outliers]), abs=1e-12)
    assert auroc([0.0, 1.0], [2.0, 3.0]) == 1.0 and auroc([2.0], [1.0]) == 0.0 and auroc([1.0], [1.0]) == 0.5
    assert math.isnan(auroc([], [1.0]))


def test_threshold_keeping_is_the_smallest_that_keeps_the_share() -> None:
    scores = np.random.default_rng(3).normal(size=101)
    for keep in (0.5, 0.9, 0.99, 0.999):
        t = threshold_keeping(scores, keep)
        assert np.mean(scores <= t) >= keep  # keeps enough...
        below = scores[scores < t]
        assert below.size == 0 or np.mean(scores <= below.max()) < keep  # ...and no smaller score does


def test_false_accept_rate_against_sklearn_roc_curve() -> None:
    rng = np.random.default_rng(4)
    inliers, outliers = rng.normal(0, 1, 1000), rng.normal(2, 1, 1000)
    far = false_accept_rate(inliers, outliers, 0.95)
    # sklearn, with inliers as the positive class scored by -score: the FPR at the first TPR >= 95%
    fpr, tpr, _ = roc_curve(np.r_[np.ones(1000), np.zeros(1000)], -np.r_[inliers, outliers])
    assert far == pytest.approx(fpr[np.argmax(tpr >= 0.95)], abs=1e-12)


def test_choose_threshold_keeps_every_group() -> None:
    groups = {"clean": np.linspace(-10, -5, 1000), "photos": np.linspace(-8, -2, 100)}
    t = choose_threshold(groups, keep=0.99)
    assert all(np.mean(s <= t) >= 0.99 for s in groups.values())
    assert t == threshold_keeping(groups["photos"], 0.99)



def test_choose_threshold_with_a_share_per_group() -> None:
    groups = {"clean": np.linspace(-10, -5, 1000), "photos": np.linspace(-8, -2, 100)}
    t = choose_threshold(groups, keep={"clean": 0.99, "photos": 0.9})
    assert t == max(threshold_keeping(groups["clean"], 0.99), threshold_keeping(groups["photos"], 0.9))
    assert np.mean(groups["photos"] <= t) >= 0.9 and np.mean(groups["photos"] <= t) < 0.99
