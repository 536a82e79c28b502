"""Convolutional models: `lenet` (LeNet-5 style) and `cnn` (small, fast, BatchNorm)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.layout import SIDE
from digitlab.models.layers import Normalize, make_activation

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # over the 60,000 MNIST training images


class LeNet(nn.Module):
    """LeNet-5 style: conv5x5(6) -> pool -> conv5x5(16) -> pool -> 120 -> 84 -> logits (N, C)."""

    def __init__(
        self,
        num_classes: int = 10,
        *,
        activation: str = "relu",  # LeCun used a scaled tanh; ReLU trains faster
        mean: float = MNIST_MEAN,
        std: float = MNIST_STD,
    ) -> None:
        super().__init__()
        self.num_classes, self.activation, self.mean, self.std = num_classes, activation, mean, std
        self.layers = nn.Sequential(
            Normalize(mean, std),
            nn.Conv2d(1, 6, 5, padding=2), make_activation(activation),  # (N, 6, 28, 28)
            nn.MaxPool2d(2),  # (N, 6, 14, 14)
            nn.Conv2d(6, 16, 5), make_activation(activation),  # (N, 16, 10, 10)
            nn.MaxPool2d(2),  # (N, 16, 5, 5)
            nn.Flatten(),  # (N, 400)
            nn.Linear(16 * 5 * 5, 120), make_activation(activation),
            nn.Linear(120, 84), make_activation(activation),
            nn.Linear(84, num_classes),  # (N, C)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


DOWNSAMPLES = ("pool", "stride")


def _stage(c_in: int, c_out: int, blocks: int, activation: str, downsample: str = "pool") -> list[nn.Module]:
    """`blocks` x (conv3x3 -> BatchNorm -> act), halving the resolution once.

    "pool": the last conv is followed by a 2x2 max-pool (floor: 7 -> 3); pooling before
    BatchNorm and the activation makes those (memory-bound, the bulk of CPU time) run on a
    quarter of the pixels. "stride": the first conv has stride 2 (ceil: 7 -> 4) and computes
    only the pixels it keeps, a quarter of the multiply-adds of a pooled stage. Convs have no
    bias: BatchNorm's shift replaces it.
    """
    layers: list[nn.Module] = []
    for b in range(blocks):
        stride = 2 if downsample == "stride" and b == 0 else 1
        layers.append(nn.Conv2d(c_in if b == 0 else c_out, c_out, 3, stride=stride, padding=1, bias=False))
        if downsample == "pool" and b == blocks - 1:
            layers.append(nn.MaxPool2d(2))
        layers += [nn.BatchNorm2d(c_out), make_activation(activation)]
    return layers


class CNN(nn.Module):
    """Small fast CNN: per stage `blocks` x (conv3x3-BN-act), halving resolution; a linear head.

    With the default three stages the spatial size goes 28 -> 14 -> 7 -> 3 and the head sees
    `channels[-1] * 3 * 3` features. With `stem` > 0 a strided conv (`stem_kernel` square,
    stride 2) -> BN -> act first takes 28 -> 14 with `stem` channels: it replaces a full-resolution
    stage, whose conv and pooling are the costliest memory traffic at inference. Input
    (N, 1, 28, 28) in [0, 1]; output logits (N, C).
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        channels: Sequence[int] = (32, 64, 128),  # doubling width as resolution halves
        blocks: int = 1,  # convs per stage; 2 for the `best` recipe
        activation: str = "relu",
        dropout: float = 0.0,  # before the head
        stem: int = 0,  # channels of a strided stem conv (28 -> 14); 0: none
        stem_kernel: int = 5,
        downsample: str = "pool",  # how each stage halves the resolution: "pool" (max-pool) or "stride" (conv)
        hidden: int = 0,  # units of a hidden layer (linear-BN-act) before the head; 0: none
        mean: float = MNIST_MEAN,
        std: float = MNIST_STD,
    ) -> None:
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels or blocks < 1 or min(channels) < 1:
            raise DigitlabError(f"cnn config channels={channels} blocks={blocks}: need at least one stage, "
                                "each of 1 or more channels, and blocks >= 1")
        if not 0 <= dropout < 1:
            raise DigitlabError(f"cnn config dropout={dropout}: use a value in [0, 1)")
        if stem < 0 or stem_kernel < 1 or stem_kernel % 2 == 0:
            raise DigitlabError(f"cnn config stem={stem} stem_kernel={stem_kernel}: need stem >= 0 and an "
                                "odd stem_kernel >= 1 (e.g. stem=16, stem_kernel=5)")
        if downsample not in DOWNSAMPLES:
            raise DigitlabError(f"cnn config downsample={downsample!r}: use one of {', '.join(DOWNSAMPLES)}")
        self.num_classes, self.channels, self.blocks, self.activation = num_classes, channels, int(blocks), activation
        if hidden < 0:
            raise DigitlabError(f"cnn config hidden={hidden}: use 0 (no hidden layer) or more units")
        self.downsample, self.hidden = downsample, int(hidden)
        self.dropout, self.stem, self.stem_kernel, self.mean, self.std = dropout, int(stem), int(stem_kernel), mean, std
        layers: list[nn.Module] = [Normalize(mean, std)]
        size, c_in = SIDE, 1
        if stem:
            layers += [nn.Conv2d(1, stem, stem_kernel, stride=2, padding=stem_kernel // 2, bias=False),
                       nn.BatchNorm2d(stem), make_activation(activation)]  # (N, stem, 14, 14)
            size, c_in = SIDE // 2, stem
        for c_out in channels:
            layers += _stage(c_in, c_out, blocks, activation, downsample)
            c_in, size = c_out, (size + 1) // 2 if downsample == "stride" else size // 2
        if size < 1:
            raise DigitlabError(f"cnn config channels={channels}: too many stages for 28x28 input")
        layers.append(nn.Flatten())  # (N, c * size * size)
        features = c_in * size * size
        if hidden:
            layers += [nn.Linear(features, hidden, bias=False), nn.BatchNorm1d(hidden), make_activation(activation)]
            features = hidden  # (N, hidden)
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(features, num_classes))  # (N, C)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
