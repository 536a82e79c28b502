"""The training loop: `fit(config, dataset, run_dir=...)` -> `TrainResult`; DDP under torchrun.

Whole splits live as float tensors on the device (`trainer`); each step (`step.train_step`) is
one index_select, one (optional) batched augmentation, forward, backward, update; `epoch` runs
the steps and records each epoch, `resume` continues a killed run, `device` picks where it all
runs. The library never prints: progress goes to `callback(event: dict)`, metrics are returned
and appended to `run_dir/metrics.jsonl`. `digitlab.runs.train` runs this loop and then `finish_run`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.layout import RunFiles
from digitlab.training.config import TrainConfig
from digitlab.training.device import Dist, init_distributed, select_device
from digitlab.training.epoch import Callback, end_epoch, run_epoch, save_model
from digitlab.training.resume import restore
from digitlab.training.trainer import Trainer, build_trainer

if TYPE_CHECKING:
    from digitlab.data import Dataset


@dataclass
class TrainResult:
    """What `fit` returns: the trained model (eval mode, unwrapped) and its records."""

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

    dd = init_distributed()
    threads = torch.get_num_threads()
    try:
        if config.threads:
            torch.set_num_threads(config.threads)
        device = select_device(config.device, dd.local_rank)
        if dataset is None:
            dataset = load(config.dataset, data_dir=config.data_dir)
        run_path = Path(run_dir) if run_dir is not None else None
        _check_request(config, dd, run_path, resume)
        t = build_trainer(config, dataset, dd, device)
        _start(t, run_path, resume)
        emit = callback if dd.main else None
        for epoch in range(t.start_epoch, t.epochs + 1):
            if t.step >= t.total_steps or t.stopped_early:
                break
            sums, lr = run_epoch(t, epoch, run_path, emit)
            record = end_epoch(t, epoch, sums, lr, run_path)
            if emit is not None:
                emit({"event": "epoch_end", "epoch": epoch, "epochs": t.epochs, "metrics": record})
        if save_final and run_path is not None and dd.main and t.history:
            save_model(run_path, t, t.history[-1])
        t.model.eval()
        return TrainResult(model=t.result_model.eval(), history=t.history, step_history=t.step_history,
                           run_dir=run_path, config=config, steps=t.step, stopped_early=t.stopped_early,
                           class_names=tuple(dataset.class_names), dataset=dataset.name)
    finally:
        torch.set_num_threads(threads)  # the setting is process-wide: leave it as found
        if dd.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def _check_request(config: TrainConfig, dd: Dist, run_path: Path | None, resume: bool) -> None:
    """DigitlabError when `fit` was asked for what cannot be done: resume with no run directory, a batch
    that does not split over the processes."""
    if resume and run_path is None:
        raise DigitlabError("resume=True needs the run directory to resume (run_dir / --run-dir)")
    if config.batch_size % dd.world:
        raise DigitlabError(f"batch_size={config.batch_size} does not split evenly over {dd.world} "
                            "processes; use a multiple of the world size")


def _start(t: Trainer, run_path: Path | None, resume: bool) -> None:
    """Continue `t` from `run_path` with `resume`; else (rank 0) create the run directory and drop the records
    an earlier run left there."""
    if resume:
        assert run_path is not None
        restore(t, run_path)
    elif run_path is not None and t.dd.main:
        run_path.mkdir(parents=True, exist_ok=True)
        for stale in (RunFiles(run_path).metrics, RunFiles(run_path).steps):
            stale.unlink(missing_ok=True)
