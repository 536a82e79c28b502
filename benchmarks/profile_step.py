"""Where a training step's time goes: `python -m benchmarks.profile_step [--recipe cnn] [--variant K=V;K=V]`.

Times the library's own step: `digitlab.training.fit` on real MNIST batches, with a callback
stamping every `step` event (one per step; the event reads the running loss, which syncs the
device), for the recipe and each `--variant`, and the reference CNN's step (its own loop) for
scale. Prints median milliseconds per step after warm-up, images/s and multiply-adds per image;
`--ops` adds torch.profiler's table of the operators that took the time.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.run import default_mnist_dir, parse_settings


def macs_per_image(model: torch.nn.Module) -> int:
    """Multiply-adds of one (1, 1, 28, 28) forward pass through the conv and linear layers."""
    total = 0

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            kh, kw = module.kernel_size
            total += output.numel() * kh * kw * module.in_channels // module.groups
        elif isinstance(module, torch.nn.Linear):
            total += module.in_features * module.out_features

    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    handles = [m.register_forward_hook(hook) for m in layers]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total


def profile_recipe(config: Any, dataset: Any, *, steps: int, warmup: int, ops: bool = False) -> dict[str, Any]:
    """ms per step (median of `steps` after `warmup`) of `fit(config)`, images/s, MACs; with `ops` the top ops."""
    from digitlab.models import build_model
    from digitlab.training import fit

    n = warmup + steps + 1
    config = config.replace(max_steps=n, train_size=n * config.batch_size, validation_size=0, track_test=False,
                            eval_every_steps=None, progress_every=1)
    stamps: list[float] = []

    def stamp(event: dict[str, Any]) -> None:
        if event["event"] == "step":
            stamps.append(time.perf_counter())

    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) if ops else None
    with profiler or contextlib.nullcontext():
        fit(config, dataset, callback=stamp)
    ms = 1000 * statistics.median(b - a for a, b in zip(stamps[warmup:], stamps[warmup + 1:]))
    out = {"batch_size": config.batch_size, "ms_per_step": ms, "images_per_second": 1000 * config.batch_size / ms,
           "macs_per_image": macs_per_image(build_model(config.model, **config.model_config)),
           "threads": config.threads or torch.get_num_threads()}
    if profiler is not None:
        out["ops"] = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    return out


def profile_reference(dataset: Any, *, steps: int, warmup: int, device: str = "cpu") -> dict[str, Any]:
    """The same for the pytorch/examples CNN's step (batch 64, Adadelta), timed by its own loop."""
    from benchmarks.reference_cnn import Net, ReferenceConfig, train_reference

    n = (warmup + steps) * 64
    config = ReferenceConfig(epochs=1, eval_every_steps=warmup, max_steps=warmup + steps)
    _, records = train_reference(dataset.x_train[:n], dataset.y_train[:n], dataset.x_test[:64],
                                 dataset.y_test[:64], config, device=device)
    ms = 1000 * (records[-1]["elapsed"] - records[0]["elapsed"]) / steps  # evaluations excluded
    return {"batch_size": 64, "ms_per_step": ms, "images_per_second": 64_000 / ms,
            "macs_per_image": macs_per_image(Net()), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_step", description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="cnn", help="digitlab recipe to profile (default: cnn)")
    p.add_argument("--set", action="append", default=[], metavar="K=V",
                   help="change a TrainConfig field for every variant, repeatable (default: none)")
    p.add_argument("--variant", action="append", default=[], metavar="K=V[;K=V]",
                   help='also profile the recipe with these changes, e.g. "channels_last=false" (default: none)')
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant (default: 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default: 5)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--ops", action="store_true", help="print torch.profiler's top operators of each variant")
    p.add_argument("--no-reference", action="store_true", help="skip the reference CNN's step")
    p.add_argument("--mnist-dir", type=Path, default=None, help="MNIST folder tried first (default: as benchmarks.run)")
    args = p.parse_args(argv)

    from digitlab.data import load
    from digitlab.training import recipe_config

    ds = load("mnist", data_dir=default_mnist_dir(args.mnist_dir))
    base = recipe_config(args.recipe, device=args.device, **parse_settings(args.set))
    for name, changes in {"recipe": {}, **{v: parse_settings(v.split(";")) for v in args.variant}}.items():
        row = profile_recipe(base.replace(**changes), ds, steps=args.steps, warmup=args.warmup, ops=args.ops)
        if "ops" in row:
            print(row.pop("ops"))
        print(name, json.dumps(row), flush=True)
    if not args.no_reference:
        print("reference", json.dumps(profile_reference(ds, steps=args.steps, warmup=args.warmup, device=args.device)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
