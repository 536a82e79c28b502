"""The training loop: `fit(config, dataset, run_dir=...)` -> `TrainResult`; DDP under torchrun.

Whole splits live as float tensors on the device; each step (`train_step`) is one index_select,
one (optional) batched augmentation, forward, backward, update. The library never prints:
progress goes to `callback(event: dict)`, metrics are returned and appended to
`run_dir/metrics.jsonl`. `digitlab.training.train` runs this loop and then `finish_run`.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from digitlab._io import atomic_write_text
from digitlab.checkpoints import save_checkpoint, unwrap_model
from digitlab.errors import DigitlabError
from digitlab.layout import RunFiles, to_model_input
from digitlab.models import build_model
from digitlab.training.augment import random_affine, random_pen
from digitlab.training.config import TrainConfig
from digitlab.training.optim import build_optimizer, lr_at
from digitlab.training.state import flatten_optimizer, load_train_state, save_train_state, unflatten_optimizer

if TYPE_CHECKING:
    from digitlab.data import Dataset
    from digitlab.training.pipeline import RunOutputs

Callback = Callable[[dict[str, Any]], None]
# Fields that may differ between a run and its resumption without changing the result's meaning.
RESUMABLE_CHANGES = {"device", "compile", "threads", "progress_every", "data_dir",
                     "reject_keep", "reject_keep_pictures", "reject_fit_samples",
                     "reject_eval_samples"}  # reject_*: used after training only


@dataclass
class TrainResult:
    """What `fit` and `train` return: the trained model (eval mode, unwrapped) and its records."""

    model: nn.Module
    history: list[dict[str, Any]]  # one record per epoch (as in metrics.jsonl)
    step_history: list[dict[str, Any]] = field(default_factory=list)  # eval_every_steps records
    run_dir: Path | None = None
    config: TrainConfig | None = None
    steps: int = 0
    stopped_early: bool = False
    class_names: tuple[str, ...] = ()
    dataset: str = ""
    outputs: RunOutputs | None = None  # what `train` wrote after the loop (`finish_run`), with a run_dir

    @property
    def metrics(self) -> dict[str, Any]:
        """The last epoch's record."""
        return self.history[-1] if self.history else {}


def select_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """"auto": CUDA (this rank's GPU under torchrun), then Apple MPS, then CPU; else `name`."""
    if name != "auto":
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise DigitlabError(f"device {name!r} is not a torch device; use auto, cpu, cuda, cuda:N or mps") from exc
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DigitlabError(f"device {name!r}: CUDA is not available here; use --device cpu or auto")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise DigitlabError(f"device {name!r}: Apple MPS is not available here; use --device cpu or auto")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _autocast(device: torch.device, precision: str) -> tuple[Any, torch.dtype | None]:
    """(context factory, dtype) for mixed precision; fp32 needs none."""
    if precision == "auto":
        if device.type != "cuda":
            return contextlib.nullcontext, None
        precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return (lambda: torch.autocast(device.type, dtype=dtype)), dtype


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this call initialised the process group, so it tears it down

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_distributed() -> _Dist:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank % torch.cuda.device_count())
        dist.init_process_group(backend=backend)
        owns = True
    return _Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local_rank, owns_group=owns)


