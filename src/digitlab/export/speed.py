"""Inference throughput in images per second: the one timer of `digitlab export --benchmark` and benchmarks/.

    images_per_second(predictor, x, batch_size=256)                  # one predictor, passes until min_seconds
    interleaved_images_per_second({"a": p, "b": q}, x, batch_sizes=(64, 256))   # several, window by window
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

PredictFn = Callable[[np.ndarray], Any]  # one batch of uint8 images (B, 28, 28) in, anything out


class Estimator(Protocol):
    """Anything with scikit-learn's predict_proba (a `digitlab.inference.Predictor`): timed through it."""

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


Timed = Estimator | PredictFn


def _fn(predict: Timed) -> PredictFn:
    proba = getattr(predict, "predict_proba", None)
    return proba if callable(proba) else predict  # type: ignore[return-value]


def _batches(x: np.ndarray, batch_size: int) -> list[np.ndarray]:
    if batch_size < 1 or len(x) == 0:
        from digitlab.errors import DigitlabError

        raise DigitlabError(f"images_per_second: batch_size={batch_size} on {len(x)} images; pass at least "
                            "one image and a batch size of 1 or more")
    return [x[i : i + batch_size] for i in range(0, len(x), batch_size)]


def _passes(fn: PredictFn, batches: list[np.ndarray], min_seconds: float) -> float:
    """Images/s of whole passes over `batches` until at least `min_seconds` have passed (one pass at least)."""
    done, start = 0, time.perf_counter()
    while True:
        for xb in batches:
            fn(xb)
            done += len(xb)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed if elapsed > 0 else float("inf")


def images_per_second(predict: Timed, x: np.ndarray, *, batch_size: int, min_seconds: float = 1.0) -> float:
    """Images/s of `predict` (a Predictor or a function of one batch) on uint8 images x (N, 28, 28).

    One untimed warm-up batch, then whole passes over `x`, `batch_size` at a time, until at
    least `min_seconds` have passed.
    """
    fn, batches = _fn(predict), _batches(x, batch_size)
    fn(batches[0])  # warm-up: allocations, lazy initialisation
    return _passes(fn, batches, min_seconds)


def interleaved_images_per_second(
    predictors: Mapping[str, Timed],
    x: np.ndarray,
    *,
    batch_sizes: tuple[int, ...] = (256,),
    rounds: int = 8,
    window_seconds: float = 0.25,
) -> dict[str, dict[int, list[float]]]:
    """Images/s of several predictors timed in turn, window by window: {name: {batch_size: [one per round]}}.

    For each batch size, `rounds` rounds; in each, every predictor (in an order that rotates by
    one each round) runs whole passes over `x` for at least `window_seconds`. The slow spells of a
    shared machine then fall on every predictor alike instead of on whichever ran during them;
    the best window (`max`) is the usual figure. One untimed warm-up batch per predictor and size.
    """
    names, fns = list(predictors), {name: _fn(p) for name, p in predictors.items()}
    out: dict[str, dict[int, list[float]]] = {name: {} for name in names}
    for b in batch_sizes:
        batches = _batches(x, b)
        for name in names:
            fns[name](batches[0])
            out[name][b] = []
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                out[name][b].append(_passes(fns[name], batches, window_seconds))
    return out
