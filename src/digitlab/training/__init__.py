"""digitlab.training: optimisers, schedules, augmentation, the loop, recipes and DDP.

    from digitlab.training import fit, recipe_config
    result = fit(recipe_config("cnn"), dataset)     # the loop only: the model and its per-epoch records

A whole run (the loop, then calibration, report, plots, int8) is `digitlab.runs.train`.
The configs, recipes and progress are imported at once; the modules that need torch (the loop,
augmentation, optimisers) only when first used, so `digitlab --help` stays quick.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from digitlab.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from digitlab.training.progress import Progress, format_epoch
from digitlab.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, get_recipe, recipe_config

if TYPE_CHECKING:
    from digitlab.training.augment import affine, random_affine
    from digitlab.training.device import select_device
    from digitlab.training.loop import TrainResult, fit
    from digitlab.training.optim import build_optimizer, lr_at
    from digitlab.training.step import train_step

_LAZY = {
    "affine": "augment", "random_affine": "augment",
    "TrainResult": "loop", "fit": "loop", "select_device": "device", "train_step": "step",
    "build_optimizer": "optim", "lr_at": "optim",
}

__all__ = [
    "DEFAULT_RECIPE", "OPTIMIZERS", "Progress", "RECIPES", "SCHEDULES", "Recipe", "TrainConfig", "TrainResult",
    "affine", "build_optimizer", "fit", "format_epoch", "get_recipe", "lr_at", "random_affine", "recipe_config",
    "select_device", "train_step",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"digitlab.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'digitlab.training' has no attribute {name!r}")
