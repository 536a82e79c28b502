"""Fully connected models: `softmax` (multinomial logistic regression) and `mlp`."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from digitlab.errors import DigitlabError
from digitlab.layout import IMAGE_PIXELS
from digitlab.models.layers import Normalize, make_activation


def _init_linear(layer: nn.Linear, init: str, std: float) -> None:
    """Initialise one linear layer: torch's default, zeros, N(0, std) or Glorot-uniform (Keras)."""
    if init == "default":
        return
    with torch.no_grad():
        if init == "zeros":
            layer.weight.zero_()
        elif init == "normal":
            layer.weight.normal_(0.0, std)
        elif init == "glorot":
            nn.init.xavier_uniform_(layer.weight)
        else:
            raise DigitlabError(
                f"model config init={init!r} is unknown; use 'default', 'zeros', 'normal' or 'glorot'"
            )
        if layer.bias is not None:
            # The tutorials' biases: tf.zeros, or tf.random_normal alongside normal weights.
            if init == "normal":
                layer.bias.normal_(0.0, std)
            else:
                layer.bias.zero_()


class Softmax(nn.Module):
    """Multinomial logistic regression: (N, 1, 28, 28) in [0, 1] -> logits (N, C) = xW + b."""

    def __init__(
        self,
        num_classes: int = 10,
        *,
        mean: float = 0.0,  # tutorials feed raw [0, 1] pixels
        std: float = 1.0,
        init: str = "zeros",  # TF's MNIST-for-beginners: tf.zeros
        init_std: float = 1.0,  # std of "normal" init (tf.random_normal's default)
    ) -> None:
        super().__init__()
        self.num_classes, self.mean, self.std, self.init, self.init_std = num_classes, mean, std, init, init_std
        self.normalize = Normalize(mean, std)
        self.linear = nn.Linear(IMAGE_PIXELS, num_classes)
        _init_linear(self.linear, init, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.normalize(x).flatten(1)  # (N, 784)
        return self.linear(x)  # (N, C)


class MLP(nn.Module):
    """Multi-layer perceptron: (N, 1, 28, 28) -> hidden layers -> logits (N, C)."""

    def __init__(
        self,
        num_classes: int = 10,
        *,
        hidden: Sequence[int] = (512,),  # Keras' "Deep Learning with Python" MNIST MLP
        activation: str = "relu",
        dropout: float = 0.0,
        mean: float = 0.0,
        std: float = 1.0,
        init: str = "default",  # "glorot" reproduces Keras' Dense default
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        hidden = [int(h) for h in hidden]
        if hidden and min(hidden) < 1:
            raise DigitlabError(f"mlp config hidden={hidden}: every layer needs 1 or more units")
        if not 0 <= dropout < 1:
            raise DigitlabError(f"mlp config dropout={dropout}: use a value in [0, 1)")
        self.num_classes, self.hidden, self.activation, self.dropout = num_classes, hidden, activation, dropout
        self.mean, self.std, self.init, self.init_std = mean, std, init, init_std
        layers: list[nn.Module] = [Normalize(mean, std), nn.Flatten()]
        width = IMAGE_PIXELS
        for h in hidden:
            linear = nn.Linear(width, h)
            _init_linear(linear, init, init_std)
            layers += [linear, make_activation(activation)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        head = nn.Linear(width, num_classes)
        _init_linear(head, init, init_std)
        layers.append(head)
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (N, C)

