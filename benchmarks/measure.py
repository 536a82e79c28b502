"""Measurement helpers: time-to-accuracy, throughput timers, peak memory and the machine."""
from __future__ import annotations

import os
import platform
import statistics
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


def time_to_accuracy(
    records: Iterable[dict[str, Any]], target: float, key: str = "test_accuracy"
) -> dict[str, Any] | None:
    """The first record whose `key` reaches `target`, as `{elapsed, step, epoch, accuracy}`.

    `records` are evaluation points in training order, each with `elapsed` (training
    seconds so far, evaluation excluded). Records without `key` are skipped. Returns None
    when no record reaches the target (the run never got there within its budget).
    """
    for rec in records:
        acc = rec.get(key)
        if acc is not None and acc >= target:
            return {"elapsed": rec["elapsed"], "step": rec.get("step"), "epoch": rec.get("epoch"),
                    "accuracy": acc}
    return None


def final_elapsed(records: Sequence[dict[str, Any]]) -> float:
    """Training seconds of the whole run: the largest `elapsed` among the records."""
    return max((r["elapsed"] for r in records if "elapsed" in r), default=0.0)


def cuda_sync(device: Any) -> None:
    """Wait for queued CUDA work on `device` so a timer sees it; a no-op elsewhere."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def throughput(
    predict: Callable[[np.ndarray], Any],
    x: np.ndarray,
    batch_size: int,
    *,
    device: Any = "cpu",
    min_seconds: float = 1.0,
    warmup_batches: int = 2,
) -> dict[str, float]:
    """Images per second of `predict` on batches of `x` (N, ...), batch after batch.

    `predict` takes one batch and returns its outputs (anything; for CUDA the timer
    synchronises). First, untimed, `warmup_batches` rounds of one batch of each distinct
    size (a partial last batch may need its own compiled graph); their time is
    `warmup_seconds`, which holds a compile when there is one. Then whole passes over `x`
    until `min_seconds`.
    """
    batches = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
    shapes = list({len(b): b for b in batches}.values())  # one batch per distinct size
    t0 = time.perf_counter()
    for _ in range(warmup_batches):
        for b in shapes:
            predict(b)
    cuda_sync(device)
    warmup = time.perf_counter() - t0
    images, t0 = 0, time.perf_counter()
    while True:
        for b in batches:
            predict(b)
            images += len(b)
        cuda_sync(device)
        seconds = time.perf_counter() - t0
        if seconds >= min_seconds:
            break
    return {"images_per_second": images / seconds, "images": images, "seconds": seconds,
            "batch_size": batch_size, "warmup_seconds": warmup}


def interleaved_throughput(
    predictors: dict[str, Callable[[np.ndarray], Any]],
    x: np.ndarray,
    batch_sizes: tuple[int, ...],
    *,
    rounds: int = 5,
    window_seconds: float = 0.4,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Images/s of several predictors measured in turn, window by window, on batches of `x`.

    For each batch size, `rounds` rounds; in each, every predictor (in a rotating order) runs
    whole passes over `x` for at least `window_seconds`. A shared machine's slow spells then
    hit every side alike instead of whichever ran during them; each predictor's figure is its
    best window (`images_per_second`), with the median and every sample kept. One untimed
    warm-up batch per predictor and batch size first.
    Returns {name: {str(batch_size): {"images_per_second", "median", "samples"}}}.
    """
    names = list(predictors)
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in names}
    for b in batch_sizes:
        batches = [x[i : i + b] for i in range(0, len(x), b)]
        samples: dict[str, list[float]] = {name: [] for name in names}
        for name in names:
            predictors[name](batches[0])
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                fn, images, t0 = predictors[name], 0, time.perf_counter()
                while True:
                    for xb in batches:
                        fn(xb)
                    images += len(x)
                    seconds = time.perf_counter() - t0
                    if seconds >= window_seconds:
                        break
                samples[name].append(images / seconds)
        for name in names:
            out[name][str(b)] = {"images_per_second": max(samples[name]),
                                 "median": statistics.median(samples[name]), "samples": samples[name]}
    return out


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB (getrusage ru_maxrss)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def current_rss_mib() -> float:
    """Resident memory of this process now, MiB (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def peak_cuda_mib(device: Any) -> float | None:
    """Peak CUDA memory allocated on `device` since the last reset, MiB; None off CUDA."""
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(dev) / 2**20


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the figures were measured on: CPU, cores, threads, versions, load average."""
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for mod in ("numpy", "sklearn", "onnxruntime"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
        info["cuda"] = torch.version.cuda
    return info
