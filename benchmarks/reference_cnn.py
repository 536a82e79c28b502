"""The baseline CNN: pytorch/examples `mnist/main.py` (its `Net`, Adadelta and StepLR), as people run it.

Model, optimiser, schedule, batch sizes and seed are the example's defaults. One difference,
in the baseline's favour: instead of torchvision transforms and a `DataLoader` (per-sample PIL
-> tensor work), each split is normalised once into a tensor and every epoch slices a fresh
`torch.randperm`, so the baseline pays no data-loading cost. For time-to-accuracy the test set
is also evaluated every `eval_every_steps` steps, with the timer stopped while it runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.1307, 0.3081  # the example's transforms.Normalize((0.1307,), (0.3081,))
FLAT_FEATURES = 64 * 12 * 12  # 28 -> conv3 -> 26 -> conv3 -> 24 -> pool2 -> 12, times 64 channels: 9216


class Net(nn.Module):
    """The example's network: normalised (N, 1, 28, 28) -> (N, 10) log-probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(FLAT_FEATURES, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))  # (N, 64, 24, 24)
        x = torch.flatten(self.dropout1(F.max_pool2d(x, 2)), 1)  # (N, 9216)
        x = self.dropout2(F.relu(self.fc1(x)))  # (N, 128)
        return F.log_softmax(self.fc2(x), dim=1)  # (N, 10)


@dataclass
class ReferenceConfig:
    """The example's defaults (its --flags), plus the benchmark's evaluation cadence and budget."""

    batch_size: int = 64  # --batch-size
    test_batch_size: int = 1000  # --test-batch-size
    lr: float = 1.0  # --lr (Adadelta)
    gamma: float = 0.7  # --gamma (StepLR, every epoch)
    epochs: int = 14  # --epochs; the benchmark caps it with max_seconds
    seed: int = 1  # --seed
    eval_every_steps: int = 200  # the benchmark's cadence: 12,800 images, and every epoch end
    max_seconds: float = float("inf")  # training-time budget, checked at each evaluation
    max_steps: int | None = None  # smoke runs


def to_input(x_uint8: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, 28, 28) array or tensor -> normalised float32 (N, 1, 28, 28) on `device`, what ToTensor +
    Normalize give."""
    x = x_uint8 if isinstance(x_uint8, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x_uint8))
    x = x.to(device)
    return ((x.float() / 255.0 - MEAN) / STD).unsqueeze(1)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` on normalised x (N, 1, 28, 28) with labels y (N,), as the example's `test`."""
    was_training = model.training
    model.eval()
    correct = sum(int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
                  for i in range(0, len(x), batch_size))
    model.train(was_training)
    return correct / len(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_reference(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                    config: ReferenceConfig, device: torch.device | str = "cpu") -> tuple[Net, list[dict]]:
    """Train the baseline on uint8 images (N, 28, 28); returns the model and one record per evaluation.

    Record: `step`, `epoch` (fractional), `images` (seen so far), `elapsed` (training seconds,
    evaluations excluded), `test_accuracy`. It stops after `config.epochs`, `max_steps`, or at
    the first evaluation past `max_seconds`.
    """
    device = torch.device(device)
    torch.manual_seed(config.seed)
    xtr, ytr = to_input(x_train, device), torch.from_numpy(np.asarray(y_train, np.int64)).to(device)
    xte, yte = to_input(x_test, device), torch.from_numpy(np.asarray(y_test, np.int64)).to(device)
    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=config.gamma)
    generator = torch.Generator().manual_seed(config.seed)
    records: list[dict] = []
    elapsed, step, images = 0.0, 0, 0
    model.train()
    for epoch in range(config.epochs):
        _sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr), generator=generator).to(device)
        for i in range(0, len(xtr), config.batch_size):
            idx = perm[i : i + config.batch_size]
            optimizer.zero_grad()
            loss = F.nll_loss(model(xtr[idx]), ytr[idx])
            loss.backward()
            optimizer.step()
            step, images = step + 1, images + len(idx)
            epoch_end = i + config.batch_size >= len(xtr)
            if step % config.eval_every_steps == 0 or epoch_end or step == config.max_steps:
                _sync(device)
                elapsed += time.perf_counter() - t0
                records.append({"step": step, "epoch": epoch + (i + len(idx)) / len(xtr), "images": images,
                                "elapsed": elapsed, "test_accuracy": accuracy(model, xte, yte, config.test_batch_size)})
                if elapsed >= config.max_seconds or step == config.max_steps:
                    return model, records
                t0 = time.perf_counter()
        scheduler.step()
    return model, records
