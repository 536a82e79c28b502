"""The training loop: `train(config, dataset, run_dir=...)` -> `TrainResult`; DDP under torchrun.

Whole splits live as float tensors on the device; each step is one index_select, one
(optional) batched affine warp, forward, backward, step. The library never prints: progress
goes to `callback(event: dict)`, metrics are returned and appended to `run_dir/metrics.jsonl`.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from digitlab._io import atomic_write_text
from digitlab.checkpoints import save_checkpoint, unwrap_model
from digitlab.errors import DigitlabError
from digitlab.models import build_model
from digitlab.training.augment import random_affine
from digitlab.training.config import TrainConfig
from digitlab.training.optim import build_optimizer, lr_at
from digitlab.training.state import (flatten_optimizer, load_train_state, save_train_state,
                                     unflatten_optimizer)

METRICS_NAME = "metrics.jsonl"
STEPS_NAME = "steps.jsonl"
Callback = Callable[[dict[str, Any]], None]
# Fields that may differ between a run and its resumption without changing the result's meaning.
RESUMABLE_CHANGES = {"device", "compile", "threads", "progress_every", "data_dir"}


@dataclass
class TrainResult:
    """What `train` returns: the trained model (eval mode, unwrapped) and its records."""

    model: nn.Module
    history: list[dict[str, Any]]  # one record per epoch (as in metrics.jsonl)
    step_history: list[dict[str, Any]] = field(default_factory=list)  # eval_every_steps records
    run_dir: Path | None = None
    config: TrainConfig | None = None
    steps: int = 0
    stopped_early: bool = False
    class_names: tuple[str, ...] = ()
    dataset: str = ""

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
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28) in [0, 1] on `device`: pixels / 255, as every model wants."""
    return (torch.from_numpy(np.ascontiguousarray(x_uint8)).to(device).unsqueeze(1).float() / 255.0)


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


