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
from typing import Any

import torch
from torch import nn

from digitlab._io import atomic_write_bytes, atomic_write_json
from digitlab.errors import DigitlabError

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"
INPUT_SHAPE = [1, 28, 28]


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode), its `model.json` contents and its folder."""

    model: nn.Module
    meta: dict[str, Any]
    run_dir: Path


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain registry model inside DistributedDataParallel and/or `torch.compile` wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):  # torch.compile's OptimizedModule
            model = model._orig_mod
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


def save_checkpoint(run_dir: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write `run_dir/model.safetensors` and `run_dir/model.json` atomically; returns the JSON path.

    `model` is a registry model (wrappers are removed). `meta` supplies `class_names`,
    `dataset`, `training` (the config) and `metrics`; anything else in it is kept as is.
    The model's name, config, class count and input description are filled in here.
    """
    model = unwrap_model(model)
    name = getattr(model, "name", None)
    config = getattr(model, "config", None)
    if name is None or config is None:
        raise DigitlabError(
            f"save_checkpoint: {type(model).__name__} has no .name/.config; "
            "build models with digitlab.models.build_model so a checkpoint can rebuild them"
        )
    run_dir = Path(run_dir)
    weights = state_dict_bytes(model, metadata={"format": str(FORMAT_VERSION), "model": name})
    atomic_write_bytes(run_dir / WEIGHTS_NAME, weights)
    num_classes = int(getattr(model, "num_classes", meta.get("num_classes", 10)))
    doc: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model": {"name": name, "config": config},
        "num_classes": num_classes,
        "class_names": list(meta.get("class_names") or [str(i) for i in range(num_classes)]),
        "dataset": meta.get("dataset"),
        "input": {"shape": INPUT_SHAPE, "scale": "pixels/255",
                  "mean": float(config.get("mean", 0.0)), "std": float(config.get("std", 1.0))},
        "training": meta.get("training", {}),
        "metrics": meta.get("metrics", {}),
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "weights": {"file": WEIGHTS_NAME, "sha256": hashlib.sha256(weights).hexdigest()},
    }
    for key, value in meta.items():
        doc.setdefault(key, value)
    return atomic_write_json(run_dir / META_NAME, doc)


def _resolve(path: str | os.PathLike[str]) -> tuple[Path, Path, Path]:
    """(run_dir, model.json, model.safetensors) for a run directory or either file."""
    p = Path(path).expanduser()
    if p.is_dir():
        run_dir = p
    elif p.name in (META_NAME, WEIGHTS_NAME) or p.suffix in (".json", ".safetensors"):
        run_dir = p.parent
    elif not p.exists():
        raise DigitlabError(f"checkpoint {p}: no such file or directory; pass a run directory "
                            f"holding {META_NAME} and {WEIGHTS_NAME} (e.g. runs/cnn-...)")
    else:
        raise DigitlabError(f"checkpoint {p}: not a run directory, {META_NAME} or {WEIGHTS_NAME}")
    meta_path = p if p.suffix == ".json" else run_dir / META_NAME
    weights_path = p if p.suffix == ".safetensors" else run_dir / WEIGHTS_NAME
    for f in (meta_path, weights_path):
        if not f.is_file():
            raise DigitlabError(
                f"checkpoint {f} is missing; a checkpoint is {META_NAME} + {WEIGHTS_NAME} in one folder. "
                "Train again (`digitlab train`) or copy both files."
            )
    return run_dir, meta_path, weights_path


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed and checked `model.json` of a checkpoint (run dir or either file)."""
    _, meta_path, _ = _resolve(path)
    return _read_meta(meta_path)


def _read_meta(meta_path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DigitlabError(f"checkpoint {meta_path} is not valid JSON ({exc}); the file is damaged: "
                            "re-save it or train again") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise DigitlabError(f"checkpoint {meta_path} has format {found!r}; this digitlab reads "
                            f"format {FORMAT_VERSION}. Re-save it with this version.")
    model = meta.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str) \
            or not isinstance(model.get("config", {}), dict):
        raise DigitlabError(f"checkpoint {meta_path}: 'model' must be {{'name': str, 'config': {{...}}}}; "
                            "the file is damaged or not a digitlab checkpoint")
    return meta


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model from `model.json` and load `model.safetensors` into it (no pickle).

    `path`: a run directory, its `model.json` or its `model.safetensors`. The model is
    returned in eval mode on `device`. Any damage or mismatch raises `DigitlabError`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    from digitlab.models import build_model

    run_dir, meta_path, weights_path = _resolve(path)
    meta = _read_meta(meta_path)
    raw = weights_path.read_bytes()
    expected = (meta.get("weights") or {}).get("sha256")
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
    spec = meta["model"]
    num_classes = int(meta.get("num_classes", len(meta.get("class_names") or [])) or 10)
    try:
        model = build_model(spec["name"], num_classes=num_classes, **spec.get("config", {}))
    except DigitlabError as exc:
        raise DigitlabError(f"checkpoint {meta_path}: {exc}. It was written by another digitlab "
                            "version or edited by hand; train again or fix model.json.") from exc
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise DigitlabError(
            f"checkpoint {weights_path} does not fit model {spec['name']!r} with config "
            f"{spec.get('config', {})} from {meta_path}: {' '.join(first[:3])}. The two files come from "
            "different runs; keep model.json and model.safetensors together."
        ) from exc
    model.to(device).eval()
    return Checkpoint(model=model, meta=meta, run_dir=run_dir)


__all__ = ["Checkpoint", "load_checkpoint", "read_meta", "save_checkpoint", "unwrap_model"]
