"""Saying "not a digit": the decision from a model's logits and the ink the preprocessing found.

Two kinds of evidence, checked in this order:

1. The ink (cheap facts from `digitlab.vision.normalise.Preprocessed`): nothing stands out
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
Everything here is a pure NumPy (and SciPy) function; `Predictor` calls `decide`.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import logsumexp

if TYPE_CHECKING:
    from digitlab.checkpoints import ModelMeta

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
    return -temperature * logsumexp(np.asarray(logits, dtype=np.float64) / temperature, axis=1)


@dataclass(frozen=True)
class Rejection:
    """model.json's `rejection`: the score and the threshold above which an input is rejected."""

    threshold: float
    method: str = METHOD
    temperature: float = 1.0

    @classmethod
    def from_meta(cls, meta: ModelMeta) -> Rejection | None:
        """The rejection stored in a checkpoint's model.json, or None when it has none (an older checkpoint)."""
        r = meta.rejection
        return None if r is None else cls(float(r.threshold), str(r.method), float(r.temperature))

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
