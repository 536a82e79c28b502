"""The default models shipped inside the package: `Predictor.load()` with no path uses them.

Each is a run directory's inference files (`model.json`, `model.safetensors`, `model.int8.onnx`)
plus a `MODEL_CARD.md`, made by the project's own recipes with `make default-model`
(`python -m digitlab.pretrained.build`). They are the only model files the repository holds.

    from digitlab.pretrained import bundled_model
    bundled_model("mnist")           # -> Path of the folder, DigitlabError if absent
"""
from __future__ import annotations

from pathlib import Path

from digitlab.errors import DigitlabError, did_you_mean

HERE = Path(__file__).parent
# dataset -> folder of its bundled model; "mnist" is the default of every command
BUNDLED = {"mnist": "mnist", "fashion-mnist": "fashion-mnist"}
DEFAULT = "mnist"
FILES = ("model.json", "model.safetensors", "model.int8.onnx", "MODEL_CARD.md")


def bundled_model(dataset: str = DEFAULT) -> Path:
    """The folder of the bundled model for `dataset` ("mnist" or "fashion-mnist")."""
    if dataset not in BUNDLED:
        raise DigitlabError(f"no bundled model for {dataset!r}{did_you_mean(dataset, BUNDLED)}; bundled: "
                            f"{', '.join(BUNDLED)}. Train one with `digitlab train` and pass its run directory")
    folder = HERE / BUNDLED[dataset]
    if not (folder / "model.json").is_file():
        raise DigitlabError(f"the bundled {dataset} model is missing from {folder}: this installation was built "
                            "without it. Regenerate it with `make default-model`, or pass a run directory")
    return folder


READER = HERE / "reader"  # the bundled line reader behind `read` (reader.json, reader.safetensors, MODEL_CARD.md)
READER_FILES = ("reader.json", "reader.safetensors", "MODEL_CARD.md")


def bundled_reader() -> Path:
    """The folder of the bundled line reader (`digitlab.inference.reader.Reader.load()` reads it)."""
    if not (READER / "reader.json").is_file():
        raise DigitlabError(f"the bundled line reader is missing from {READER}: this installation was built "
                            "without it. Regenerate it with `make default-model`, or pass a reader folder")
    return READER


def available() -> list[str]:
    """The datasets whose bundled model is present in this installation."""
    return [name for name, folder in BUNDLED.items() if (HERE / folder / "model.json").is_file()]
