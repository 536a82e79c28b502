"""The one checkpoint format: `model.safetensors` (weights) + `model.json` (how to rebuild them).

Loading never unpickles anything: `model.json` names the model and its config, the registry
rebuilds it, and the weights come from safetensors. Both files are written atomically, the
JSON last and carrying the weights' SHA-256, so a crash mid-save is detected, not loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from torch import nn

from digitlab._io import atomic_write_bytes, atomic_write_json
from digitlab.errors import DigitlabError
from digitlab.layout import INPUT_SCALE, INPUT_SHAPE, MODEL_JSON, WEIGHTS, RunFiles

if TYPE_CHECKING:
    from digitlab.data import Dataset

FORMAT_VERSION = 1
MAX_META_BYTES = 16 * 2**20  # model.json is a few kB; a larger file is not one
MAX_WEIGHTS_BYTES = 2**30  # the largest recipe's weights are a few MB


class ModelSpec(BaseModel):
    """`model.json`'s "model": which registry model and its constructor's keyword arguments."""

    name: str
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        from digitlab.models import MODELS

        if name not in MODELS:
            raise ValueError(f"unknown model {name!r}; this digitlab knows {', '.join(MODELS)}")
        return name


class WeightsRef(BaseModel):
    """`model.json`'s "weights": the file and its SHA-256."""

    file: str = WEIGHTS
    sha256: str | None = Field(None, pattern="^[0-9a-f]{64}$")


class _Calibration(BaseModel):
    temperature: float = Field(1.0, gt=0.0, lt=1000.0)


class _Rejection(BaseModel):
    """`model.json`'s "rejection": inputs whose score is above `threshold` are "not a digit"."""

    model_config = ConfigDict(extra="allow")  # what it was fitted on, kept as information

    method: Literal["energy"] = "energy"  # -temperature * logsumexp(logits / temperature)
    threshold: float = Field(allow_inf_nan=False)
    temperature: float = Field(1.0, gt=0.0, lt=1000.0)


class ModelMeta(BaseModel):
    """The schema `model.json` is checked against at load (extra keys are kept, not checked)."""

    model_config = ConfigDict(extra="allow")

    format: Literal[1]
    model: ModelSpec
    num_classes: int = Field(ge=1, le=100_000, strict=True)
    class_names: list[str] | None = None
    dataset: str | None = None
    weights: WeightsRef | None = None
    calibration: _Calibration | None = None
    rejection: _Rejection | None = None
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        """The class names, "0", "1", ... when model.json gives none."""
        return tuple(self.class_names) if self.class_names else tuple(str(i) for i in range(self.num_classes))

    @property
    def temperature(self) -> float:
        """The calibration temperature; 1 when model.json has none."""
        return self.calibration.temperature if self.calibration is not None else 1.0

    @property
    def sha256(self) -> str | None:
        """The SHA-256 of the weights model.json was written with (None in a hand-made one)."""
        return self.weights.sha256 if self.weights is not None else None

    def to_json(self) -> dict[str, Any]:
        """model.json's content (extra keys included), as JSON types."""
        return self.model_dump(mode="json")

    @model_validator(mode="after")
    def _names_match(self) -> ModelMeta:
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"class_names has {len(self.class_names)} names but num_classes is "
                             f"{self.num_classes}; give one name per class")
        return self


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its `model.json` contents and its folder."""

    model: nn.Module
    meta: ModelMeta  # model.json, checked
    run_dir: Path

    @property
    def files(self) -> RunFiles:
        return RunFiles(self.run_dir)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain registry model inside DistributedDataParallel and/or `torch.compile` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = getattr(model, "_orig_mod")  # noqa: B009
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def _versions() -> dict[str, str]:
    import safetensors

    from digitlab import __version__

    return {"digitlab": __version__, "torch": torch.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def state_dict_bytes(model: nn.Module, metadata: dict[str, str] | None = None) -> bytes:
    """The model's state dict serialised as safetensors bytes (CPU, contiguous)."""
    from safetensors.torch import save

    state = {k: v.detach().to("cpu").contiguous() for k, v in unwrap_model(model).state_dict().items()}
    return save(state, metadata=metadata)


