"""Resume state without pickle: `train_state.safetensors` (tensors) + `train_state.json` (the rest).

Holds the model weights, the optimiser state (its tensors flattened to `optim.<param>.<key>`),
the random number generators and the loop's counters. Written atomically at each
epoch's end, the JSON last: it is the commit point of an epoch.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from digitlab._io import atomic_write_bytes, atomic_write_json
from digitlab.errors import DigitlabError
from digitlab.layout import STATE_JSON, STATE_TENSORS


def flatten_optimizer(state_dict: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch optimiser state_dict -> (tensors keyed `optim.<param>.<key>`, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, pstate in state_dict["state"].items():
        for key, value in pstate.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """Inverse of `flatten_optimizer`: a state_dict for `optimizer.load_state_dict`."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for pid, values in rest["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    groups = []
    for group in rest["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def save_train_state(run_dir: Path, tensors: dict[str, torch.Tensor], info: dict[str, Any]) -> None:
    """Write the tensors, then the JSON (with the tensors' SHA-256), each atomically."""
    from safetensors.torch import save

    data = save({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})
    atomic_write_bytes(run_dir / STATE_TENSORS, data)
    atomic_write_json(run_dir / STATE_JSON, {**info, "tensors_sha256": hashlib.sha256(data).hexdigest()})


def load_train_state(run_dir: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, info) saved by `save_train_state`; a clear error if missing or damaged."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    json_path, tensor_path = run_dir / STATE_JSON, run_dir / STATE_TENSORS
    if not json_path.is_file() or not tensor_path.is_file():
        raise DigitlabError(
            f"cannot resume from {run_dir}: {STATE_JSON} / {STATE_TENSORS} not found (no epoch finished "
            "there yet, or it is not a run directory). Start a new run without --resume."
        )
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
        data = tensor_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != info.get("tensors_sha256"):
            raise DigitlabError(f"cannot resume from {run_dir}: {STATE_TENSORS} does not match {STATE_JSON} "
                                "(damaged or from another save). Start a new run without --resume.")
        return load(data), info
    except (OSError, ValueError, SafetensorError) as exc:
        raise DigitlabError(f"cannot resume from {run_dir}: the resume state is damaged ({exc}). "
                            "Start a new run without --resume.") from exc
