"""One epoch of training: its steps, the evaluations on the way and at its end, early stopping, the saves.

Progress goes to `callback(event: dict)` (rank 0 only); records are appended to the run directory.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from digitlab.checkpoints import save_checkpoint
from digitlab.layout import RunFiles
from digitlab.training.config import TrainConfig
from digitlab.training.device import Dist, sync_device
from digitlab.training.optim import lr_at
from digitlab.training.records import append_jsonl
from digitlab.training.resume import save_state
from digitlab.training.step import train_step
from digitlab.training.trainer import Trainer

Callback = Callable[[dict[str, Any]], None]


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, autocast: Any,
              dd: Dist) -> dict[str, float]:
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


def _evaluate_all(t: Trainer) -> dict[str, float]:
    """Validation (and with track_test, test) loss and accuracy of the model now."""
    out: dict[str, float] = {}
    if len(t.data.x_val):
        val = _evaluate(t.result_model, t.data.x_val, t.data.y_val, t.config, t.autocast, t.dd)
        out.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
    if t.data.x_test is not None and t.data.y_test is not None:
        test = _evaluate(t.result_model, t.data.x_test, t.data.y_test, t.config, t.autocast, t.dd)
        out.update(test_loss=test["loss"], test_accuracy=test["accuracy"])
    return out


def run_epoch(t: Trainer, epoch: int, run_dir: Path | None, emit: Callback | None) -> tuple[torch.Tensor, float]:
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
    sync_device(t.device)
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
            sync_device(t.device)
            t.elapsed += time.perf_counter() - t0
            record = {"step": t.step, "epoch": epoch - 1 + batch / t.steps_per_epoch, "elapsed": t.elapsed,
                      "images": t.step * config.batch_size, **_evaluate_all(t)}
            t.step_history.append(record)
            if run_dir is not None and t.dd.main:
                append_jsonl(RunFiles(run_dir).steps, record)
            if emit is not None:
                emit({"event": "eval", "metrics": record})
            t.net.train()
            t0 = time.perf_counter()
        if t.step >= t.total_steps:
            break
    sync_device(t.device)
    t.elapsed += time.perf_counter() - t0
    return sums, lr


def end_epoch(t: Trainer, epoch: int, sums: torch.Tensor, lr: float, run_dir: Path | None) -> dict[str, Any]:
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
        append_jsonl(RunFiles(run_dir).metrics, record)
        if t.config.save_every_epoch:
            if not (t.step >= t.total_steps or t.stopped_early):  # the last epoch's model is saved once, after
                save_model(run_dir, t, record)  # a loadable snapshot: a crash leaves the last complete epoch
            save_state(run_dir, t)
    return record


def save_model(run_dir: Path, t: Trainer, record: dict[str, Any]) -> None:
    """Save `t`'s model (the moving average when there is one) as the run's checkpoint, with `record`."""
    save_checkpoint(run_dir, t.result_model, {"class_names": list(t.class_names), "dataset": t.dataset_name,
                                              "training": t.config.to_dict(), "metrics": record})
