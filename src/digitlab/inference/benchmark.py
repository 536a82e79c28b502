"""Inference throughput of a Predictor (images per second), for choosing and documenting backends."""
from __future__ import annotations

import time

import numpy as np

from digitlab.inference.predictor import Predictor


def images_per_second(predictor: Predictor, x: np.ndarray, *, batch_size: int, min_seconds: float = 1.0) -> float:
    """Images/s of `predictor.predict_proba` on uint8 images (N, 28, 28) fed `batch_size` at a time.

    One untimed warm-up batch, then whole passes over `x` until at least `min_seconds` have passed.
    """
    batches = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
    predictor.predict_proba(batches[0])  # warm-up: allocations, lazy initialisation
    done, start = 0, time.perf_counter()
    while True:
        for xb in batches:
            predictor.predict_proba(xb)
        done += len(x)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def compare_backends(
    path: str,
    x: np.ndarray,
    *,
    batch_sizes: tuple[int, ...] = (1, 1000),
    num_threads: int | None = None,
    min_seconds: float = 1.0,
) -> dict[str, dict[int, float]]:
    """{backend: {batch_size: images/s}} for "torch", "onnx" and (when the run has it) "int8" at `path`.

    Batch size 1 uses only the first 200 images of `x`: per-request latency, not throughput.
    """
    from digitlab.errors import DigitlabError

    result: dict[str, dict[int, float]] = {}
    for backend in ("torch", "onnx", "int8"):
        try:
            predictor = Predictor.load(path, backend=backend, num_threads=num_threads, batch_size=max(batch_sizes))
        except DigitlabError:
            if backend != "int8":
                raise
            continue  # no up-to-date int8 model in this run
        result[backend] = {
            b: images_per_second(predictor, x[:200] if b == 1 else x, batch_size=b, min_seconds=min_seconds)
            for b in batch_sizes
        }
    return result
