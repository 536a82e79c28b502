"""Building blocks shared by the models: the input normalisation layer and activations."""
from __future__ import annotations

import torch
from torch import nn

from digitlab.errors import DigitlabError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module by name (one of `ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise DigitlabError(
            f"activation {name!r} is unknown; use one of {', '.join(sorted(ACTIVATIONS))}"
        )
    return ACTIVATIONS[name]()


class Normalize(nn.Module):
    """(x - mean) / std with the constants held as buffers, so they travel with the weights.

    Input `(N, 1, 28, 28)` float in [0, 1] (pixels / 255); output the same shape.
    """

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        if not std > 0:
            raise DigitlabError(f"model config std={std!r} is not positive; use e.g. 0.3081 or 1.0")
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    mean: torch.Tensor
    std: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
