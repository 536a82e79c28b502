"""Training the CTC line reader on synthetic lines made on the fly (a prototype trainer).

    synth = LineSynth(ds.x_train, ds.y_train, nondigit_split="train")
    fit = fit_reader(LineReader(), synth, ReaderTrainConfig(steps=3000))
    fit.model, fit.losses, fit.seconds
    save_reader("runs/reader-proto", fit.model, extra={"metrics": ...})

Every step draws a fresh batch of lines (`LineSynth.make`, ~0.5 ms a line on one core), pads it
to its widest line and minimises CTC (Graves et al. 2006; blank 0, zero_infinity so the rare line
too short for its labels is skipped rather than a NaN) with AdamW under a one-cycle schedule
(Smith & Topin 2017) and gradient clipping (the usual guard for CTC's occasional spikes).
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.inference.ctc import pad_lines
from digitlab.models.reader import LineReader, reader_config
from digitlab.synth.lines import BLANK, LineBatch, LineSynth

WEIGHTS, META = "reader.safetensors", "reader.json"  # the prototype's files in its run directory
POOL_BATCHES = 16  # batches made at once and sorted by width: similar widths share a batch, padding shrinks
PLAN_AFTER = 40  # steps timed before deciding how many fit in max_seconds (the first few are slower)


@dataclass(frozen=True)
class ReaderTrainConfig:
    """What `fit_reader` does; each default with its reason."""

    steps: int = 3000  # optimiser steps; each sees `batch_size` new lines
    batch_size: int = 32  # lines per step: ~200 characters, enough for stable BatchNorm statistics
    lr: float = 3e-3  # one-cycle peak; AdamW on a small BN network tolerates it
    weight_decay: float = 1e-2  # AdamW's default-like decay, decoupled from the gradient
    pct_start: float = 0.15  # share of the steps spent warming up to `lr`
    grad_clip: float = 5.0  # max gradient norm: CTC's rare huge gradients would undo the warm-up
    condition: str = "train"  # the LineStyle the lines are drawn from (digitlab.synth.lines.CONDITIONS)
    seed: int = 0  # lines, initialisation and dropout
    log_every: int = 50  # steps between entries of ReaderFit.losses
    max_seconds: float | None = None  # a time budget: fewer steps if `steps` would not fit (see fit_reader)


@dataclass
class ReaderFit:
    """A trained reader and how its training went."""

    model: LineReader
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean CTC loss since the last entry)
    seconds: float = 0.0  # wall-clock time of the loop, line making included
    lines: int = 0  # lines seen
    stopped_at: int | None = None  # the steps max_seconds allowed, when fewer than config.steps; None: all ran


def ctc_batch(batch: LineBatch, stride: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A LineBatch as CTCLoss inputs: x (N, 1, 32, W), widths (N,), targets (sum L,), target lengths (N,)."""
    x, widths = pad_lines(batch.images, stride=stride)
    targets = torch.from_numpy(np.concatenate([*batch.labels, np.zeros(0, np.int64)]))
    lengths = torch.tensor([len(lab) for lab in batch.labels], dtype=torch.int64)
    return x, widths, targets, lengths


def _batches(synth: LineSynth, config: ReaderTrainConfig, rng: np.random.Generator) -> Iterator[LineBatch]:
    """Batches of fresh lines without end, each cut from a pool sorted by width (less padding to compute)."""
    while True:
        pool = synth.make(POOL_BATCHES * config.batch_size, rng, config.condition)
        order = np.argsort(pool.widths(), kind="stable")
        for b in rng.permutation(POOL_BATCHES).tolist():
            idx = order[b * config.batch_size:(b + 1) * config.batch_size].tolist()
            yield LineBatch([pool.images[i] for i in idx], [pool.labels[i] for i in idx],
                            [pool.spans[i] for i in idx], [pool.kinds[i] for i in idx])


