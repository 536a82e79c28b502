"""digitlab.training: optimisers, schedules, augmentation, the loop, recipes and DDP.

    from digitlab.training import recipe_config, train
    result = train(recipe_config("cnn"), run_dir="runs/cnn")
    result.history[-1]["val_accuracy"]
"""
from digitlab.training.augment import affine, random_affine
from digitlab.training.config import OPTIMIZERS, SCHEDULES, TrainConfig
from digitlab.training.loop import TrainResult, select_device, train
from digitlab.training.optim import build_optimizer, lr_at
from digitlab.training.recipes import DEFAULT_RECIPE, RECIPES, Recipe, get_recipe, recipe_config

__all__ = [
    "DEFAULT_RECIPE", "OPTIMIZERS", "RECIPES", "SCHEDULES", "Recipe", "TrainConfig", "TrainResult",
    "affine", "build_optimizer", "get_recipe", "lr_at", "random_affine", "recipe_config",
    "select_device", "train",
]