def save_checkpoint(run_dir: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any]) -> Checkpoint:
    """Write `run_dir/model.safetensors` and `run_dir/model.json` atomically; returns the saved Checkpoint.

    `model` is a registry model (wrappers are removed). `meta` supplies `class_names`,
    `dataset`, `training` (the config), `metrics` and optionally `calibration`; anything else
    in it is kept as is. The model's name, config, class count and input description are
    filled in here. The returned Checkpoint holds `model` itself and the `model.json` written.
    """
    from digitlab.models import get_config, model_name, num_classes_of

    model = unwrap_model(model)
    name, config = model_name(model), get_config(model)
    run_dir = Path(run_dir)
    weights = state_dict_bytes(model, metadata={"format": str(FORMAT_VERSION), "model": name})
    atomic_write_bytes(run_dir / WEIGHTS, weights)
    num_classes = num_classes_of(model)
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model": {"name": name, "config": config},
        "num_classes": num_classes,
        "class_names": list(meta.get("class_names") or [str(i) for i in range(num_classes)]),
        "dataset": meta.get("dataset"),
        "input": {"shape": list(INPUT_SHAPE), "scale": INPUT_SCALE,
                  "mean": float(config.get("mean", 0.0)), "std": float(config.get("std", 1.0))},
        "training": meta.get("training", {}),
        "metrics": meta.get("metrics", {}),
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": {"file": WEIGHTS, "sha256": hashlib.sha256(weights).hexdigest()},
    }
    for key, value in meta.items():
        doc.setdefault(key, value)
    checked = _check_meta(doc, run_dir / MODEL_JSON)
    atomic_write_json(run_dir / MODEL_JSON, doc)
    return Checkpoint(model=model, meta=checked, run_dir=run_dir)


