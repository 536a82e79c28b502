"""digitlab.training: optimisers, schedules, augmentation, the loop, recipes and DDP.

    from digitlab.training import recipe_config, train
    result = train(recipe_config("cnn"), run_dir="runs/cnn")   # the loop, then report, plots, int8
    result.history[-1]["val_accuracy"], result.outputs.test_accuracy

The configs, recipes and progress are imported at once; the modules that need torch (the loop,
the pipeline, augmentation, optimisers) only when first used, so `digitlab --help` stays quick.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from digitlab.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from digitlab.training.progress import Progress, format_epoch
from digitlab.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, get_recipe, recipe_config

if TYPE_CHECKING:
    from digitlab.training.augment import affine, random_affine
    from digitlab.training.loop import TrainResult, fit, select_device, train_step
    from digitlab.training.optim import build_optimizer, lr_at
    from digitlab.training.pipeline import ReloadMismatchError, RunOutputs, finish_run, obtain_datasets, train

_LAZY = {
    "affine": "augment", "random_affine": "augment",
    "TrainResult": "loop", "fit": "loop", "select_device": "loop", "train_step": "loop",
    "build_optimizer": "optim", "lr_at": "optim",
    "ReloadMismatchError": "pipeline", "RunOutputs": "pipeline", "finish_run": "pipeline", "train": "pipeline",
    "obtain_datasets": "pipeline",
}

__all__ = [
    "DEFAULT_RECIPE", "OPTIMIZERS", "Progress", "RECIPES", "SCHEDULES", "Recipe", "ReloadMismatchError",
    "RunOutputs", "TrainConfig", "TrainResult", "affine", "build_optimizer", "finish_run", "fit", "format_epoch",
    "get_recipe", "lr_at", "obtain_datasets", "random_affine", "recipe_config", "select_device", "train", "train_step",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"digitlab.training.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'digitlab.training' has no attribute {name!r}")
