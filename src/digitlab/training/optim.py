"""Optimisers and per-step learning-rate schedules (pure functions of the step, so resumable)."""
from __future__ import annotations

import math

import torch
from torch import nn

from digitlab.training.config import TrainConfig


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser `config.optimizer` over `model`'s parameters.

    Weight decay, when set, applies to weight matrices and kernels only: decaying biases and
    BatchNorm scales only hurts. The learning rate is set per step by `lr_at`.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if config.weight_decay > 0:
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    else:
        groups = [{"params": params, "weight_decay": 0.0}]
    lr, name = config.lr, config.optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=config.momentum, nesterov=config.nesterov)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=config.betas, eps=config.eps)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=config.betas, eps=config.eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=config.rho, eps=config.eps)
    if name == "adadelta":
        return torch.optim.Adadelta(groups, lr=lr, rho=config.rho, eps=config.eps)
    raise AssertionError(name)  # TrainConfig validated it


def lr_at(config: TrainConfig, step: int, total_steps: int, steps_per_epoch: int) -> float:
    """Learning rate for optimiser step `step` (0-based) of `total_steps`.

    constant: `lr`. step: `lr * gamma ** (epoch // step_size)`. cosine: from `lr` to `min_lr`
    along half a cosine (torch's CosineAnnealingLR with T_max=total_steps). onecycle: torch's
    OneCycleLR (two phases, cosine annealing) from `lr/div_factor` up to `lr` over `pct_start`
    of the steps, then down to `lr/div_factor/final_div_factor`. Linear warm-up for
    constant/cosine over `warmup_steps`.
    """
    lr = config.lr
    if config.schedule == "onecycle":
        initial = lr / config.div_factor
        final = initial / config.final_div_factor
        peak_step = float(config.pct_start * total_steps) - 1
        if step <= peak_step:
            return _cos_anneal(initial, lr, step / peak_step if peak_step > 0 else 1.0)
        last = total_steps - 1
        return _cos_anneal(lr, final, (step - peak_step) / (last - peak_step) if last > peak_step else 1.0)
    if config.schedule == "step":
        return lr * config.gamma ** ((step // max(1, steps_per_epoch)) // config.step_size)
    if config.warmup_steps and step < config.warmup_steps:
        return lr * (step + 1) / config.warmup_steps
    if config.schedule == "cosine":
        return config.min_lr + (lr - config.min_lr) * (1 + math.cos(math.pi * step / total_steps)) / 2
    return lr


def _cos_anneal(start: float, end: float, pct: float) -> float:
    """Cosine from `start` (pct 0) to `end` (pct 1), as torch's OneCycleLR computes it."""
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