def _resolve(path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """(run_dir, model.json, model.safetensors) for a run directory or either file."""
    p = Path(path).expanduser()
    if p.is_dir():
        run_dir = p
    elif p.name in (MODEL_JSON, WEIGHTS) or p.suffix in (".json", ".safetensors"):
        run_dir = p.parent
    elif not p.exists():
        raise DigitlabError(f"checkpoint {p}: no such file or directory; pass a run directory "
                            f"holding {MODEL_JSON} and {WEIGHTS} (e.g. runs/cnn-...)")
    else:
        raise DigitlabError(f"checkpoint {p}: not a run directory, {MODEL_JSON} or {WEIGHTS}")
    meta_path = p if p.suffix == ".json" else run_dir / MODEL_JSON
    weights_path = p if p.suffix == ".safetensors" else run_dir / WEIGHTS
    for f in (meta_path, weights_path):
        if not f.is_file():
            raise DigitlabError(
                f"checkpoint {f} is missing; a checkpoint is {MODEL_JSON} + {WEIGHTS} in one folder. "
                "Train again (`digitlab train`) or copy both files."
            )
    return run_dir, meta_path, weights_path


def read_meta(path: str | os.PathLike[str]) -> ModelMeta:
    """The parsed and checked `model.json` of a checkpoint (run dir or either file)."""
    _, meta_path, _ = _resolve(path)
    return _read_meta(meta_path)


def _check_meta(meta: Any, meta_path: Path) -> ModelMeta:
    """`meta` checked against the `ModelMeta` schema; DigitlabError naming the first bad field when it does not fit."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DigitlabError(f"checkpoint {meta_path} has format {found!r}; this digitlab reads "
                            f"format {FORMAT_VERSION}. Re-save it with this version.")
    try:
        return ModelMeta.model_validate(meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err.get("loc", ())) or "(top level)"
        raise DigitlabError(f"checkpoint {meta_path}: field {field!r} is invalid ({err.get('msg')}); the file is "
                            "damaged or was edited by hand: restore it or train again") from None


def _read_meta(meta_path: Path) -> ModelMeta:
    try:
        size = meta_path.stat().st_size
        if size > MAX_META_BYTES:
            raise DigitlabError(f"checkpoint {meta_path} is {size} bytes; a model.json is a few kB, so this is "
                                "not one: restore it or train again")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DigitlabError(f"checkpoint {meta_path} is not valid JSON ({exc}); the file is damaged: "
                            "re-save it or train again") from exc
    return _check_meta(meta, meta_path)


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from `model.json` and load `model.safetensors` into it (no pickle).

    `path`: a run directory, its `model.json` or its `model.safetensors`. The model is
    returned in eval mode on `device`. Any damage or mismatch raises `DigitlabError`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    run_dir, meta_path, weights_path = _resolve(path)
    meta = _read_meta(meta_path)
    size = weights_path.stat().st_size
    if size > MAX_WEIGHTS_BYTES:
        raise DigitlabError(f"checkpoint {weights_path} is {size / 2**30:.1f} GiB, more than the "
                            f"{MAX_WEIGHTS_BYTES // 2**30} GiB any MNIST-sized model needs; it is not one of ours")
    raw = weights_path.read_bytes()
    expected = meta.sha256
    if expected and hashlib.sha256(raw).hexdigest() != expected:
        raise DigitlabError(
            f"checkpoint {weights_path} does not match {meta_path} (SHA-256 differs): the weights were "
            "replaced, truncated or only half saved. Restore the pair from the same run, or train again."
        )
    try:
        state = load_safetensors(raw)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise DigitlabError(f"checkpoint {weights_path} is not a readable safetensors file ({exc}); "
                            "it is truncated or damaged: train again or restore it") from exc
    model = _model_for(meta, state, meta_path, weights_path)
    model.to(device).eval()
    return Checkpoint(model=model, meta=meta, run_dir=run_dir)


def _model_for(meta: ModelMeta, state: dict[str, torch.Tensor], meta_path: Path, weights_path: Path) -> nn.Module:
    """The model model.json describes, holding `state`; built on the meta device first, so a config that
    declares a model unlike its weights (or absurdly large) is refused before any memory is taken."""
    from digitlab.models import model_from_config

    spec = meta.model
    try:
        with torch.device("meta"):
            model = model_from_config(spec.name, meta.num_classes, spec.config)
    except DigitlabError as exc:
        raise DigitlabError(f"checkpoint {meta_path}: {exc}. It was written by another digitlab "
                            "version or edited by hand; train again or fix model.json.") from exc
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if want != got:
        differ = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))[:3]
        raise DigitlabError(
            f"checkpoint {weights_path} does not fit model {spec.name!r} with config {spec.config} "
            f"from {meta_path}: tensors {differ} differ (model.json wants {[want.get(k) for k in differ]}, the "
            f"weights hold {[got.get(k) for k in differ]}). The two files come from different runs; keep "
            "model.json and model.safetensors together."
        )
    model = model.to_empty(device="cpu")  # storage for exactly the weights' size, then filled by them
    model.load_state_dict(state, strict=True)
    return model


def dataset_of(
    meta: ModelMeta,
    dataset: str | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """The `digitlab.data` Dataset a checkpoint works on: `dataset`, else the one its model.json names.

    `run_dir` only names the checkpoint in the error raised when neither gives a dataset.
    """
    from digitlab.data import load

    name = dataset or meta.dataset
    if not name:
        where = Path(run_dir) / MODEL_JSON if run_dir is not None else "the checkpoint's model.json"
        raise DigitlabError(f"{where} names no dataset; pass one (e.g. --dataset mnist)")
    return load(name, data_dir=data_dir)


__all__ = ["Checkpoint", "ModelMeta", "ModelSpec", "WeightsRef", "dataset_of", "load_checkpoint", "read_meta",
           "save_checkpoint", "unwrap_model"]