def _one_cycle(opt: torch.optim.Optimizer, config: ReaderTrainConfig, total: int,
               done: int = 0) -> torch.optim.lr_scheduler.OneCycleLR:
    """torch's one-cycle schedule over `total` steps, moved on by the `done` steps already taken."""
    for group in opt.param_groups:  # OneCycleLR starts from the group's own lr when it is rebuilt
        group.pop("initial_lr", None)
        group.pop("max_lr", None)
        group.pop("min_lr", None)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=config.lr, total_steps=total,
                                                pct_start=config.pct_start)
    for _ in range(done):
        sched.step()
    return sched


def _steps_that_fit(config: ReaderTrainConfig, done: int, seconds: float) -> int:
    """The steps that fit in config.max_seconds at the pace of the first `done` steps (at most config.steps)."""
    if config.max_seconds is None:
        return config.steps
    return max(done + 1, min(config.steps, int(config.max_seconds * done / seconds)))


def fit_reader(model: LineReader, synth: LineSynth, config: ReaderTrainConfig, *,
               on_log: Callable[[int, float], None] | None = None) -> ReaderFit:
    """Train `model` in place on `config.steps` batches of fresh lines from `synth`; returns a ReaderFit.

    With config.max_seconds, the pace of the first PLAN_AFTER steps decides how many steps fit,
    and the one-cycle schedule is re-planned over them (so it still anneals); ReaderFit.stopped_at
    then says where training ended. on_log(step, loss) is called every `config.log_every` steps.
    """
    if config.steps < 1 or config.batch_size < 1:
        raise DigitlabError(f"fit_reader: steps={config.steps} batch_size={config.batch_size}; both must be >= 1")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 0x11AE])
    loss_fn = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = config.steps
    sched = _one_cycle(opt, config, total)
    fit, running, start = ReaderFit(model), [], time.perf_counter()
    model.train()
    for step, batch in enumerate(_batches(synth, config, rng), start=1):
        x, widths, targets, lengths = ctc_batch(batch, model.stride)
        loss = loss_fn(model(x), targets, model.output_lengths(widths), lengths)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        running.append(loss.item())
        if step == total:
            break
        sched.step()
        if step == PLAN_AFTER and _steps_that_fit(config, step, time.perf_counter() - start) < total:
            total = _steps_that_fit(config, step, time.perf_counter() - start)
            sched = _one_cycle(opt, config, total, done=step)
        if step % config.log_every == 0:
            fit.losses.append((step, float(np.mean(running))))
            running = []
            if on_log is not None:
                on_log(*fit.losses[-1])
    fit.losses.append((total, float(np.mean(running))))
    fit.seconds, fit.lines = time.perf_counter() - start, total * config.batch_size
    fit.stopped_at = total if total < config.steps else None
    model.eval()
    return fit


def save_reader(run_dir: str | Path, model: LineReader, *, extra: dict[str, Any] | None = None) -> Path:
    """Write `model` to `run_dir`: reader.safetensors (weights) and reader.json (its config, plus `extra`'s keys).

    Returns `run_dir`. `load_reader(run_dir)` rebuilds the model from the config and loads the weights.
    """
    clash = sorted({"format", "model"} & set(extra or {}))
    if clash:
        raise DigitlabError(f"save_reader: extra keys {clash} are reserved for the file's own fields; rename them")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, run_dir / WEIGHTS)
    meta = {"format": 1, "model": {"name": "line_reader", "config": reader_config(model)}, **(extra or {})}
    (run_dir / META).write_text(json.dumps(meta, indent=2, default=_jsonable) + "\n", encoding="utf-8")
    return run_dir


def load_reader(run_dir: str | Path) -> LineReader:
    """The LineReader saved by `save_reader` in `run_dir`, in eval mode."""
    run_dir = Path(run_dir)
    if not (run_dir / META).is_file() or not (run_dir / WEIGHTS).is_file():
        raise DigitlabError(f"{run_dir} holds no line reader ({META} and {WEIGHTS}); train one with "
                            "digitlab.training.line_reader.fit_reader and save it with save_reader")
    model = LineReader(**json.loads((run_dir / META).read_text(encoding="utf-8"))["model"]["config"])
    model.load_state_dict(load_file(run_dir / WEIGHTS))
    return model.eval()


def _jsonable(value: Any) -> Any:
    """json.dumps' fallback: dataclasses as dicts, NumPy scalars as numbers."""
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-able")
