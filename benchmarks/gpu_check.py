"""The GPU path in one short script: `python -m benchmarks.gpu_check` (CUDA) or `--cpu --quick` (CI's smoke run).

Trains digitlab's default `cnn` recipe on the device with what a GPU wants (channels-last,
bf16 autocast, a larger batch with the learning rate scaled by its square root), evaluating the
test set every 12,800 images, then times batched inference of the trained model and of the
pytorch/examples reference CNN on the same device. Prints one line per figure: time to 99.0%
test accuracy (training seconds), final test accuracy, training images/s, inference images/s of
both, and their ratio. `--cpu` runs the same code on the CPU (with `--quick`: a slice, one
epoch, figures meaningless) so the script stays tested where no GPU is lent.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.reference_cnn import Net, to_input
from benchmarks.run import default_mnist_dir
from benchmarks.sides import Spec

RECIPE_BATCH = 128  # the `cnn` recipe's batch size, the base of the learning-rate scaling
QUICK = {"train_size": 2048, "validation_size": 256, "epochs": 1}  # --quick: the code path only


def _timed_images_per_second(fn: Any, x: torch.Tensor, batch: int, device: torch.device, seconds: float) -> float:
    """Images/s of `fn` over uint8 batches (B, 28, 28) already on `device`, best of three windows."""
    batches = [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)] or [x]
    fn(batches[0])
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for xb in batches:
                fn(xb)
                n += len(xb)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = max(best, n / (time.perf_counter() - start))
    return best


def train_on_device(device: torch.device, batch_size: int, quick: bool, mnist_dir: Path | None) -> dict[str, Any]:
    """Train the `cnn` recipe on `device` (channels-last, bf16 autocast on CUDA); its records and model."""
    from digitlab.data import load
    from digitlab.training import fit, recipe_config

    ds = load("mnist", data_dir=default_mnist_dir(mnist_dir))
    config = recipe_config("cnn", device=str(device), channels_last=True, batch_size=batch_size,
                           precision="bf16" if device.type == "cuda" else "fp32",
                           lr=recipe_config("cnn").lr * math.sqrt(batch_size / RECIPE_BATCH),
                           track_test=True, eval_every_steps=max(1, Spec.cnn_eval_every_images // batch_size),
                           **(QUICK if quick else {}))
    result = fit(config, ds)
    records = sorted([*result.step_history, *result.history], key=lambda r: r["elapsed"])
    t99 = next((r["elapsed"] for r in records if r.get("test_accuracy", 0) >= 0.99), None)
    seconds = result.history[-1]["elapsed"]
    return {"model": result.model, "dataset": ds, "time_to_99": t99, "train_seconds": seconds,
            "final_accuracy": result.history[-1]["test_accuracy"],
            "train_images_per_second": result.steps * batch_size / max(seconds, 1e-9)}


def inference_on_device(model: torch.nn.Module, x_uint8: np.ndarray, device: torch.device, batch: int,
                        seconds: float) -> dict[str, float]:
    """Images/s of the trained model and of the (untrained: speed only) reference CNN on `device`."""
    from digitlab.layout import to_model_input

    x = torch.from_numpy(x_uint8).to(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    ours = model.to(device).eval().to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    ref = Net().to(device).eval()

    @torch.inference_mode()
    def run_ours(xb: torch.Tensor) -> torch.Tensor:
        with autocast:
            return ours(to_model_input(xb).contiguous(memory_format=torch.channels_last))

    @torch.inference_mode()
    def run_ref(xb: torch.Tensor) -> torch.Tensor:
        return ref(to_input(xb, xb.device))  # the batch is on the device already

    return {"digitlab": _timed_images_per_second(run_ours, x, batch, device, seconds),
            "reference": _timed_images_per_second(run_ref, x, batch, device, seconds)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU instead of CUDA (default: CUDA)")
    parser.add_argument("--quick", action="store_true", help="a slice and one epoch: checks the code, measures nothing")
    parser.add_argument("--batch-size", type=int, default=512, help="training batch (default: 512)")
    parser.add_argument("--inference-batch", type=int, default=4096, help="inference batch (default: 4096)")
    parser.add_argument("--mnist-dir", type=Path, default=None, help="MNIST folder tried first (default: as "
                        "benchmarks.run)")
    args = parser.parse_args(argv)
    if not args.cpu and not torch.cuda.is_available():
        parser.error("no CUDA device here: run on a GPU machine, or pass --cpu to check the script")
    device = torch.device("cpu" if args.cpu else "cuda")
    trained = train_on_device(device, args.batch_size, args.quick, args.mnist_dir)
    x = trained["dataset"].x_test[: 2048 if args.quick else 10_000]
    speed = inference_on_device(trained["model"], x, device, min(args.inference_batch, len(x)),
                                0.05 if args.quick else 1.0)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    t99 = trained["time_to_99"]
    print(f"device: {name}, torch {torch.__version__}, batch {args.batch_size}, channels-last, "
          f"{'bf16 autocast' if device.type == 'cuda' else 'fp32'}{', QUICK (figures meaningless)' * args.quick}")
    print(f"time to 99.0% test accuracy: {'not reached' if t99 is None else f'{t99:.2f} s'}")
    print(f"final test accuracy: {trained['final_accuracy'] * 100:.2f}% after {trained['train_seconds']:.2f} s")
    print(f"training images/s: {trained['train_images_per_second']:,.0f}")
    print(f"inference images/s (batch {min(args.inference_batch, len(x))}): digitlab {speed['digitlab']:,.0f}, "
          f"reference CNN {speed['reference']:,.0f} = {speed['digitlab'] / speed['reference']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
