"""The one prediction vocabulary: `Prediction` (one image) and `Reading` (a number in an image).

The CLI's `--json`, the HTTP API and Python all serialise these types as they are, so a
prediction has the same keys and values everywhere:

    label          int: the class index
    class_name     the class's name ("7", "Sneaker")
    probability    calibrated probability of `label`
    probabilities  one calibrated probability per class
    top_k          the k best classes, best first: [{label, class_name, probability}]
    rejected       True when the input is not one of the model's classes (blank, not a digit, ...)
    reason         None, or why it was rejected
    model_id       the model's name and the first 12 hex digits of its weights' SHA-256

The CLI adds `file`; the API adds `image` (the 28x28 the model saw) and `elapsed_ms`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class ClassScore(BaseModel):
    """One class and its probability."""

    model_config = ConfigDict(frozen=True)

    label: int = Field(description="class index")
    class_name: str = Field(description="class name")
    probability: float = Field(description="calibrated probability")


class Prediction(BaseModel):
    """What a model says about one image."""

    model_config = ConfigDict(frozen=True)

    label: int = Field(description="predicted class index")
    class_name: str = Field(description="predicted class name")
    probability: float = Field(description="calibrated probability of `label`")
    probabilities: list[float] = Field(description="calibrated probability of every class, by class index")
    top_k: list[ClassScore] = Field(description="the k most probable classes, best first")
    rejected: bool = Field(False, description="true when the input does not look like any of the model's classes")
    reason: str | None = Field(None, description="why the input was rejected (null when it was not)")
    model_id: str = Field(description="model name + first 12 hex digits of its weights' SHA-256")

    @classmethod
    def from_probabilities(
        cls,
        proba: np.ndarray,
        class_names: Sequence[str],
        model_id: str,
        *,
        top_k: int = 3,
        rejected: bool = False,
        reason: str | None = None,
    ) -> Prediction:
        """The prediction for one row of probabilities (C,): argmax, and the `top_k` best (ties: lower index)."""
        p = np.asarray(proba, dtype=np.float64).ravel()
        k = max(1, min(int(top_k), p.size))
        order = np.argsort(-p, kind="stable")[:k]
        best = int(order[0])
        return cls(
            label=best,
            class_name=str(class_names[best]),
            probability=float(p[best]),
            probabilities=[float(v) for v in p],
            top_k=[ClassScore(label=int(i), class_name=str(class_names[i]), probability=float(p[i])) for i in order],
            rejected=bool(rejected),
            reason=reason if rejected else None,
            model_id=model_id,
        )


class ReadDigit(BaseModel):
    """One digit found in an image by `Predictor.read`."""

    model_config = ConfigDict(frozen=True)

    label: int = Field(description="predicted class index")
    class_name: str = Field(description="predicted class name")
    probability: float = Field(description="calibrated probability of `label`")
    box: tuple[int, int, int, int] = Field(description="[x0, y0, x1, y1] in the input image's pixels, x1/y1 exclusive")
    rejected: bool = Field(False, description="true when this piece does not look like a digit")
    reason: str | None = Field(None, description="why the piece was rejected (null when it was not)")


class Reading(BaseModel):
    """Every digit in an image, read left to right and lines top to bottom."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="the digits read, lines joined by \\n; rejected pieces are left out")
    digits: list[ReadDigit] = Field(description="every piece found, in reading order")
    model_id: str = Field(description="model name + first 12 hex digits of its weights' SHA-256")
