"""digitlab.training: optimisers, schedules, augmentation, the loop, recipes and DDP.

    from digitlab.training import recipe_config, train
    result = train(recipe_config("cnn"), run_dir="runs/cnn")   # the loop, then report, plots, int8
    result.history[-1]["val_accuracy"], result.outputs.test_accuracy
"""
from digitlab.training.augment import affine, random_affine
from digitlab.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from digitlab.training.loop import TrainResult, fit, select_device, train_step
from digitlab.training.pipeline import ReloadMismatchError, RunOutputs, finish_run, train
from digitlab.training.optim import build_optimizer, lr_at
from digitlab.training.progress import Progress, format_epoch
from digitlab.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, get_recipe, recipe_config

__all__ = [
    "DEFAULT_RECIPE", "OPTIMIZERS", "Progress", "RECIPES", "SCHEDULES", "Recipe", "ReloadMismatchError", "RunOutputs",
    "TrainConfig", "TrainResult", "affine", "build_optimizer", "finish_run", "fit", "format_epoch", "get_recipe", "lr_at",
    "random_affine", "recipe_config", "select_device", "train", "train_step",
]
