"""ONNX Runtime sessions: one way to open them, the run's int8 and float models, and the user cache of exports."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.errors import DigitlabError
from digitlab.export.onnx import SHA_KEY, onnx_bytes, onnx_metadata, weights_sha256
from digitlab.layout import RunFiles

if TYPE_CHECKING:
    import torch

    from digitlab.checkpoints import ModelMeta

log = logging.getLogger("digitlab.export")


class Session(Protocol):
    """What digitlab asks of an inference session (onnxruntime.InferenceSession has it)."""

    def run(self, output_names: list[str], input_feed: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def ort_session(model: bytes, num_threads: int | None = None, *, name: str = "ONNX model", spin: bool = True) -> Any:
    """An ONNX Runtime CPU session on the serialised ONNX `model`; DigitlabError naming it if it cannot load.

    spin=False: threads sleep between ops instead of busy-waiting (for work that shares the CPU).
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise DigitlabError(f"{name}: ONNX Runtime is not installed ({exc}); pip install onnxruntime, "
                            "or use --backend torch") from exc
    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise DigitlabError(f"{name}: ONNX Runtime cannot load it ({exc}); delete it to re-export") from exc


def int8_is_current(meta: ModelMeta, run_dir: Path) -> bool:
    """Whether `run_dir/model.int8.onnx` exists and was made from these weights."""
    path = RunFiles(run_dir).int8_onnx
    try:
        return path.is_file() and onnx_metadata(path).get(SHA_KEY) == weights_sha256(meta, run_dir)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not current
        return False


def int8_session(meta: ModelMeta, run_dir: Path, num_threads: int | None) -> Session:
    """An ONNX Runtime session on the run's int8 model; a clear error when it is missing or stale."""
    path = RunFiles(run_dir).int8_onnx
    if not path.is_file():
        raise DigitlabError(f"{path} does not exist; make it with `digitlab export {run_dir} --onnx --int8`, "
                            "or use --backend onnx")
    if not int8_is_current(meta, run_dir):
        raise DigitlabError(f"{path} was made from other weights than {run_dir}'s; remake it with "
                            f"`digitlab export {run_dir} --onnx --int8`, or use --backend onnx")
    return ort_session(path.read_bytes(), num_threads, name=str(path))


def onnx_session(model: torch.nn.Module, meta: ModelMeta, run_dir: Path, num_threads: int | None) -> Session:
    """A session on the run's `model.onnx` when current, else on an export cached by the weights' SHA-256."""
    sha = weights_sha256(meta, run_dir)
    own = RunFiles(run_dir).onnx
    try:
        if own.is_file() and onnx_metadata(own).get(SHA_KEY) == sha:
            return ort_session(own.read_bytes(), num_threads, name=str(own))
    except Exception:  # noqa: BLE001 - a damaged model.onnx is ignored: the export below replaces it in memory
        log.warning("%s is unreadable; exporting the checkpoint again", own)
    data = cached_export(f"{sha[:32]}.onnx", sha, lambda: onnx_bytes(model, meta, run_dir))
    return ort_session(data, num_threads, name=f"ONNX export of {run_dir}")


def cached_export(name: str, sha: str, export: Callable[[], bytes]) -> bytes:
    """The ONNX export `name` of the weights with SHA-256 `sha`, from the user cache (`cache_root()/onnx`) when
    a valid one is there (its metadata names `sha`, or it has none), else `export()`, cached for next time."""
    from digitlab.data.cache import cache_root

    path = cache_root() / "onnx" / name
    try:
        data = path.read_bytes()
        import onnx

        props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
        if props.get(SHA_KEY, sha) == sha:
            return data
    except Exception:  # noqa: BLE001 - a missing or damaged cache entry is exported again
        pass
    data = export()
    try:
        atomic_write_bytes(path, data)
    except OSError as exc:  # a read-only cache costs an export per load, nothing more
        log.info("could not cache the ONNX export at %s (%s)", path, exc)
    return data