def train(
    config: TrainConfig,
    dataset: Any = None,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    resume: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train `config.model` on `dataset` (a `digitlab.data.Dataset`; None loads `config.dataset`).

    Validation is the first `config.validation_size` training images, evaluated every epoch;
    the test split is used only when `config.track_test`. With `run_dir`, rank 0 writes
    `metrics.jsonl` (one JSON object per epoch), `steps.jsonl` (with `eval_every_steps`), and at
    every epoch end the checkpoint (`model.safetensors` + `model.json`) and the resume state.
    `resume=True` continues `run_dir` from its last complete epoch; on one machine with the
    same config the final weights equal an uninterrupted run's bit for bit (CPU).
    Under torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel.
    `callback(event)` gets dicts with `event` in {"epoch_start", "step", "epoch_end", "eval"}.
    """
    from digitlab.data import iterate_batches, load, split_validation

    dd = _init_distributed()
    threads = torch.get_num_threads()
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        device = select_device(config.device, dd.local_rank)
        if device.type == "cuda" and device.index is None:  # "cuda" under torchrun: this rank's GPU
            device = torch.device("cuda", dd.local_rank % torch.cuda.device_count())
        if dataset is None:
            dataset = load(config.dataset, data_dir=config.data_dir)
        run_path = Path(run_dir) if run_dir is not None else None
        if resume and run_path is None:
            raise DigitlabError("resume=True needs the run directory to resume (run_dir / --run-dir)")
        if config.batch_size % dd.world:
            raise DigitlabError(f"batch_size={config.batch_size} does not split evenly over {dd.world} "
                                "processes; use a multiple of the world size")
        return _train(config, dataset, run_path, resume, callback, dd, device,
                      iterate_batches, split_validation)
    finally:
        torch.set_num_threads(threads)  # the setting is process-wide: leave it as found
        if dd.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _train(config: TrainConfig, dataset: Any, run_dir: Path | None, resume: bool,
           callback: Callback | None, dd: _Dist, device: torch.device,
           iterate_batches: Any, split_validation: Any) -> TrainResult:
    # -- data: whole splits as tensors on the device
    x_tr, y_tr, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, config.validation_size)
    if config.train_size is not None:
        x_tr, y_tr = x_tr[:config.train_size], y_tr[:config.train_size]
    if len(x_tr) < dd.world:
        raise DigitlabError(f"dataset {dataset.name}: only {len(x_tr)} training images after the validation "
                            f"split of {config.validation_size}; lower validation_size or train_size")
    xtr, ytr = _to_input(x_tr, device), torch.from_numpy(np.asarray(y_tr, np.int64)).to(device)
    xval, yval = _to_input(x_val, device), torch.from_numpy(np.asarray(y_val, np.int64)).to(device)
    if config.track_test:
        xte, yte = _to_input(dataset.x_test, device), torch.from_numpy(np.asarray(dataset.y_test, np.int64)).to(device)
    num_classes = len(dataset.class_names)

    # -- model, optimiser, random streams
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=num_classes, **config.model_config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, config)
    shuffle_gen = torch.Generator().manual_seed(config.seed)  # same on every rank: one permutation
    aug_gen = torch.Generator(device=device).manual_seed(config.seed + 1 + dd.rank)
    torch.manual_seed(config.seed + dd.rank)  # dropout differs per rank, as it should
    autocast, amp_dtype = _autocast(device, config.precision)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    local_batch = config.batch_size // dd.world
    shard = (dd.rank, dd.world) if dd.world > 1 else None
    n_local = len(xtr) // dd.world
    steps_per_epoch = n_local // local_batch if config.drop_last else math.ceil(n_local / local_batch)
    if steps_per_epoch == 0:
        raise DigitlabError(f"batch_size={config.batch_size} exceeds the {len(xtr)} training images with "
                            "drop_last=True: no step would run; lower the batch size")
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    epochs = math.ceil(total_steps / steps_per_epoch)

    # -- bookkeeping, possibly restored
    history: list[dict[str, Any]] = []
    step_history: list[dict[str, Any]] = []
    step, start_epoch, elapsed = 0, 1, 0.0
    best_val, bad_epochs, stopped_early = math.inf, 0, False
    if resume:
        assert run_dir is not None
        tensors, info = load_train_state(run_dir)
        _check_resume_config(run_dir, TrainConfig.from_dict(info["config"]), config)
        unwrap_model(model).load_state_dict(
            {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        optimizer.load_state_dict(unflatten_optimizer(tensors, info["optimizer"]))
        shuffle_gen.set_state(tensors["rng.shuffle"])
        if dd.main:
            aug_gen.set_state(tensors["rng.augment"])
            torch.set_rng_state(tensors["rng.cpu"])
            if device.type == "cuda" and "rng.cuda" in tensors:
                torch.cuda.set_rng_state(tensors["rng.cuda"], device)
        else:  # other ranks: fresh, distinct streams for the remaining epochs
            aug_gen.manual_seed(config.seed + 1 + dd.rank + 1000 * info["epoch"])
            torch.manual_seed(config.seed + dd.rank + 1000 * info["epoch"])
        if scaler is not None and info.get("scaler"):
            scaler.load_state_dict(info["scaler"])
        step, start_epoch, elapsed = info["step"], info["epoch"] + 1, info["elapsed"]
        best_val = math.inf if info["best_val"] is None else info["best_val"]
        bad_epochs = info["bad_epochs"]
        stopped_early = info.get("stopped_early", False)
        history = _read_jsonl(run_dir / METRICS_NAME, lambda r: r["epoch"] <= info["epoch"])
        step_history = _read_jsonl(run_dir / STEPS_NAME, lambda r: r["step"] <= step)
        if dd.main:  # drop records of the epoch that was interrupted
            _write_jsonl(run_dir / METRICS_NAME, history)
            if step_history or (run_dir / STEPS_NAME).exists():
                _write_jsonl(run_dir / STEPS_NAME, step_history)
    elif run_dir is not None and dd.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for name in (METRICS_NAME, STEPS_NAME):
            (run_dir / name).unlink(missing_ok=True)

    net: nn.Module = model
    if dd.world > 1:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)
    core = unwrap_model(model)
    meta_base = {"class_names": list(dataset.class_names), "dataset": dataset.name,
                 "training": config.to_dict()}

    def emit(event: dict[str, Any]) -> None:
        if callback is not None and dd.main:
            callback(event)

    def evaluate_all() -> dict[str, float]:
        out: dict[str, float] = {}
        if len(xval):
            val = _evaluate(core, xval, yval, config, autocast, dd)
            out.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        if config.track_test:
            test = _evaluate(core, xte, yte, config, autocast, dd)
            out.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
        return out

    lr = lr_at(config, max(step - 1, 0), total_steps, steps_per_epoch)
    for epoch in range(start_epoch, epochs + 1):
        if step >= total_steps or stopped_early:
            break
        net.train()
        emit({"event": "epoch_start", "epoch": epoch, "epochs": epochs,
              "steps": min(steps_per_epoch, total_steps - step)})
        sums = torch.zeros(3, device=device, dtype=torch.float64)  # loss sum, correct, count
        _sync(device)
        t0 = time.perf_counter()
        batch = 0
        for xb, yb in iterate_batches(xtr, ytr, batch_size=local_batch, shuffle=True, generator=shuffle_gen,
                                      drop_last=config.drop_last, shard=shard):
            lr = lr_at(config, step, total_steps, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            if config.augment:
                xb = random_affine(xb, aug_gen, max_shift=config.aug_shift, max_rotation=config.aug_rotate,
                                   max_scale=config.aug_scale, flip=config.aug_flip)
            if config.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast():
                logits = net(xb)  # (B, C)
            loss = F.cross_entropy(logits.float(), yb, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                sums[0] += loss.detach().double() * yb.shape[0]
                sums[1] += (logits.argmax(1) == yb).sum()
                sums[2] += yb.shape[0]
            step += 1
            batch += 1
            if callback is not None and dd.main and (batch % config.progress_every == 0):
                s = sums.tolist()
                emit({"event": "step", "epoch": epoch, "step": step, "batch": batch,
                      "loss": s[0] / s[2], "accuracy": s[1] / s[2], "lr": lr})
            if config.eval_every_steps and step % config.eval_every_steps == 0:
                _sync(device)
                elapsed += time.perf_counter() - t0
                record = {"step": step, "epoch": epoch - 1 + batch / steps_per_epoch, "elapsed": elapsed,
                          "images": step * config.batch_size, **evaluate_all()}
                step_history.append(record)
                if run_dir is not None and dd.main:
                    _append_jsonl(run_dir / STEPS_NAME, record)
                emit({"event": "eval", "metrics": record})
                net.train()
                t0 = time.perf_counter()
            if step >= total_steps:
                break
        _sync(device)
        elapsed += time.perf_counter() - t0
        if dd.world > 1:
            dist.all_reduce(sums)
        train_loss, train_correct, seen = sums.tolist()
        record = {"epoch": epoch, "step": step, "elapsed": elapsed, "lr": lr,
                  "train_loss": train_loss / seen, "train_accuracy": train_correct / seen, **evaluate_all()}
        history.append(record)
        if "val_loss" in record and config.patience is not None:
            if record["val_loss"] < best_val:
                best_val, bad_epochs = record["val_loss"], 0
            else:
                bad_epochs += 1
                stopped_early = bad_epochs >= config.patience
        if run_dir is not None and dd.main:
            _append_jsonl(run_dir / METRICS_NAME, record)
            if config.save_every_epoch:
                save_checkpoint(run_dir, core, {**meta_base, "metrics": record})
                _save_state(run_dir, config, core, optimizer, scaler, shuffle_gen, aug_gen, device,
                            epoch=epoch, step=step, elapsed=elapsed,
                            best_val=None if math.isinf(best_val) else best_val,
                            bad_epochs=bad_epochs, stopped_early=stopped_early)
        emit({"event": "epoch_end", "epoch": epoch, "epochs": epochs, "metrics": record})

    if run_dir is not None and dd.main and history:
        save_checkpoint(run_dir, core, {**meta_base, "metrics": history[-1]})
    core.eval()
    return TrainResult(model=core, history=history, step_history=step_history, run_dir=run_dir, config=config,
                       steps=step, stopped_early=stopped_early, class_names=tuple(dataset.class_names),
                       dataset=dataset.name)


def _check_resume_config(run_dir: Path, saved: TrainConfig, config: TrainConfig) -> None:
    a, b = saved.to_dict(), config.to_dict()
    changed = sorted(k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES)
    if changed:
        raise DigitlabError(
            f"cannot resume {run_dir}: the config differs from the saved run in {changed} "
            f"(saved {[a[k] for k in changed]}, now {[b[k] for k in changed]}). Resume with the saved "
            "config (the CLI does so with --resume) or start a new run directory."
        )


def _save_state(run_dir: Path, config: TrainConfig, model: nn.Module, optimizer: torch.optim.Optimizer,
                scaler: Any, shuffle_gen: torch.Generator, aug_gen: torch.Generator, device: torch.device,
                **counters: Any) -> None:
    """Everything needed to continue after this epoch, without pickle."""
    opt_tensors, opt_rest = flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update(opt_tensors)
    tensors["rng.cpu"] = torch.get_rng_state()
    tensors["rng.shuffle"] = shuffle_gen.get_state()
    tensors["rng.augment"] = aug_gen.get_state()
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    info = {"config": config.to_dict(), "optimizer": opt_rest,
            "scaler": scaler.state_dict() if scaler is not None else None, **counters}
    save_train_state(run_dir, tensors, info)
