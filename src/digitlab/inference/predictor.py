"""`Predictor`: a checkpoint ready for inference on uint8 (N, 28, 28) images, on PyTorch or ONNX Runtime."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.data.registry import Preprocessing, preprocessing_of
from digitlab.errors import DigitlabError
from digitlab.evaluation.metrics import softmax
from digitlab.inference.onnx_export import (
    INPUT_NAME,
    ONNX_NAME,
    OUTPUT_NAME,
    export_onnx,
    onnx_input,
    onnx_metadata,
    weights_sha256,
)

BACKENDS = ("auto", "torch", "onnx", "int8")
# "auto" prefers ONNX Runtime: measured faster than PyTorch on CPU for every registry model at
# batch 1 and batch 1000 (docs/evaluation.md has the figures and the command); and within it the
# int8 model when the run has an up-to-date one (only written when it kept the accuracy).
AUTO_PREFERS_ONNX = True


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class Predictor:
    """Class probabilities for uint8 images (N, 28, 28), bright ink on black (`preprocess_image` output).

    Build one with `Predictor.load(path, backend=...)`. Attributes: `class_names`, `model_id`
    (model name + first 12 hex digits of the weights' SHA-256), `meta` (the `model.json`),
    `backend` ("torch", "onnx" or "int8"), `run_dir`, `preprocessing` (the `preprocess_image` profile of
    the checkpoint's dataset, from the registry; "mnist" for folders and unknown datasets).
    Thread-safe for concurrent `predict_proba` calls.
    """

    def __init__(
        self,
        *,
        backend: str,
        meta: dict[str, Any],
        run_dir: Path,
        model: Any = None,
        session: Any = None,
        batch_size: int = 1024,
    ) -> None:
        self.backend = backend
        self.meta = meta
        self.run_dir = run_dir
        self.batch_size = int(batch_size)
        self.class_names: tuple[str, ...] = tuple(
            str(c) for c in (meta.get("class_names") or range(int(meta.get("num_classes", 10))))
        )
        self.preprocessing: Preprocessing = preprocessing_of(meta.get("dataset"))
        sha = weights_sha256(meta, run_dir)
        self.model_id = f"{meta['model']['name']}-{sha[:12]}"
        self._model = model
        self._session = session

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        backend: str = "auto",
        *,
        batch_size: int = 1024,
        num_threads: int | None = None,
    ) -> Predictor:
        """Load the checkpoint at `path` (run directory, `model.json` or `model.safetensors`).

        backend: "torch"; "onnx" (ONNX Runtime on `model.onnx` in the run directory, exported
        first if missing or made from other weights); "int8" (ONNX Runtime on `model.int8.onnx`,
        written by `digitlab train` or `digitlab export --int8`; it must match the weights);
        "auto" (int8 when that file is there and up to date, else onnx when onnxruntime is
        installed and the export works, else torch). `num_threads`: intra-op threads (default: the
        library's own choice); for torch this sets the process-wide `torch.set_num_threads`.
        """
        from digitlab.checkpoints import load_checkpoint

        if backend not in BACKENDS:
            raise DigitlabError(f"backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
        ckpt = load_checkpoint(path)
        run_dir = Path(ckpt.run_dir)
        from digitlab.inference.quantize import INT8_NAME

        auto_onnx = backend == "auto" and AUTO_PREFERS_ONNX and _onnxruntime_available()
        if backend == "int8" or (auto_onnx and (run_dir / INT8_NAME).is_file()):
            try:
                session = _int8_session(ckpt.meta, run_dir, num_threads)
            except DigitlabError:
                if backend == "int8":
                    raise
                # "auto": an int8 file made from other weights, or one ONNX Runtime cannot load;
                # the float model still works
            else:
                return cls(backend="int8", meta=ckpt.meta, run_dir=run_dir, session=session, batch_size=batch_size)
        if backend == "onnx" or auto_onnx:
            try:
                session = _onnx_session(path, ckpt.meta, run_dir, num_threads)
            except (DigitlabError, OSError, ImportError) as exc:
                if backend == "onnx":
                    if isinstance(exc, ImportError):
                        raise DigitlabError(f"backend 'onnx' needs onnx and onnxruntime ({exc}); "
                                            "install digitlab[onnx] or use --backend torch") from exc
                    raise
                # "auto": e.g. a read-only run directory without model.onnx; PyTorch still works
            else:
                return cls(backend="onnx", meta=ckpt.meta, run_dir=run_dir, session=session, batch_size=batch_size)
        if num_threads:
            import torch

            torch.set_num_threads(int(num_threads))
        return cls(backend="torch", meta=ckpt.meta, run_dir=run_dir, model=ckpt.model, batch_size=batch_size)

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        """Logits float32 (N, C) for uint8 images (N, 28, 28) (a single (28, 28) image counts as N=1)."""
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[None]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != (28, 28):
            raise ValueError(f"expected uint8 images of shape (N, 28, 28), got {x.dtype} {x.shape}")
        out = [self._run(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        if not out:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return np.concatenate(out)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities float32 (N, C) for uint8 images (N, 28, 28); rows sum to 1."""
        return softmax(self.predict_logits(x))  # float32 in, float32 out

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class indices int64 (N,) for uint8 images (N, 28, 28)."""
        return self.predict_logits(x).argmax(axis=1).astype(np.int64)

    def top_k(self, proba: np.ndarray, k: int) -> list[list[tuple[int, str, float]]]:
        """Per row of probabilities (N, C): the k best (index, class name, probability), best first."""
        k = max(1, min(int(k), proba.shape[1]))
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        return [[(int(i), self.class_names[i], float(row[i])) for i in idx] for idx, row in zip(order, proba)]

    def _run(self, xb: np.ndarray) -> np.ndarray:
        if self._session is None:
            from digitlab.evaluation.report import predict_logits

            return predict_logits(self._model, xb, batch_size=len(xb))
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: onnx_input(xb)})[0]

    def __repr__(self) -> str:
        return f"Predictor(model_id={self.model_id!r}, backend={self.backend!r}, classes={len(self.class_names)})"


def _int8_is_current(meta: dict[str, Any], run_dir: Path) -> bool:
    """Whether `run_dir/model.int8.onnx` exists and was made from these weights."""
    from digitlab.inference.quantize import INT8_NAME

    path = run_dir / INT8_NAME
    try:
        return path.is_file() and onnx_metadata(path).get("digitlab.weights_sha256") == weights_sha256(meta, run_dir)
    except Exception:  # noqa: BLE001 - an unreadable file is simply not used by "auto"
        return False


def _int8_session(meta: dict[str, Any], run_dir: Path, num_threads: int | None) -> Any:
    """An ONNX Runtime session on the run's int8 model; a clear error when it is missing or stale."""
    from digitlab.inference.quantize import INT8_NAME

    path = run_dir / INT8_NAME
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise DigitlabError(f"backend 'int8' needs onnx and onnxruntime ({exc}); install digitlab[onnx] "
                            "or use --backend torch") from exc
    if not path.is_file():
        raise DigitlabError(f"{path} does not exist; make it with `digitlab export {run_dir} --onnx --int8`, "
                            "or use --backend onnx")
    if not _int8_is_current(meta, run_dir):
        raise DigitlabError(f"{path} was made from other weights than {run_dir}'s; remake it with "
                            f"`digitlab export {run_dir} --onnx --int8`, or use --backend onnx")
    return _session(path, num_threads)


def _session(path: Path, num_threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if num_threads:
        options.intra_op_num_threads = int(num_threads)
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise DigitlabError(f"{path}: ONNX Runtime cannot load it ({exc}); delete it to re-export") from exc


def _onnx_session(path: str | os.PathLike[str], meta: dict[str, Any], run_dir: Path, num_threads: int | None) -> Any:
    """An ONNX Runtime session on `run_dir/model.onnx`, (re-)exported when missing or stale."""
    import onnxruntime  # noqa: F401 - ImportError here means: no ONNX backend

    onnx_path = run_dir / ONNX_NAME
    sha = weights_sha256(meta, run_dir)
    if not onnx_path.is_file() or onnx_metadata(onnx_path).get("digitlab.weights_sha256") != sha:
        try:
            export_onnx(path, onnx_path)
        except OSError as exc:
            raise DigitlabError(
                f"{onnx_path}: cannot write the ONNX export ({exc}); run `digitlab export {run_dir} --onnx "
                "--out PATH` somewhere writable, or use --backend torch"
            ) from exc
    return _session(onnx_path, num_threads)