def _to_input(x_uint8: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) -> the model input float32 (N, 1, 28, 28) on `device` (`layout.to_model_input`)."""
    return to_model_input(torch.from_numpy(np.ascontiguousarray(x_uint8)).to(device))


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, autocast: Any,
              dd: _Dist) -> dict[str, float]:
    """Mean cross-entropy and accuracy on (x, y); each rank takes a strided share, summed across ranks."""
    was_training = model.training
    model.eval()
    if dd.world > 1:
        x, y = x[dd.rank::dd.world], y[dd.rank::dd.world]
    sums = torch.zeros(3, device=x.device, dtype=torch.float64)  # loss sum, correct, count
    for i in range(0, x.shape[0], config.eval_batch_size):
        xb, yb = x[i:i + config.eval_batch_size], y[i:i + config.eval_batch_size]
        with autocast():
            logits = model(xb.contiguous(memory_format=torch.channels_last) if config.channels_last else xb)
        logits = logits.float()
        sums[0] += F.cross_entropy(logits, yb, reduction="sum").double()
        sums[1] += (logits.argmax(1) == yb).sum()
        sums[2] += yb.shape[0]
    if dd.world > 1:
        dist.all_reduce(sums)
    model.train(was_training)
    loss, correct, n = sums.tolist()
    return {"loss": loss / max(n, 1), "accuracy": correct / max(n, 1)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _read_jsonl(path: Path, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if keep(r)]


def _write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


@dataclass
class _Trainer:
    """Everything one training run holds while it runs: data, model, optimiser, random streams, counters."""

    config: TrainConfig
    dd: _Dist
    device: torch.device
    data: _Splits
    model: nn.Module  # the plain registry model the optimiser trains
    net: nn.Module  # what the step calls: the model, maybe inside DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    scaler: Any
    autocast: Any
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    steps_per_epoch: int
    total_steps: int
    epochs: int
    step: int = 0
    start_epoch: int = 1
    elapsed: float = 0.0
    best_val: float = math.inf
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    step_history: list[dict[str, Any]] = field(default_factory=list)
    class_names: tuple[str, ...] = ()
    dataset_name: str = ""
    ema: nn.Module | None = None  # the weights' moving average (config.ema > 0)

    @property
    def result_model(self) -> nn.Module:
        """The model evaluated, saved and returned: the moving average when there is one."""
        return self.ema if self.ema is not None else self.model


EMA_WARMUP = 10  # the average's decay ramps up as (1 + step) / (EMA_WARMUP + step): early weights fade fast


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """Move `ema`'s floating-point parameters and buffers towards `model`'s: e = d * e + (1 - d) * m.

    The decay ramps up from 0.1 (`EMA_WARMUP`), so the first steps' random weights are forgotten;
    integer buffers (BatchNorm's batch count) are copied.
    """
    d = min(decay, (1 + step) / (EMA_WARMUP + step))
    pairs = [(e, m) for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True)]
    floats = [(e, m) for e, m in pairs if e.dtype.is_floating_point]
    torch._foreach_lerp_([e for e, _ in floats], [m for _, m in floats], 1.0 - d)
    for e, m in pairs:
        if not e.dtype.is_floating_point:
            e.copy_(m)


@dataclass
class _Splits:
    """The training, validation and (with track_test) test splits as model-input tensors on the device."""

    x_train: torch.Tensor  # (N, 1, 28, 28) float32
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    num_classes: int
    outliers: torch.Tensor | None = None  # (M, 28, 28) uint8: outlier exposure's non-digits (oe_weight > 0)
    outlier_parts: tuple[int, ...] = ()  # how many of them come from each source, in order
    photos: torch.Tensor | None = None  # (P, 28, 28) uint8: pictures of training digits (photo_digits > 0)
    photo_labels: torch.Tensor | None = None  # (P,) int64


def _splits(config: TrainConfig, dataset: Dataset, dd: _Dist, device: torch.device) -> _Splits:
    """The dataset's splits, whole, as tensors on `device` (validation = the first validation_size images)."""
    from digitlab.data import split_validation

    x_tr, y_tr, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, config.validation_size)
    if config.train_size is not None:
        x_tr, y_tr = x_tr[:config.train_size], y_tr[:config.train_size]
    if len(x_tr) < dd.world:
        raise DigitlabError(f"dataset {dataset.name}: only {len(x_tr)} training images after the validation "
                            f"split of {config.validation_size}; lower validation_size or train_size")

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, np.int64)).to(device)

    test = (_to_input(dataset.x_test, device), labels(dataset.y_test)) if config.track_test else (None, None)
    outliers: torch.Tensor | None = None
    parts: tuple[int, ...] = ()
    if config.oe_weight > 0:
        from digitlab.training.outliers import outlier_images

        sources = outlier_images(config, dataset)
        outliers = torch.from_numpy(np.concatenate(sources)).to(device)  # uint8: 1/4 of float's memory
        parts = tuple(len(s) for s in sources)
    photos = photo_labels = None
    if config.photo_digits:
        from digitlab.training.outliers import photo_digits

        px, py = photo_digits(config, x_tr, y_tr)
        photos, photo_labels = torch.from_numpy(px).to(device), labels(py)
    return _Splits(_to_input(x_tr, device), labels(y_tr), _to_input(x_val, device), labels(y_val), test[0], test[1],
                   num_classes=len(dataset.class_names), outliers=outliers, outlier_parts=parts, photos=photos,
                   photo_labels=photo_labels)


