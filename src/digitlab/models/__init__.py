"""The one registry of models: `build_model(name, num_classes=10, **config)`, `MODELS`, `get_config`.

Every model takes `(N, 1, 28, 28)` float32 in [0, 1] (`digitlab.layout.to_model_input`),
normalises inside with the mean/std of its config, and returns logits `(N, C)`. A model's
config is its constructor's keyword arguments, read back from the attributes of the same name
(as scikit-learn's `get_params`): `get_config(model)` and `model_name(model)` are all a
checkpoint needs to rebuild it. `build_model` checks a config against the constructor's
signature and type hints, so a damaged `model.json` is a clear error, not a traceback.
"""
from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError
from torch import nn

from digitlab.errors import DigitlabError, did_you_mean
from digitlab.models.conv import CNN, LeNet
from digitlab.models.linear import MLP, Softmax

MODELS: dict[str, type[nn.Module]] = {
    "softmax": Softmax,
    "mlp": MLP,
    "lenet": LeNet,
    "cnn": CNN,
}
MAX_CLASSES = 100_000  # a sanity bound for a damaged model.json, far above any dataset here


@cache
def _parameters(name: str) -> dict[str, tuple[Any, Any]]:
    """Keyword parameters of model `name`'s `__init__` (all but num_classes): name -> (type hint, default)."""
    cls = MODELS[name]
    hints = typing.get_type_hints(cls.__init__)
    return {name: (hints.get(name, Any), p.default) for name, p in inspect.signature(cls.__init__).parameters.items()
            if name not in ("self", "num_classes") and p.kind is inspect.Parameter.KEYWORD_ONLY}


@cache
def _adapter(hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(hint)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def model_name(model: nn.Module) -> str:
    """The registry name of `model`'s class; DigitlabError for a model built elsewhere."""
    for name, cls in MODELS.items():
        if type(model) is cls:
            return name
    raise DigitlabError(f"{type(model).__name__} is not a registry model ({', '.join(MODELS)}); "
                        "build models with digitlab.models.build_model so a checkpoint can rebuild them")


def get_config(model: nn.Module) -> dict[str, Any]:
    """The JSON-able keyword arguments that rebuild `model` with `build_model(model_name(model), ...)`."""
    return {key: _jsonable(getattr(model, key)) for key in _parameters(model_name(model))}


def num_classes_of(model: nn.Module) -> int:
    """How many classes (logits) the registry model outputs."""
    return int(getattr(model, "num_classes"))  # noqa: B009 - a plain attribute mypy cannot see on nn.Module


def check_config(name: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` checked against model `name`'s constructor: known keys, values of the right types."""
    if name not in MODELS:
        raise DigitlabError(f"model {name!r} is unknown{did_you_mean(name, MODELS)}; use one of {', '.join(MODELS)}")
    params = _parameters(name)
    unknown = sorted(set(config) - set(params))
    if unknown:
        hints = ", ".join(f"{k!r}{did_you_mean(k, params)}" for k in unknown)
        raise DigitlabError(f"model {name!r} does not accept config keys {hints}; its keys are {sorted(params)}")
    checked = {}
    for key, value in config.items():
        try:
            checked[key] = _adapter(params[key][0]).validate_python(value)
        except ValidationError as exc:
            raise DigitlabError(f"model {name!r} config {key}={value!r}: {exc.errors()[0]['msg']}") from None
    return checked


def build_model(name: str, num_classes: int = 10, **config: Any) -> nn.Module:
    """A fresh model `name` from the registry, built with `config` (checked first; see `check_config`)."""
    return model_from_config(name, num_classes, config)


def model_from_config(name: str, num_classes: Any, config: Mapping[str, Any]) -> nn.Module:
    """`build_model` for a config read from a file: any key, including `name`, is checked, never a TypeError."""
    if not isinstance(config, Mapping):
        raise DigitlabError(f"model {name!r}: its config must be a mapping of keyword arguments, not "
                            f"{type(config).__name__}")
    checked = check_config(name, dict(config))
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or not 1 <= num_classes <= MAX_CLASSES:
        raise DigitlabError(f"model {name!r}: num_classes={num_classes!r} must be a whole number from 1 to "
                            f"{MAX_CLASSES}")
    return MODELS[name](num_classes, **checked)


def describe(name: str) -> Sequence[str]:
    """`key=default` for each config key of model `name` (for help texts)."""
    return [f"{k}={d!r}" for k, (_, d) in _parameters(name).items()]


__all__ = ["MODELS", "build_model", "check_config", "model_from_config", "describe", "get_config", "model_name",
           "num_classes_of",
           "CNN", "LeNet", "MLP", "Softmax"]
