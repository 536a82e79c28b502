"""Training the CTC line reader on synthetic lines made on the fly (a prototype trainer).

    synth = LineSynth(ds.x_train, ds.y_train, nondigit_split="train")
    fit = fit_reader(LineReader(), synth, ReaderTrainConfig(steps=3000))
    fit.model, fit.losses, fit.seconds
    save_reader("runs/reader-proto", fit.model, extra={"metrics": ...})   # digitlab.models.reader

Every step draws a fresh batch of lines (`LineSynth.make`, ~0.5 ms a line on one core), pads it
to its widest line and minimises CTC (Graves et al. 2006; blank 0, zero_infinity so the rare line
too short for its labels is skipped rather than a NaN) with AdamW under a one-cycle schedule
(Smith & Topin 2017) and gradient clipping (the usual guard for CTC's occasional spikes).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.inference.ctc import pad_lines
from digitlab.layout import BLANK
from digitlab.models.reader import META, WEIGHTS, LineReader, load_reader, save_reader
from digitlab.synth.lines import CONDITIONS, LineBatch, LineStyle, LineSynth

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
    condition: str | LineStyle = "train"  # the lines' style: a name in digitlab.synth.lines.CONDITIONS, or a LineStyle
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




# -- the reader recipe: stages, evaluation, calibration ---------------------------------------------

@dataclass(frozen=True)
class ReaderStage:
    """One stage of the reader recipe: a model shape and a one-cycle run, warm-started from the stage before."""

    steps: int
    lr: float
    seed: int
    lstm: int = 0  # BiLSTM units per direction (0: conv-only)
    pct_start: float = 0.15  # share of the stage spent warming up to `lr`
    nondigit_p: float | None = None  # share of lines holding non-digit marks (None: the "train" style's 0.4)


@dataclass(frozen=True)
class ReaderRecipe:
    """`digitlab train --recipe reader`: the stages that made the bundled reader, and how it is measured."""

    stages: tuple[ReaderStage, ...]
    batch_size: int = 32
    eval_lines: int = 400  # held-out lines per condition
    calibration_lines: int = 1000  # held-out "train"-style lines the temperature is fitted on


def warm_start(model: LineReader, source: LineReader) -> int:
    """Copy into `model` every weight of `source` with the same name and shape; the number of tensors copied."""
    own = model.state_dict()
    same = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(same, strict=False)
    return len(same)


def run_stages(recipe: ReaderRecipe, synth: LineSynth, *,
               on_log: Callable[[int, int, float], None] | None = None,
               max_seconds: float | None = None) -> tuple[LineReader, list[ReaderFit]]:
    """Train the recipe's stages in turn; (the last stage's model, each stage's ReaderFit).

    on_log(stage, step, loss); `max_seconds` is split between the stages in proportion to their steps.
    """
    model: LineReader | None = None
    fits = []
    total = sum(s.steps for s in recipe.stages)
    for k, stage in enumerate(recipe.stages):
        nxt = LineReader(lstm=stage.lstm)
        if model is not None:
            warm_start(nxt, model)
        style = CONDITIONS["train"] if stage.nondigit_p is None else replace(CONDITIONS["train"],
                                                                             nondigit_p=stage.nondigit_p)
        config = ReaderTrainConfig(steps=stage.steps, batch_size=recipe.batch_size, lr=stage.lr, seed=stage.seed,
                                   pct_start=stage.pct_start, condition=style,
                                   max_seconds=None if max_seconds is None else max_seconds * stage.steps / total)
        log = None if on_log is None else (lambda step, loss, k=k: on_log(k, step, loss))
        fits.append(fit_reader(nxt, synth, config, on_log=log))
        model = nxt
    assert model is not None
    return model, fits


READER_RECIPE_NAME = "reader"
# The stages of the bundled reader (docs/reading.md): conv-only; 4,031 steps at peak 3e-3; continued from those
# weights for 9,500 steps at peak 2e-3 with fresh lines (a warm restart); then 1,800 steps annealed from 1e-3 on
# lines holding marks more often (60%, against the mix's 40%). About 15,300 steps: ~55 min on 2 cores.
READER_RECIPE = ReaderRecipe(stages=(ReaderStage(steps=4031, lr=3e-3, seed=0),
                                     ReaderStage(steps=9500, lr=2e-3, seed=3),
                                     ReaderStage(steps=1800, lr=1e-3, seed=5, pct_start=0.05, nondigit_p=0.6)))


def train_reader_run(run_dir: str | os.PathLike[str], x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                     y_test: np.ndarray, recipe: ReaderRecipe = READER_RECIPE, *,
                     on_log: Callable[[int, int, float], None] | None = None, eval_lines: int | None = None,
                     calibration_lines: int | None = None, page: bool = True) -> dict[str, Any]:
    """`digitlab train --recipe reader`: train the stages on lines of (x_train, y_train), save the reader in
    `run_dir`, then calibrate and measure it on lines of the test digits (`evaluate_reader_folder`).

    Returns the evaluation report; the folder then holds reader.safetensors, reader.json (config,
    recipe, training, calibration, figures) and report.json, ready for `Reader.load(run_dir)`.
    """
    from digitlab.evaluation.line_reading import evaluate_reader_folder

    run_dir = Path(run_dir)
    synth = LineSynth(x_train, y_train, nondigit_split="train")
    model, fits = run_stages(recipe, synth, on_log=on_log)
    training = [{"steps": f.stopped_at or stage.steps, "seconds": round(f.seconds, 1), "lines": f.lines,
                 "final_loss": f.losses[-1][1] if f.losses else None, "lstm": stage.lstm, "lr": stage.lr,
                 "seed": stage.seed, "pct_start": stage.pct_start, "nondigit_p": stage.nondigit_p}
                for f, stage in zip(fits, recipe.stages, strict=True)]
    save_reader(run_dir, model, extra={"recipe": READER_RECIPE_NAME, "stages": training})
    return evaluate_reader_folder(run_dir, x_test, y_test, eval_lines=eval_lines or recipe.eval_lines,
                                  calibration_lines=calibration_lines or recipe.calibration_lines, page=page)


__all__ = ["META", "WEIGHTS", "ReaderFit", "ReaderRecipe", "ReaderStage", "ReaderTrainConfig", "ctc_batch",
           "fit_reader", "load_reader", "run_stages", "save_reader", "train_reader_run", "warm_start"]