def _trainer(config: TrainConfig, dataset: Dataset, dd: _Dist, device: torch.device) -> _Trainer:
    """A fresh run: model, optimiser and random streams seeded from `config.seed`, the step budget."""
    data = _splits(config, dataset, dd, device)
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=data.num_classes, **config.model_config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(model, config)
    shuffle_gen = torch.Generator().manual_seed(config.seed)  # same on every rank: one permutation
    aug_gen = torch.Generator(device=device).manual_seed(config.seed + 1 + dd.rank)
    torch.manual_seed(config.seed + dd.rank)  # dropout differs per rank, as it should
    autocast, amp_dtype = _autocast(device, config.precision)
    n_local, local_batch = len(data.x_train) // dd.world, config.batch_size // dd.world
    steps_per_epoch = n_local // local_batch if config.drop_last else math.ceil(n_local / local_batch)
    if steps_per_epoch == 0:
        raise DigitlabError(f"batch_size={config.batch_size} exceeds the {len(data.x_train)} training images with "
                            "drop_last=True: no step would run; lower the batch size")
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    net: nn.Module = model
    if dd.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    ema = copy.deepcopy(unwrap_model(model)).eval().requires_grad_(False) if config.ema > 0 else None
    return _Trainer(config, dd, device, data, unwrap_model(model), net, optimizer,
                    torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None, autocast,
                    shuffle_gen, aug_gen, steps_per_epoch, total_steps, math.ceil(total_steps / steps_per_epoch),
                    class_names=tuple(dataset.class_names), dataset_name=dataset.name, ema=ema)


def _restore(t: _Trainer, run_dir: Path) -> None:
    """Continue `t` from the resume state in `run_dir` (its last complete epoch)."""
    tensors, info = load_train_state(run_dir)
    _check_resume_config(run_dir, TrainConfig.from_dict(info["config"]), t.config)
    t.model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    if t.ema is not None:
        t.ema.load_state_dict({k[len("ema."):]: v for k, v in tensors.items() if k.startswith("ema.")})
    t.optimizer.load_state_dict(unflatten_optimizer(tensors, info["optimizer"]))
    t.shuffle_gen.set_state(tensors["rng.shuffle"])
    if t.dd.main:
        t.aug_gen.set_state(tensors["rng.augment"])
        torch.set_rng_state(tensors["rng.cpu"])
        if t.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"], t.device)
    else:  # other ranks: fresh, distinct streams for the remaining epochs
        t.aug_gen.manual_seed(t.config.seed + 1 + t.dd.rank + 1000 * info["epoch"])
        torch.manual_seed(t.config.seed + t.dd.rank + 1000 * info["epoch"])
    if t.scaler is not None and info.get("scaler"):
        t.scaler.load_state_dict(info["scaler"])
    t.step, t.start_epoch, t.elapsed = info["step"], info["epoch"] + 1, info["elapsed"]
    t.best_val = math.inf if info["best_val"] is None else info["best_val"]
    t.bad_epochs, t.stopped_early = info["bad_epochs"], info.get("stopped_early", False)
    files = RunFiles(run_dir)
    t.history = _read_jsonl(files.metrics, lambda r: r["epoch"] <= info["epoch"])
    t.step_history = _read_jsonl(files.steps, lambda r: r["step"] <= t.step)
    if t.dd.main:  # drop records of the epoch that was interrupted
        _write_jsonl(files.metrics, t.history)
        if t.step_history or files.steps.exists():
            _write_jsonl(files.steps, t.step_history)


def _outlier_batch(t: _Trainer) -> torch.Tensor | None:
    """(K, 1, 28, 28) outliers drawn at random for this step, as many from each source; or None (no outlier
    exposure, or not yet)."""
    outliers, config = t.data.outliers, t.config
    if outliers is None or t.step < int(config.oe_start * t.total_steps):
        return None
    k = max(1, round(config.oe_fraction * config.batch_size / t.dd.world))
    parts = torch.tensor(t.data.outlier_parts, device=outliers.device)
    slot = torch.arange(k, device=outliers.device) * len(parts) // k  # the source of each of the k slots
    starts = torch.cumsum(parts, 0) - parts
    u = torch.rand(k, generator=t.aug_gen, device=outliers.device)
    idx = starts[slot] + (u * parts[slot]).long().clamp(max=parts[slot] - 1)
    return to_model_input(outliers[idx])


