"""One training run's state (`Trainer`) and how a fresh one is built from a config and a dataset."""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from digitlab.checkpoints import unwrap_model
from digitlab.errors import DigitlabError
from digitlab.layout import to_model_input
from digitlab.models import build_model
from digitlab.training.config import TrainConfig
from digitlab.training.device import Dist, autocast_for
from digitlab.training.optim import build_optimizer

if TYPE_CHECKING:
    from digitlab.data import Dataset


def _to_input(x_uint8: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, 28, 28) -> the model input float32 (N, 1, 28, 28) on `device` (`layout.to_model_input`)."""
    return to_model_input(torch.from_numpy(np.ascontiguousarray(x_uint8)).to(device))


@dataclass
class _Splits:
    """The training, validation and (with track_test) test splits as model-input tensors on the device."""

    x_train: torch.Tensor  # (N, 1, 28, 28) float32
    y_train: torch.Tensor  # (N,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor | None
    y_test: torch.Tensor | None
    num_classes: int
    outliers: torch.Tensor | None = None  # (M, 28, 28) uint8: outlier exposure's non-digits (oe_weight > 0)
    outlier_parts: tuple[int, ...] = ()  # how many of them come from each source, in order
    photos: torch.Tensor | None = None  # (P, 28, 28) uint8: pictures of training digits (photo_digits > 0)
    photo_labels: torch.Tensor | None = None  # (P,) int64


def _splits(config: TrainConfig, dataset: Dataset, dd: Dist, device: torch.device) -> _Splits:
    """The dataset's splits, whole, as tensors on `device` (validation = the first validation_size images)."""
    from digitlab.data import split_validation

    x_tr, y_tr, x_val, y_val = split_validation(dataset.x_train, dataset.y_train, config.validation_size)
    if config.train_size is not None:
        x_tr, y_tr = x_tr[:config.train_size], y_tr[:config.train_size]
    if len(x_tr) < dd.world:
        raise DigitlabError(f"dataset {dataset.name}: only {len(x_tr)} training images after the validation "
                            f"split of {config.validation_size}; lower validation_size or train_size")

    def labels(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, np.int64)).to(device)

    test = (_to_input(dataset.x_test, device), labels(dataset.y_test)) if config.track_test else (None, None)
    outliers: torch.Tensor | None = None
    parts: tuple[int, ...] = ()
    if config.oe_weight > 0:
        from digitlab.training.outliers import outlier_images

        sources = outlier_images(config, dataset)
        outliers = torch.from_numpy(np.concatenate(sources)).to(device)  # uint8: 1/4 of float's memory
        parts = tuple(len(s) for s in sources)
    photos = photo_labels = None
    if config.photo_digits:
        from digitlab.training.outliers import photo_digits

        px, py = photo_digits(config, x_tr, y_tr)
        photos, photo_labels = torch.from_numpy(px).to(device), labels(py)
    return _Splits(_to_input(x_tr, device), labels(y_tr), _to_input(x_val, device), labels(y_val), test[0], test[1],
                   num_classes=len(dataset.class_names), outliers=outliers, outlier_parts=parts, photos=photos,
                   photo_labels=photo_labels)


@dataclass
class Trainer:
    """Everything one training run holds while it runs: data, model, optimiser, random streams, counters."""

    config: TrainConfig
    dd: Dist
    device: torch.device
    data: _Splits
    model: nn.Module  # the plain registry model the optimiser trains
    net: nn.Module  # what the step calls: the model, maybe inside DDP and/or torch.compile
    optimizer: torch.optim.Optimizer
    scaler: Any
    autocast: Any
    shuffle_gen: torch.Generator
    aug_gen: torch.Generator
    steps_per_epoch: int
    total_steps: int
    epochs: int
    step: int = 0
    start_epoch: int = 1
    elapsed: float = 0.0
    best_val: float = math.inf
    bad_epochs: int = 0
    stopped_early: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    step_history: list[dict[str, Any]] = field(default_factory=list)
    class_names: tuple[str, ...] = ()
    dataset_name: str = ""
    ema: nn.Module | None = None  # the weights' moving average (config.ema > 0)

    @property
    def result_model(self) -> nn.Module:
        """The model evaluated, saved and returned: the moving average when there is one."""
        return self.ema if self.ema is not None else self.model


def build_trainer(config: TrainConfig, dataset: Dataset, dd: Dist, device: torch.device) -> Trainer:
    """A fresh run: model, optimiser and random streams seeded from `config.seed`, the step budget."""
    data = _splits(config, dataset, dd, device)
    torch.manual_seed(config.seed)
    model = build_model(config.model, num_classes=data.num_classes, **config.model_config).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = build_optimizer(model, config)
    shuffle_gen = torch.Generator().manual_seed(config.seed)  # same on every rank: one permutation
    aug_gen = torch.Generator(device=device).manual_seed(config.seed + 1 + dd.rank)
    torch.manual_seed(config.seed + dd.rank)  # dropout differs per rank, as it should
    autocast, amp_dtype = autocast_for(device, config.precision)
    n_local, local_batch = len(data.x_train) // dd.world, config.batch_size // dd.world
    steps_per_epoch = n_local // local_batch if config.drop_last else math.ceil(n_local / local_batch)
    if steps_per_epoch == 0:
        raise DigitlabError(f"batch_size={config.batch_size} exceeds the {len(data.x_train)} training images with "
                            "drop_last=True: no step would run; lower the batch size")
    total_steps = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    net: nn.Module = model
    if dd.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        net = torch.compile(net)  # type: ignore[assignment]
    ema = copy.deepcopy(unwrap_model(model)).eval().requires_grad_(False) if config.ema > 0 else None
    return Trainer(config, dd, device, data, unwrap_model(model), net, optimizer,
                   torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None, autocast,
                   shuffle_gen, aug_gen, steps_per_epoch, total_steps, math.ceil(total_steps / steps_per_epoch),
                   class_names=tuple(dataset.class_names), dataset_name=dataset.name, ema=ema)
