"""The one registry of models: `build_model(name, num_classes=10, **config)` and `MODELS`.

Every model takes `(N, 1, 28, 28)` float32 in [0, 1] (pixels / 255), normalises inside with
the mean/std of its config, and returns logits `(N, C)`. Each instance carries `.name`,
`.num_classes` and `.config` (JSON-able keyword arguments), which is all a checkpoint needs
to rebuild it.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from digitlab.errors import DigitlabError
from digitlab.models.conv import CNN, LeNet
from digitlab.models.linear import MLP, Softmax

MODELS: dict[str, type[nn.Module]] = {
    "softmax": Softmax,
    "mlp": MLP,
    "lenet": LeNet,
    "cnn": CNN,
}


def build_model(name: str, num_classes: int = 10, **config: Any) -> nn.Module:
    """A fresh model `name` from the registry, with its config recorded on `.config`."""
    if name not in MODELS:
        raise DigitlabError(f"model {name!r} is unknown; use one of {', '.join(MODELS)}")
    try:
        model = MODELS[name](num_classes, **config)
    except TypeError as exc:
        raise DigitlabError(
            f"model {name!r} does not accept config {sorted(config)}: {exc}; "
            f"see `digitlab.models.{MODELS[name].__name__}` for its arguments"
        ) from exc
    model.name = name
    model.num_classes = int(num_classes)
    return model


__all__ = ["MODELS", "build_model", "CNN", "LeNet", "MLP", "Softmax"]