def _photo_batch(t: _Trainer) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(K, 1, 28, 28) pictures of training digits and their labels (K,) for this step, or None (none, not yet)."""
    photos, labels, config = t.data.photos, t.data.photo_labels, t.config
    if photos is None or labels is None or t.step < int(config.oe_start * t.total_steps):
        return None
    k = max(1, round(config.photo_fraction * config.batch_size / t.dd.world))
    idx = torch.randint(len(photos), (k,), generator=t.aug_gen, device=photos.device)
    return to_model_input(photos[idx]), labels[idx]


def _robust(t: _Trainer) -> bool:
    """Whether this step's batch gets the pen / scan changes and the elastic bend (from `aug_start` on)."""
    return t.step >= int(t.config.aug_start * t.total_steps)


def _pen(t: _Trainer, xb: torch.Tensor) -> torch.Tensor:
    """xb (B, 1, 28, 28) with other pens and scans on random shares (`augment.random_pen`), when configured."""
    config = t.config
    if not (config.aug_stroke or config.aug_blur or config.aug_lowres) or not _robust(t):
        return xb
    return random_pen(xb, t.aug_gen, stroke=config.aug_stroke, blur_share=config.aug_blur, lowres=config.aug_lowres)


def outlier_loss(logits: torch.Tensor) -> torch.Tensor:
    """Outlier exposure's loss for outlier logits (K, C): mean cross-entropy to the uniform distribution."""
    return (torch.logsumexp(logits, 1) - logits.mean(1)).mean()


