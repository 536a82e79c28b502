"""What every package agrees on: the image geometry, the model-input contract and the run-directory files.

Each of these is said here once; the rest of digitlab imports it.

Geometry: every dataset image and every model input is SIDE x SIDE (28 x 28) uint8, bright ink
on black. MNIST fits the digit into a BOX x BOX (20 x 20) box and centres its mass at CENTRE.

Model input: a model takes float32 (N, 1, 28, 28) = pixels / PIXEL_SCALE (so values in [0, 1])
and normalises itself (its first layer holds the mean and std). `to_model_input` is the one
conversion, for NumPy arrays (ONNX Runtime) and torch tensors (training, the torch backend) alike.

Run directory: `RunFiles(run_dir)` names every file digitlab writes into one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, overload

import numpy as np

SIDE = 28  # image side in pixels, as MNIST
IMAGE_SHAPE = (SIDE, SIDE)  # one image, uint8
INPUT_SHAPE = (1, SIDE, SIDE)  # one model input: channels, height, width
IMAGE_PIXELS = SIDE * SIDE  # 784
BOX = 20  # MNIST fits each digit into BOX x BOX keeping its aspect ratio
CENTRE = 14.0  # MNIST's centre of mass in pixel-index coordinates (mean 14.0 over the test set)
PIXEL_SCALE = 255.0  # model input = pixels / PIXEL_SCALE
INPUT_SCALE = "pixels/255"  # model.json input.scale
INPUT_CONTRACT = "float32 (N, 1, 28, 28) = pixels / 255"  # recorded in ONNX metadata

# Text lines (the line reader, its synthetic lines and the line finder agree on this geometry and alphabet).
LINE_HEIGHT = 32  # px: every line's height (the reader's input height)
DIGIT_PX = 22.0  # a digit's nominal ink height: MNIST's 20 px in 28, with room in 32 for size jitter and wander
BASELINE = 27.0  # y of the nominal baseline: 5 px below it for descenders and a wandering baseline
INK_LEVEL = 64  # uint8 level above which a pixel counts as a character's ink for its extent
BLANK = 0  # CTC's blank class
NUM_CLASSES = 12  # blank, ten digits, not-a-digit
ALPHABET = "0123456789?"  # class c >= 1 reads as ALPHABET[c - 1]; "?" is a non-digit mark

# Inference backends (`Predictor.load(backend=...)`): "auto" picks the fastest the run supports.
BACKENDS = ("auto", "torch", "onnx", "int8")

# Files of a run directory.
MODEL_JSON = "model.json"
WEIGHTS = "model.safetensors"
ONNX = "model.onnx"
INT8_ONNX = "model.int8.onnx"
REPORT = "report.json"
METRICS = "metrics.jsonl"
STEPS = "steps.jsonl"
STATE_JSON = "train_state.json"
STATE_TENSORS = "train_state.safetensors"
CONFIG_TOML = "config.toml"
PREDICTIONS_PNG = "predictions.png"
CURVES_PNG = "training_curves.png"
CONFUSION_PNG = "confusion_matrix.png"
MISTAKES_PNG = "worst_mistakes.png"
RELIABILITY_PNG = "reliability.png"


@dataclass(frozen=True)
class RunFiles:
    """The paths of every file in one run directory."""

    root: Path

    @classmethod
    def of(cls, run_dir: str | os.PathLike[str]) -> RunFiles:
        return cls(Path(run_dir))

    @property
    def model_json(self) -> Path:
        return self.root / MODEL_JSON

    @property
    def weights(self) -> Path:
        return self.root / WEIGHTS

    @property
    def onnx(self) -> Path:
        return self.root / ONNX

    @property
    def int8_onnx(self) -> Path:
        return self.root / INT8_ONNX

    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def metrics(self) -> Path:
        return self.root / METRICS

    @property
    def steps(self) -> Path:
        return self.root / STEPS

    @property
    def state_json(self) -> Path:
        return self.root / STATE_JSON

    @property
    def state_tensors(self) -> Path:
        return self.root / STATE_TENSORS

    @property
    def config_toml(self) -> Path:
        return self.root / CONFIG_TOML


T = TypeVar("T")


@overload
def to_model_input(x: np.ndarray) -> np.ndarray: ...


@overload
def to_model_input(x: T) -> T: ...


def to_model_input(x: Any) -> Any:
    """uint8 images (N, 28, 28) -> the model input float32 (N, 1, 28, 28) = pixels / 255.

    A NumPy array gives a NumPy array (for ONNX Runtime); a torch tensor gives a tensor on its
    own device (for training and the torch backend). Nothing else is done to the pixels: every
    model normalises its input itself.
    """
    if isinstance(x, np.ndarray):
        return (x.astype(np.float32) / np.float32(PIXEL_SCALE))[:, None]
    return x.unsqueeze(1).float() / PIXEL_SCALE
