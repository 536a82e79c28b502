"""Named training presets: the tutorials' set-ups reproduced, and the modern fast ones."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from digitlab.errors import DigitlabError, did_you_mean
from digitlab.training.config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    """A named `TrainConfig` with where it comes from and the test accuracy it should reach."""

    name: str
    summary: str
    reproduces: str  # the tutorial or idea it follows
    expected_accuracy: float  # minimum test accuracy the slow tests demand
    config: TrainConfig


_SOFTMAX_PLAIN: dict[str, Any] = {"mean": 0.0, "std": 1.0}  # the tutorials fed raw [0, 1] pixels
# The tutorials' models are a few small matrix products per step: a second OpenMP thread only
# adds fork/join waits (tf-softmax: 0.5 s on 1 thread, 67 s on 2 on a busy 2-core machine).
_SMALL: dict[str, Any] = {"threads": 1, "channels_last": False}

# Other pens and scans (docs/training.md, "Robust, calibrated, ..."): ~12% of a step, so from 34% of the steps on.
_ROBUST: dict[str, Any] = {"aug_elastic": 1.5, "aug_stroke": 0.3, "aug_blur": 0.2, "aug_lowres": 0.2, "aug_start": 0.34}
# Outlier exposure from 34% of the steps (after 99.0% is reached): 3,000 synth non-digits (split "train") and
# Fashion-MNIST, a quarter of a batch, weight 0.5, with an eighth of a batch of synth pictures of training
# digits (60 per condition); the threshold and report from synth pictures of validation and test digits.
_OPEN_SET: dict[str, Any] = {"oe_weight": 0.5, "oe_fraction": 0.25, "oe_start": 0.34, "oe_synth": 3000,
             "oe_datasets": ["fashion-mnist"], "photo_digits": 60, "photo_fraction": 0.125,
             "reject_fit_samples": 20, "reject_eval_samples": 10}

# The default recipe's network (docs/speed.md): every stage downsamples with a strided conv, so each conv
# computes only the pixels it keeps; a hidden layer holds the capacity cheaply (a matrix product).
_FAST_CNN: dict[str, Any] = {"stem": 16, "channels": [32, 64], "downsample": "stride", "hidden": 128}

RECIPES: dict[str, Recipe] = {r.name: r for r in [
    Recipe(
        "tf-softmax", "softmax regression, zero init, SGD lr 0.5, batch 100, 1000 steps",
        "TensorFlow 'MNIST for ML beginners' (about 92%)", 0.91,
        TrainConfig(model="softmax", model_config={**_SOFTMAX_PLAIN, "init": "zeros"}, optimizer="sgd",
                    momentum=0.0, lr=0.5, batch_size=100, epochs=2, max_steps=1000, **_SMALL),
    ),
    Recipe(
        "tf-logistic", "softmax regression, N(0, 1) init, SGD lr 0.01, batch 100, 50 epochs",
        "TensorFlow 1 logistic-regression example with per-epoch validation (result not stated)", 0.85,
        TrainConfig(model="softmax", model_config={**_SOFTMAX_PLAIN, "init": "normal", "init_std": 1.0},
                    optimizer="sgd", momentum=0.0, lr=0.01, batch_size=100, epochs=50, **_SMALL),
    ),
    Recipe(
        "tf-softmax-25", "softmax regression, N(0, 1) init, SGD lr 0.01, batch 100, 25 epochs",
        "TensorFlow 1 softmax example with save and restore (about 83%)", 0.80,
        TrainConfig(model="softmax", model_config={**_SOFTMAX_PLAIN, "init": "normal", "init_std": 1.0},
                    optimizer="sgd", momentum=0.0, lr=0.01, batch_size=100, epochs=25, **_SMALL),
    ),
    Recipe(
        "keras-mlp", "Dense 512 relu + Dense 10, RMSprop lr 1e-3 rho 0.9 eps 1e-7, batch 128, 5 epochs",
        "Keras, Deep Learning with Python ch. 2 (about 97.8%)", 0.975,
        TrainConfig(model="mlp", model_config={"hidden": [512], "mean": 0.0, "std": 1.0, "init": "glorot"},
                    optimizer="rmsprop", lr=1e-3, rho=0.9, eps=1e-7, batch_size=128, epochs=5,
                    **_SMALL),
    ),
    Recipe(
        "fashion-softmax", "Fashion-MNIST softmax regression, N(0, 0.01) init, SGD lr 0.1, batch 200, 5 epochs",
        "Dive into Deep Learning, softmax regression from scratch (about 84%)", 0.82,
        TrainConfig(dataset="fashion-mnist", model="softmax",
                    model_config={**_SOFTMAX_PLAIN, "init": "normal", "init_std": 0.01},
                    optimizer="sgd", momentum=0.0, lr=0.1, batch_size=200, epochs=5, **_SMALL),
    ),
    Recipe(
        "softmax", "softmax regression on normalised pixels, SGD momentum 0.9, one-cycle lr 0.05, batch 256, 3 epochs",
        "modern practice for a linear model: 92% in well under a second on a laptop CPU", 0.92,
        TrainConfig(model="softmax", model_config={"mean": 0.1307, "std": 0.3081, "init": "zeros"},
                    optimizer="sgd", momentum=0.9, lr=0.05, schedule="onecycle", batch_size=256, epochs=3,
                    **_SMALL),
    ),
    Recipe(
        "cnn", "fast CNN on MNIST alone: strided stem 16, strided convs 32-64, a hidden layer of 128, BatchNorm; "
        "AdamW at a high one-cycle peak reached in 5% of the steps, weight average, elastic warps, batch 128, "
        "12 epochs",
        "the MNIST speedruns' lessons on a laptop CPU: 99.0% within the first ~65,000 images, >= 99.5% at the end; "
        "0.74M multiply-adds per image, a sixteenth of the usual CNN's, so it serves 20x faster", 0.995,
        TrainConfig(model="cnn", model_config=_FAST_CNN, optimizer="adamw", lr=8e-3, weight_decay=0.05,
                    schedule="onecycle", pct_start=0.05, div_factor=5.0, ema=0.999, batch_size=128, epochs=12,
                    label_smoothing=0.1, augment=True, aug_shift=2.0, aug_rotate=8.0, aug_scale=0.08,
                    aug_elastic=1.5),
    ),
    Recipe(
        "robust", "the bundled picture model: the earlier fast CNN (stem 16, 32-64) on other pens and scans, "
        "outlier exposure (Fashion-MNIST, synth non-digits) from a third of the way in; calibrated, says 'not a digit'",
        "the model behind `digitlab predict` pictures until the learned reader replaces it (needs Fashion-MNIST: "
        "apt-get install dataset-fashion-mnist)", 0.994,
        TrainConfig(model="cnn", model_config={"stem": 16, "channels": [32, 64]}, optimizer="adamw", lr=3e-3,
                    weight_decay=0.05, schedule="onecycle", batch_size=128, epochs=8, label_smoothing=0.1,
                    augment=True, aug_shift=2.0, aug_rotate=8.0, aug_scale=0.08, **_ROBUST, **_OPEN_SET),
    ),
    Recipe(
        "fashion-cnn", "the fast CNN twice as wide (64-128-256) on Fashion-MNIST, shifts and mirroring, 10 epochs",
        "modern practice on Fashion-MNIST (>= 92.5%)", 0.925,
        TrainConfig(dataset="fashion-mnist", model="cnn",
                    model_config={"channels": [64, 128, 256], "mean": 0.2860, "std": 0.3530},
                    optimizer="adamw", lr=3e-3, weight_decay=0.05, schedule="onecycle", batch_size=256,
                    epochs=10, label_smoothing=0.1, augment=True, aug_shift=2.0, aug_rotate=0.0,
                    aug_scale=0.0, aug_flip=True),
    ),
    Recipe(
        "fashion-default", "the default cnn's small network on Fashion-MNIST: shifts and mirroring, 10 epochs, "
        "outlier exposure (MNIST, synth non-digits) from a third of the way in; calibrated, says 'not a piece of "
        "clothing'",
        "the bundled Fashion-MNIST model: small and fast like the MNIST default (>= 90%)", 0.90,
        TrainConfig(dataset="fashion-mnist", model="cnn",
                    model_config={"stem": 16, "channels": [32, 64], "mean": 0.2860, "std": 0.3530},
                    optimizer="adamw", lr=3e-3, weight_decay=0.05, schedule="onecycle", batch_size=128,
                    epochs=10, label_smoothing=0.1, augment=True, aug_shift=2.0, aug_rotate=0.0,
                    aug_scale=0.0, aug_flip=True, oe_weight=0.5, oe_fraction=0.25, oe_start=0.34,
                    oe_synth=1500, oe_datasets=["mnist"], reject_eval_samples=10,
                    # a 90%-accurate model is as unsure of its hardest 1% as of a digit (outlier exposure makes
                    # those uniform): keeping 99% of the validation images would reject nothing by score
                    reject_keep=0.97),
    ),
    Recipe(
        "best", "two convs per stage 32-64-128, dropout, stronger augmentation, 20 epochs one-cycle",
        "as accurate as one model gets on MNIST (about 99.7%)", 0.996,
        TrainConfig(model="cnn", model_config={"channels": [32, 64, 128], "blocks": 2, "dropout": 0.2},
                    optimizer="adamw", lr=3e-3, weight_decay=0.05, schedule="onecycle", batch_size=256,
                    epochs=20, label_smoothing=0.1, augment=True, aug_shift=2.5, aug_rotate=12.0,
                    aug_scale=0.12),
    ),
]}

DEFAULT_RECIPE = "cnn"


def get_recipe(name: str) -> Recipe:
    """The recipe `name`, or an error listing the known ones."""
    if name not in RECIPES:
        raise DigitlabError(f"recipe {name!r} is unknown{did_you_mean(name, RECIPES)}; use one of "
                            f"{', '.join(RECIPES)} (`digitlab train --list-recipes` describes them)")
    return RECIPES[name]


def recipe_config(name: str, **overrides: Any) -> TrainConfig:
    """The recipe's `TrainConfig` with `overrides` applied."""
    return get_recipe(name).config.replace(**overrides)
