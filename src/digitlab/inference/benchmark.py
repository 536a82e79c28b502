"""`compare_backends`: images/s of a run's predictors on every backend (`digitlab export --benchmark`)."""
from __future__ import annotations

import numpy as np

from digitlab.errors import DigitlabError
from digitlab.export.speed import images_per_second
from digitlab.inference.predictor import Predictor


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
