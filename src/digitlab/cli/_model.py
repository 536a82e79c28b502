"""The model argument shared by `predict`, `read` and `serve`: a run directory, or the bundled model."""
from __future__ import annotations

from pathlib import Path

from digitlab.layout import MODEL_JSON, WEIGHTS

MODEL_HELP = ("run directory, model.json or model.safetensors of a trained model (default: the bundled MNIST "
              "model, when the first path is not a model)")


def is_model_path(item: str) -> bool:
    """Whether `item` names a checkpoint: a folder holding model.json, or a model.json / .safetensors file."""
    path = Path(item)
    if path.is_dir():
        return (path / MODEL_JSON).is_file()
    return path.is_file() and (path.name == MODEL_JSON or path.suffix == ".safetensors" or path.name == WEIGHTS)


def split_model(paths: list[str]) -> tuple[str | None, list[str]]:
    """(model path or None for the bundled model, the inputs) from `[RUN] FILE...` arguments."""
    if paths and is_model_path(paths[0]):
        return paths[0], paths[1:]
    return None, paths