def train_step(t: _Trainer, xb: torch.Tensor, yb: torch.Tensor, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step on the batch xb (B, 1, 28, 28), yb (B,): pen changes, outliers joined,
    warp, forward, loss, backward, update.

    From `oe_start` on, digit pictures (`photo_digits`, labelled) and outliers (`oe_weight`, pushed
    towards uniform) join the forward pass. Returns (loss, logits (B, C)): the labelled images'
    cross-entropy (the outliers' share left out) and the batch's own logits, both still on the
    device (reading them syncs it).
    """
    config = t.config
    for group in t.optimizer.param_groups:
        group["lr"] = lr
    n = xb.shape[0]
    if config.augment:
        xb = _pen(t, xb)
    photos = _photo_batch(t)
    if photos is not None:
        xb, yb = torch.cat([xb, photos[0]]), torch.cat([yb, photos[1]])
    outliers = _outlier_batch(t)
    n_in = xb.shape[0]
    if outliers is not None:
        xb = torch.cat([xb, outliers])  # (B [+ P] + K, 1, 28, 28): one forward pass, BatchNorm sees all
    if config.augment:
        xb = random_affine(xb, t.aug_gen, max_shift=config.aug_shift, max_rotation=config.aug_rotate,
                           max_scale=config.aug_scale, flip=config.aug_flip,
                           elastic=config.aug_elastic if _robust(t) else 0.0)
    if config.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    with t.autocast():
        logits = t.net(xb)  # (B [+ P + K], C)
    loss = F.cross_entropy(logits[:n_in].float(), yb, label_smoothing=config.label_smoothing)
    total = loss if outliers is None else loss + config.oe_weight * outlier_loss(logits[n_in:].float())
    logits = logits[:n]
    t.optimizer.zero_grad(set_to_none=True)
    if t.scaler is not None:
        t.scaler.scale(total).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
    else:
        total.backward()
        t.optimizer.step()
    if t.ema is not None:
        update_ema(t.ema, t.model, config.ema, t.step)
    return loss.detach(), logits.detach()


def _evaluate_all(t: _Trainer) -> dict[str, float]:
    """Validation (and with track_test, test) loss and accuracy of the model now."""
    out: dict[str, float] = {}
    if len(t.data.x_val):
        val = _evaluate(t.result_model, t.data.x_val, t.data.y_val, t.config, t.autocast, t.dd)
        out.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
    if t.data.x_test is not None and t.data.y_test is not None:
        test = _evaluate(t.result_model, t.data.x_test, t.data.y_test, t.config, t.autocast, t.dd)
        out.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
    return out


def _run_epoch(t: _Trainer, epoch: int, run_dir: Path | None, emit: Callback | None) -> tuple[torch.Tensor, float]:
    """Train one epoch (or up to the step budget); returns ((loss sum, correct, count) on the device, last lr).

    `emit` (rank 0 with a callback only) gets the epoch_start, step and eval events.
    """
    from digitlab.data import iterate_batches

    config, lr = t.config, lr_at(t.config, max(t.step - 1, 0), t.total_steps, t.steps_per_epoch)
    t.net.train()
    if emit is not None:
        emit({"event": "epoch_start", "epoch": epoch, "epochs": t.epochs,
              "steps": min(t.steps_per_epoch, t.total_steps - t.step)})
    sums = torch.zeros(3, device=t.device, dtype=torch.float64)  # loss sum, correct, count
    _sync(t.device)
    t0 = time.perf_counter()
    shard = (t.dd.rank, t.dd.world) if t.dd.world > 1 else None
    batches = iterate_batches(t.data.x_train, t.data.y_train, batch_size=config.batch_size // t.dd.world,
                              shuffle=True, generator=t.shuffle_gen, drop_last=config.drop_last, shard=shard)
    for batch, (xb, yb) in enumerate(batches, start=1):
        lr = lr_at(config, t.step, t.total_steps, t.steps_per_epoch)
        loss, logits = train_step(t, xb, yb, lr)
        with torch.no_grad():
            sums[0] += loss.double() * yb.shape[0]
            sums[1] += (logits.argmax(1) == yb).sum()
            sums[2] += yb.shape[0]
        t.step += 1
        if emit is not None and batch % config.progress_every == 0:
            s = sums.tolist()
            emit({"event": "step", "epoch": epoch, "step": t.step, "batch": batch,
                  "loss": s[0] / s[2], "accuracy": s[1] / s[2], "lr": lr})
        if config.eval_every_steps and t.step % config.eval_every_steps == 0:
            _sync(t.device)
            t.elapsed += time.perf_counter() - t0
            record = {"step": t.step, "epoch": epoch - 1 + batch / t.steps_per_epoch, "elapsed": t.elapsed,
                      "images": t.step * config.batch_size, **_evaluate_all(t)}
            t.step_history.append(record)
            if run_dir is not None and t.dd.main:
                _append_jsonl(RunFiles(run_dir).steps, record)
            if emit is not None:
                emit({"event": "eval", "metrics": record})
            t.net.train()
            t0 = time.perf_counter()
        if t.step >= t.total_steps:
            break
    _sync(t.device)
    t.elapsed += time.perf_counter() - t0
    return sums, lr


def _end_epoch(t: _Trainer, epoch: int, sums: torch.Tensor, lr: float, run_dir: Path | None) -> dict[str, Any]:
    """Evaluate, record the epoch, decide early stopping, and save the resume state; returns the record."""
    if t.dd.world > 1:
        dist.all_reduce(sums)
    train_loss, train_correct, seen = sums.tolist()
    record = {"epoch": epoch, "step": t.step, "elapsed": t.elapsed, "lr": lr,
              "train_loss": train_loss / seen, "train_accuracy": train_correct / seen, **_evaluate_all(t)}
    t.history.append(record)
    if "val_loss" in record and t.config.patience is not None:
        if record["val_loss"] < t.best_val:
            t.best_val, t.bad_epochs = record["val_loss"], 0
        else:
            t.bad_epochs += 1
            t.stopped_early = t.bad_epochs >= t.config.patience
    if run_dir is not None and t.dd.main:
        _append_jsonl(RunFiles(run_dir).metrics, record)
        if t.config.save_every_epoch:
            if not (t.step >= t.total_steps or t.stopped_early):  # the last epoch's model is saved once, after
                _save_model(run_dir, t, record)  # a loadable snapshot: a crash leaves the last complete epoch
            _save_state(run_dir, t)
    return record


def _save_model(run_dir: Path, t: _Trainer, record: dict[str, Any]) -> None:
    save_checkpoint(run_dir, t.result_model, {"class_names": list(t.class_names), "dataset": t.dataset_name,
                                       "training": t.config.to_dict(), "metrics": record})


def fit(
    config: TrainConfig,
    dataset: Dataset | None = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    callback: Callback | None = None,
    save_final: bool = True,
) -> TrainResult:
    """The training loop alone: train `config.model` on `dataset` (None loads `config.dataset`).

    Validation is the first `config.validation_size` training images, evaluated every epoch;
    the test split is used only when `config.track_test`. With `run_dir`, rank 0 appends
    `metrics.jsonl` (one JSON object per epoch) and `steps.jsonl` (with `eval_every_steps`); at
    every epoch end the resume state and, but for the last epoch, a checkpoint (a kill leaves the
    last complete epoch loadable); the final checkpoint once at the end when `save_final`
    (`train` passes False: `finish_run` saves it, with its test metrics). `resume=True` continues
    `run_dir` from its last complete epoch; on one machine with the same config the final weights
    equal an uninterrupted run's bit for bit (CPU). Under torchrun (WORLD_SIZE > 1)
    it trains with DistributedDataParallel.
    `callback(event)` gets dicts with `event` in {"epoch_start", "step", "epoch_end", "eval"}.
    """
    from digitlab.data import load

    dd = _init_distributed()
    threads = torch.get_num_threads()
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        device = select_device(config.device, dd.local_rank)
        if dataset is None:
            dataset = load(config.dataset, data_dir=config.data_dir)
        run_path = Path(run_dir) if run_dir is not None else None
        if resume and run_path is None:
            raise DigitlabError("resume=True needs the run directory to resume (run_dir / --run-dir)")
        if config.batch_size % dd.world:
            raise DigitlabError(f"batch_size={config.batch_size} does not split evenly over {dd.world} "
                                "processes; use a multiple of the world size")
        t = _trainer(config, dataset, dd, device)
        if resume:
            assert run_path is not None
            _restore(t, run_path)
        elif run_path is not None and dd.main:
            run_path.mkdir(parents=True, exist_ok=True)
            for stale in (RunFiles(run_path).metrics, RunFiles(run_path).steps):
                stale.unlink(missing_ok=True)

        emit = callback if dd.main else None
        for epoch in range(t.start_epoch, t.epochs + 1):
            if t.step >= t.total_steps or t.stopped_early:
                break
            sums, lr = _run_epoch(t, epoch, run_path, emit)
            record = _end_epoch(t, epoch, sums, lr, run_path)
            if emit is not None:
                emit({"event": "epoch_end", "epoch": epoch, "epochs": t.epochs, "metrics": record})
        if save_final and run_path is not None and dd.main and t.history:
            _save_model(run_path, t, t.history[-1])
        t.model.eval()
        return TrainResult(model=t.result_model.eval(), history=t.history, step_history=t.step_history,
                           run_dir=run_path, config=config, steps=t.step, stopped_early=t.stopped_early,
                           class_names=tuple(dataset.class_names), dataset=dataset.name)
    finally:
        torch.set_num_threads(threads)  # the setting is process-wide: leave it as found
        if dd.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _check_resume_config(run_dir: Path, saved: TrainConfig, config: TrainConfig) -> None:
    a, b = saved.to_dict(), config.to_dict()
    changed = sorted(k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES)
    if changed:
        raise DigitlabError(
            f"cannot resume {run_dir}: the config differs from the saved run in {changed} "
            f"(saved {[a[k] for k in changed]}, now {[b[k] for k in changed]}). Resume with the saved "
            "config (the CLI does so with --resume) or start a new run directory."
        )


def _save_state(run_dir: Path, t: _Trainer) -> None:
    """Everything needed to continue after this epoch, without pickle."""
    opt_tensors, opt_rest = flatten_optimizer(t.optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in t.model.state_dict().items()}
    if t.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in t.ema.state_dict().items()})
    tensors.update(opt_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors["rng.shuffle"] = t.shuffle_gen.get_state()
    tensors["rng.augment"] = t.aug_gen.get_state()
    if t.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(t.device)
    info = {"config": t.config.to_dict(), "optimizer": opt_rest,
            "scaler": t.scaler.state_dict() if t.scaler is not None else None,
            "epoch": t.history[-1]["epoch"], "step": t.step, "elapsed": t.elapsed,
            "best_val": None if math.isinf(t.best_val) else t.best_val, "bad_epochs": t.bad_epochs,
            "stopped_early": t.stopped_early}
    save_train_state(run_dir, tensors, info)
