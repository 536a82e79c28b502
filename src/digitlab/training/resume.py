"""Continuing a run after a kill: the resume state saved at every epoch end, and restored from it.

On one machine with the same config a resumed run's final weights equal an uninterrupted run's
bit for bit (CPU): the model, the moving average, the optimiser, the random streams and the
counters are all saved, without pickle.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from digitlab.errors import DigitlabError
from digitlab.layout import RunFiles
from digitlab.training.config import TrainConfig
from digitlab.training.records import read_jsonl, write_jsonl
from digitlab.training.state import flatten_optimizer, load_train_state, save_train_state, unflatten_optimizer
from digitlab.training.trainer import Trainer

# Fields that may differ between a run and its resumption without changing the result's meaning.
RESUMABLE_CHANGES = {"device", "compile", "threads", "progress_every", "data_dir",
                     "reject_keep", "reject_keep_pictures", "reject_fit_samples",
                     "reject_eval_samples"}  # reject_*: used after training only


def restore(t: Trainer, run_dir: Path) -> None:
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
    t.history = read_jsonl(files.metrics, lambda r: r["epoch"] <= info["epoch"])
    t.step_history = read_jsonl(files.steps, lambda r: r["step"] <= t.step)
    if t.dd.main:  # drop records of the epoch that was interrupted
        write_jsonl(files.metrics, t.history)
        if t.step_history or files.steps.exists():
            write_jsonl(files.steps, t.step_history)


def _check_resume_config(run_dir: Path, saved: TrainConfig, config: TrainConfig) -> None:
    a, b = saved.to_dict(), config.to_dict()
    changed = sorted(k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES)
    if changed:
        raise DigitlabError(
            f"cannot resume {run_dir}: the config differs from the saved run in {changed} "
            f"(saved {[a[k] for k in changed]}, now {[b[k] for k in changed]}). Resume with the saved "
            "config (the CLI does so with --resume) or start a new run directory."
        )


def save_state(run_dir: Path, t: Trainer) -> None:
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
