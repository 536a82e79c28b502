"""Saying "not a digit": the decision from a model's logits and the ink the preprocessing found.

Two kinds of evidence, checked in this order:

1. The ink (cheap facts from `digitlab.inference.preprocess.Preprocessed`): nothing stands out
   from the background ("blank"), or the picture holds several separate things
   ("several objects": `Predictor.read` is the tool for those).
2. The model's energy score (Liu, Wang, Owens, Li, "Energy-based Out-of-distribution
   Detection", NeurIPS 2020): E(x) = -T logsumexp(logits / T). In-distribution inputs get low
   (very negative) energy; an input whose energy is above the threshold stored in model.json is
   "not a digit" ("not a piece of clothing" for a Fashion-MNIST model). The default model is
   trained with outlier exposure (Hendrycks, Mazeika, Dietterich, ICLR 2019), which teaches it
   flat logits, hence high energy, on non-digits. The score needs only the logits, so it is the
   same for the torch, ONNX and int8 backends and costs nothing at inference.

A checkpoint without `rejection` in model.json never rejects by score, only by the ink checks.
Everything here is a pure NumPy function; `Predictor` calls `decide`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BLANK = "blank"
SEVERAL = "several objects"
MAX_OBJECTS = 2  # more separate objects than this: "several objects" (a digit and a smudge or a detached
# stroke make two: 1.3% of realistic single-digit pictures had two, none had three)
METHOD = "energy"

# What a model's classes are, by dataset (for "not a ..."); anything else: "not one of the model's classes".
_NOUNS = {"mnist": "digit", "kmnist": "character", "fashion-mnist": "piece of clothing"}


def not_a(dataset: str | None) -> str:
    """The reason given for an input unlike the classes of a model of `dataset`: "not a digit", ..."""
    noun = _NOUNS.get(dataset or "mnist")
    return f"not a {noun}" if noun else "not one of the model's classes"


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """The energy score -T logsumexp(logits / T) of logits (N, C) -> float64 (N,); higher = less like the classes."""
    z = np.asarray(logits, dtype=np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    return -temperature * (top[:, 0] + np.log(np.exp(z - top).sum(axis=1)))


@dataclass(frozen=True)
class Rejection:
    """model.json's `rejection`: the score and the threshold above which an input is rejected."""

    threshold: float
    method: str = METHOD
    temperature: float = 1.0

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> Rejection | None:
        """The rejection stored in a model.json dict, or None when it has none (an older checkpoint)."""
        r = meta.get("rejection")
        if not r or r.get("threshold") is None:
            return None
        return cls(float(r["threshold"]), str(r.get("method", METHOD)), float(r.get("temperature", 1.0)))

    def score(self, logits: np.ndarray) -> np.ndarray:
        """The rejection score of logits (N, C) -> (N,): the energy (`method` "energy")."""
        return energy(logits, self.temperature)


@dataclass(frozen=True)
class Ink:
    """The ink facts the decision uses (a subset of `preprocess.Preprocessed`)."""

    blank: bool = False
    objects: int = 1

    @classmethod
    def of(cls, preprocessed: Any) -> Ink:
        """The facts of a `Preprocessed` (or anything with `blank` and `objects`)."""
        return cls(bool(preprocessed.blank), int(preprocessed.objects))

    @classmethod
    def of_images(cls, x: np.ndarray) -> list[Ink]:
        """Facts of uint8 images (N, 28, 28) already in the model's format: only blankness is known."""
        flat = np.asarray(x).reshape(len(x), -1)
        return [cls(blank=not bool(m), objects=1) for m in flat.max(axis=1) > 0] if len(flat) else []


def ink_reason(ink: Ink | None) -> str | None:
    """"blank" or "several objects" from the ink facts, else None."""
    if ink is None:
        return None
    if ink.blank:
        return BLANK
    if ink.objects > MAX_OBJECTS:
        return SEVERAL
    return None


def decide(
    logits: np.ndarray,
    rejection: Rejection | None,
    *,
    ink: Sequence[Ink | None] | None = None,
    threshold: float | None = None,
    dataset: str | None = None,
) -> list[str | None]:
    """Why each input is rejected (None: accepted), from logits (N, C) and the pictures' ink facts (N,).

    `threshold` overrides the stored one (None: the stored one; `math.inf`: never by score). With
    neither a stored rejection nor a `threshold`, only the ink decides. `dataset` words the
    score's reason (`not_a`).
    """
    logits = np.asarray(logits)
    n = logits.shape[0]
    ink = list(ink) if ink is not None else [None] * n
    if len(ink) != n:
        raise ValueError(f"ink facts for {len(ink)} inputs, logits for {n}; give one per input")
    reasons = [ink_reason(i) for i in ink]
    rule = rejection if rejection is not None else (Rejection(threshold) if threshold is not None else None)
    if rule is not None and n:
        limit = rule.threshold if threshold is None else float(threshold)
        over = rule.score(logits) > limit
        word = not_a(dataset)
        reasons = [r if r is not None else (word if o else None) for r, o in zip(reasons, over.tolist())]
    return reasons


# -- measuring a detector ----------------------------------------------------------------------------------

def auroc(inliers: np.ndarray, outliers: np.ndarray) -> float:
    """Area under the ROC curve of telling outliers from inliers by a score (higher = more outlying).

    The Mann-Whitney statistic from average ranks (ties count one half): the probability that a
    random outlier scores above a random inlier. NaN when either set is empty.
    """
    a, b = np.asarray(inliers, np.float64).ravel(), np.asarray(outliers, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        return float("nan")
    both = np.concatenate([a, b])
    _, inverse, counts = np.unique(both, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # rank of the last of each group of equal values
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # average rank, 1-based
    u = ranks[a.size:].sum() - b.size * (b.size + 1) / 2.0
    return float(u / (a.size * b.size))


def threshold_keeping(scores: np.ndarray, keep: float) -> float:
    """The smallest threshold t with at least `keep` of `scores` at or below it (kept: score <= t)."""
    s = np.sort(np.asarray(scores, np.float64).ravel())
    if s.size == 0:
        raise ValueError("threshold_keeping needs at least one score")
    return float(s[min(s.size - 1, int(np.ceil(keep * s.size)) - 1)])


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
