"""The baseline CNN: pytorch/examples `mnist/main.py` re-implemented as people run it.

Model, optimiser, schedule and batch size are the example's: conv 3x3x32 -> relu ->
conv 3x3x64 -> relu -> max-pool 2 -> dropout 0.25 -> flatten -> linear 9216->128 -> relu
-> dropout 0.5 -> linear 128->10, log_softmax + NLL, Adadelta lr 1.0, StepLR gamma 0.7
per epoch, batch 64, inputs normalised with mean 0.1307 / std 0.3081.

One deliberate difference, in the baseline's favour: the example feeds batches through
`torchvision` transforms and a `DataLoader` (per-sample PIL -> tensor conversion); here
the whole split is a normalised float tensor made once, and every epoch draws a fresh
`torch.randperm` and slices it, so the baseline pays no data-loading overhead at all.
Everything else is the example's per-batch loop: fp32, eager mode, default threads.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.1307, 0.3081  # the example's transforms.Normalize((0.1307,), (0.3081,))
FLAT_FEATURES = 64 * 12 * 12  # 28 -> conv3 -> 26 -> conv3 -> 24 -> pool2 -> 12; x 64 channels = 9216


class Net(nn.Module):
    """The pytorch/examples MNIST network: (N, 1, 28, 28) normalised -> (N, 10) log-probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(FLAT_FEATURES, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))  # (N, 32, 26, 26)
        x = F.relu(self.conv2(x))  # (N, 64, 24, 24)
        x = self.dropout1(F.max_pool2d(x, 2))  # (N, 64, 12, 12)
        x = torch.flatten(x, 1)  # (N, 9216)
        x = self.dropout2(F.relu(self.fc1(x)))  # (N, 128)
        return F.log_softmax(self.fc2(x), dim=1)  # (N, 10)


@dataclass
class ReferenceConfig:
    """The example's defaults, plus the harness's evaluation cadence and budget."""

    batch_size: int = 64  # --batch-size default
    test_batch_size: int = 1000  # --test-batch-size default
    lr: float = 1.0  # --lr default (Adadelta)
    gamma: float = 0.7  # --gamma default (StepLR, step_size=1 epoch)
    epochs: int = 14  # --epochs default; the harness caps it with max_seconds
    eval_every_steps: int = 200  # harness cadence: also evaluate every N steps, not only per epoch
    max_seconds: float = float("inf")  # training-time budget; stops after the step that crosses it
    max_steps: int | None = None  # stop after this many steps (smoke runs)
    seed: int = 1  # --seed default


def to_input(x_uint8: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (N, 28, 28) -> normalised float32 (N, 1, 28, 28), as ToTensor + Normalize would give."""
    x = torch.as_tensor(x_uint8).to(device)
    return ((x.float() / 255.0 - MEAN) / STD).unsqueeze(1)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy of `model` on normalised `x` (N, 1, 28, 28) and labels `y` (N,)."""
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(x)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_reference(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    config: ReferenceConfig,
    device: torch.device | str = "cpu",
    on_eval: Callable[[dict], None] | None = None,
) -> tuple[Net, list[dict]]:
    """Train the baseline; returns the model and its metrics records.

    Each record: `step`, `epoch`, `elapsed` (training seconds, evaluation excluded),
    `eval_seconds` (that evaluation's time), `test_accuracy`, `images` (seen so far).
    Evaluation runs every `eval_every_steps` steps and at the end of every epoch.
    """
    device = torch.device(device)
    torch.manual_seed(config.seed)
    xtr, ytr = to_input(x_train, device), torch.as_tensor(y_train).to(device)
    xte, yte = to_input(x_test, device), torch.as_tensor(y_test).to(device)
    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=config.gamma)
    generator = torch.Generator().manual_seed(config.seed)
    records: list[dict] = []
    elapsed, step, images = 0.0, 0, 0

    def evaluate(epoch: float) -> None:
        _sync(device)
        t0 = time.perf_counter()
        acc = accuracy(model, xte, yte, config.test_batch_size)
        _sync(device)
        rec = {"step": step, "epoch": epoch, "elapsed": elapsed, "images": images,
               "eval_seconds": time.perf_counter() - t0, "test_accuracy": acc}
        records.append(rec)
        if on_eval is not None:
            on_eval(rec)

    model.train()
    done = False
    for epoch in range(1, config.epochs + 1):
        _sync(device)
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr), generator=generator).to(device)
        for i in range(0, len(xtr), config.batch_size):
            idx = perm[i : i + config.batch_size]
            data, target = xtr[idx], ytr[idx]
            optimizer.zero_grad()
            loss = F.nll_loss(model(data), target)
            loss.backward()
            optimizer.step()
            step += 1
            images += len(idx)
            done = step == config.max_steps
            if step % config.eval_every_steps == 0 or done:
                _sync(device)
                elapsed += time.perf_counter() - t0
                done = done or elapsed >= config.max_seconds
                evaluate(epoch - 1 + (i + len(idx)) / len(xtr))
                t0 = time.perf_counter()
            if done:
                break
        if done:
            break
        _sync(device)
        elapsed += time.perf_counter() - t0
        scheduler.step()
        if step % config.eval_every_steps != 0:
            evaluate(float(epoch))
        if elapsed >= config.max_seconds:
            break
    return model, records
