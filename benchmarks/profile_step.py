"""Where a training step's time goes: `python -m benchmarks.profile_step [--recipe cnn] [--set K=V ...]`.

Times each phase of the step the digitlab loop runs (batch gather, augmentation, forward,
loss, backward, optimiser) on real MNIST batches, for the recipe's config and for variants
given with `--variant` (e.g. `--variant channels_last=false --variant "batch_size=512;lr=0.004"`), and
the reference CNN's step for scale. Each phase is timed with the device synchronised around
it, so the sum is a little above a free-running step; `images_per_second` is free-running.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks import measure

_DEFAULT_THREADS = torch.get_num_threads()
PHASES = ("data", "augment", "forward", "loss", "backward", "optimizer")


def macs_per_image(model: torch.nn.Module) -> int:
    """Multiply-accumulates of one (1, 1, 28, 28) forward pass through conv and linear layers."""
    total = 0

    def hook(module: torch.nn.Module, inputs: Any, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * k
        elif isinstance(module, torch.nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total


def _timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any]:
    measure.cuda_sync(device)
    t0 = time.perf_counter()
    out = fn()
    measure.cuda_sync(device)
    return time.perf_counter() - t0, out


def profile_config(config: Any, x_uint8: Any, y: Any, *, steps: int = 30, warmup: int = 5) -> dict[str, Any]:
    """Per-phase milliseconds per step (median) and free-running images/s for a TrainConfig."""
    from digitlab.models import build_model
    from digitlab.training import build_optimizer, random_affine, select_device

    torch.set_num_threads(config.threads or _DEFAULT_THREADS)
    device = select_device(config.device)
    x = torch.from_numpy(x_uint8).to(device).unsqueeze(1).float() / 255.0  # (N, 1, 28, 28)
    yt = torch.from_numpy(y).to(device)
    torch.manual_seed(0)
    model = build_model(config.model, **config.model_config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    opt = build_optimizer(model, config)
    gen = torch.Generator(device=device).manual_seed(1)
    b = config.batch_size
    precision = config.precision if config.precision != "auto" else ("bf16" if device.type == "cuda" else "fp32")
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)

    net = torch.compile(model) if config.compile else model  # compiled during the warm-up steps

    def fwd(xb: torch.Tensor) -> torch.Tensor:
        if amp is None:
            return net(xb)
        with torch.autocast(device.type, dtype=amp):
            return net(xb)

    perm = torch.randperm(len(x), device=device)
    times: dict[str, list[float]] = {p: [] for p in PHASES}

    def step(i: int, record: bool) -> None:
        idx = perm[(i * b) % (len(x) - b):][:b]
        t, (xb, yb) = _timed(device, lambda: (x.index_select(0, idx), yt.index_select(0, idx)))
        parts = {"data": t}
        if config.augment:
            t, xb = _timed(device, lambda: random_affine(xb, gen, max_shift=config.aug_shift,
                                                          max_rotation=config.aug_rotate,
                                                          max_scale=config.aug_scale))
            parts["augment"] = t
        if config.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        parts["forward"], logits = _timed(device, lambda: fwd(xb))
        parts["loss"], loss = _timed(device, lambda: F.cross_entropy(
            logits.float(), yb, label_smoothing=config.label_smoothing))
        opt.zero_grad(set_to_none=True)
        parts["backward"], _ = _timed(device, loss.backward)
        parts["optimizer"], _ = _timed(device, opt.step)
        if record:
            for k, v in parts.items():
                times[k].append(v)

    for i in range(warmup):
        step(i, False)
    for i in range(steps):
        step(warmup + i, True)
    ms = {k: 1000 * statistics.median(v) for k, v in times.items() if v}
    # free-running: the same work without the per-phase synchronisation
    measure.cuda_sync(device)
    t0 = time.perf_counter()
    for i in range(steps):
        idx = perm[(i * b) % (len(x) - b):][:b]
        xb, yb = x.index_select(0, idx), yt.index_select(0, idx)
        if config.augment:
            xb = random_affine(xb, gen, max_shift=config.aug_shift, max_rotation=config.aug_rotate,
                               max_scale=config.aug_scale)
        if config.channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(fwd(xb).float(), yb, label_smoothing=config.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    measure.cuda_sync(device)
    seconds = time.perf_counter() - t0
    return {"batch_size": b, "precision": precision, "ms_per_step": ms, "ms_sum": sum(ms.values()),
            "images_per_second": steps * b / seconds, "threads": torch.get_num_threads(),
            "macs_per_image": macs_per_image(build_model(config.model, **config.model_config))}


def profile_reference(x_uint8: Any, y: Any, *, device: str = "cpu", steps: int = 30, warmup: int = 5
                      ) -> dict[str, Any]:
    """The same breakdown for the pytorch/examples CNN step (batch 64, Adadelta)."""
    from benchmarks.reference_cnn import Net, to_input

    dev = torch.device(device)
    x, yt = to_input(x_uint8, dev), torch.from_numpy(y).to(dev)
    torch.manual_seed(0)
    model = Net().to(dev).train()
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    times: dict[str, list[float]] = {p: [] for p in PHASES if p != "augment"}
    b = 64
    perm = torch.randperm(len(x), device=dev)
    t_start = None
    for i in range(warmup + steps):
        if i == warmup:
            t_start = time.perf_counter()
        idx = perm[i * b:(i + 1) * b]
        parts = {}
        parts["data"], (xb, yb) = _timed(dev, lambda: (x[idx], yt[idx]))
        opt.zero_grad()
        parts["forward"], out = _timed(dev, lambda: model(xb))
        parts["loss"], loss = _timed(dev, lambda: F.nll_loss(out, yb))
        parts["backward"], _ = _timed(dev, loss.backward)
        parts["optimizer"], _ = _timed(dev, opt.step)
        if i >= warmup:
            for k, v in parts.items():
                times[k].append(v)
    seconds = time.perf_counter() - t_start
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    return {"batch_size": b, "ms_per_step": ms, "ms_sum": sum(ms.values()),
            "images_per_second_synced": steps * b / seconds, "threads": torch.get_num_threads(),
            "macs_per_image": macs_per_image(Net())}


def profile_inference(model_configs: dict[str, dict[str, Any]], x_uint8: Any, *, batch_size: int = 1000,
                      min_seconds: float = 2.0) -> dict[str, Any]:
    """Batched CPU images/s of `cnn` models of the given configs through `Predictor` (torch and
    onnx backends, uint8 in), and of the reference CNN (eager, normalised tensors in), with
    MACs per image. Weights are untrained: speed does not depend on them."""
    import tempfile

    from benchmarks.reference_cnn import Net, to_input
    from digitlab.checkpoints import save_checkpoint
    from digitlab.inference import Predictor
    from digitlab.models import build_model

    out: dict[str, Any] = {}
    ref = Net().eval()
    xr = to_input(x_uint8)

    @torch.inference_mode()
    def ref_predict(b: torch.Tensor) -> torch.Tensor:
        return ref(b).exp()

    out["reference"] = {"macs_per_image": macs_per_image(ref),
                        "torch": measure.throughput(ref_predict, xr, batch_size, min_seconds=min_seconds)[
                            "images_per_second"]}
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in model_configs.items():
            model = build_model("cnn", **cfg)
            run_dir = Path(tmp) / name.replace("/", "_").replace(" ", "")
            save_checkpoint(run_dir, model, {"dataset": "mnist"})
            row: dict[str, Any] = {"config": cfg, "macs_per_image": macs_per_image(model)}
            for backend in ("torch", "onnx"):
                pred = Predictor.load(run_dir, backend=backend, batch_size=batch_size)
                row[backend] = measure.throughput(pred.predict_proba, x_uint8, batch_size,
                                                  min_seconds=min_seconds)["images_per_second"]
            out[name] = row
    return out


def _parse(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_step", description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="cnn", help="digitlab recipe to profile (default: cnn)")
    p.add_argument("--set", action="append", default=[], metavar="K=V",
                   help="override a TrainConfig field for every variant (default: none)")
    p.add_argument("--variant", action="append", default=[], metavar="K=V[;K=V]",
                   help="also profile the recipe with these changes, repeatable (default: none)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per variant (default: 30)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--mnist-dir", default=None,
                   help="folder of the MNIST .gz files (default: the one benchmarks.run uses)")
    p.add_argument("--inference", action="append", default=[], metavar="JSON",
                   help="instead of training steps, time batched CPU inference of `cnn` models with "
                        'these configs, e.g. --inference \'{"channels": [16, 32, 64]}\' (repeatable)')
    p.add_argument("--no-reference", action="store_true", help="skip the reference CNN's step")
    args = p.parse_args(argv)

    from digitlab.data import load
    from digitlab.training import recipe_config

    from benchmarks.run import DEFAULT_MNIST

    ds = load("mnist", data_dir=args.mnist_dir or DEFAULT_MNIST)
    x, y = ds.x_train[:20000], ds.y_train[:20000]
    if args.inference:
        configs = {c: json.loads(c) for c in args.inference}
        res = profile_inference(configs, ds.x_test[:2000])
        for name, row in res.items():
            print(name, json.dumps(row), flush=True)
        return 0
    base = recipe_config(args.recipe, device=args.device, **_parse(args.set))
    variants = {"recipe": {}} | {v: _parse(v.split(";")) for v in args.variant}
    results: dict[str, Any] = {"machine": measure.machine_info(args.device)}
    for name, changes in variants.items():
        results[name] = profile_config(base.replace(**changes), x, y, steps=args.steps)
        print(name, json.dumps(results[name]), flush=True)
    if not args.no_reference:
        results["reference"] = profile_reference(x, y, device=args.device, steps=args.steps)
        print("reference", json.dumps(results["reference"]), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
