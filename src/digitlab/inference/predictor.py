"""`Predictor`: a checkpoint ready for inference, on PyTorch or ONNX Runtime (float or int8).

    predictor = Predictor.load("runs/cnn")             # or Predictor.load() for the bundled model
    predictor.predict_image("photo.jpg")               # -> Prediction (any picture: path, bytes, PIL, array)
    predictor.predict_proba(x_uint8)                   # (N, 28, 28) uint8 -> (N, C): the fast path
"""
from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL.Image import Image as PILImage

from digitlab.data.registry import Preprocessing, preprocessing_of
from digitlab.errors import DigitlabError
from digitlab.export.onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    weights_sha256,
)
from digitlab.export.sessions import Session, int8_session, onnx_session
from digitlab.inference.rejection import Ink, Rejection, decide, not_a
from digitlab.layout import BACKENDS, RunFiles, to_model_input
from digitlab.models.runner import check_images, predict_logits, softmax
from digitlab.prediction import Prediction, Reading
from digitlab.vision import MAX_IMAGE_PIXELS, ImageInput, Preprocessed, clean, load_image, preprocess, preprocess_image
from digitlab.vision.decode import label_of

if TYPE_CHECKING:
    import torch

    from digitlab.checkpoints import ModelMeta
    from digitlab.inference.reader import Reader

log = logging.getLogger("digitlab.inference")

Backend = Literal["auto", "torch", "onnx", "int8"]  # layout.BACKENDS, as a type
DEFAULT_TOP_K = 3
# "auto" prefers ONNX Runtime: measured faster than PyTorch on CPU for every registry model at
# batch 1 and batch 1000 (docs/evaluation.md has the figures and the command); and within it the
# int8 model when the run has an up-to-date one (only written when it kept the accuracy).


def _onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


class Predictor:
    """A trained model that answers for images: `predict_image(s)` for pictures, `predict_proba` for arrays.

    Build one with `Predictor.load(path, backend=...)`. Attributes: `class_names`, `model_id`
    (model name + first 12 hex digits of the weights' SHA-256), `meta` (the `model.json`),
    `backend` ("torch", "onnx" or "int8"), `run_dir`, `preprocessing` (the `preprocess_image`
    profile of the checkpoint's dataset), `temperature` (the calibration in `model.json`;
    1 when it has none), `rejection` (the "not a digit" score and threshold in `model.json`; None
    when it has none: then only blank pictures and several objects are rejected). Every
    prediction method takes `reject_threshold` (None: the stored threshold) and fills each
    Prediction's `rejected` and `reason` (see `digitlab.inference.rejection`). Thread-safe.
    """

    def __init__(
        self,
        *,
        backend: str,
        meta: ModelMeta | Mapping[str, Any],
        run_dir: Path,
        model: torch.nn.Module | None = None,
        session: Session | None = None,
        batch_size: int = 1024,
        reader: str | os.PathLike[str] | None = None,
        reader_refusal: bool = True,
    ) -> None:
        if (model is None) == (session is None):
            raise DigitlabError("Predictor needs exactly one of a torch model and an ONNX Runtime session")
        from digitlab.checkpoints import ModelMeta

        meta = meta if isinstance(meta, ModelMeta) else ModelMeta.model_validate(meta)
        self.backend = backend
        self.meta = meta
        self.run_dir = run_dir
        self.batch_size = int(batch_size)
        self.class_names: tuple[str, ...] = meta.names
        self.preprocessing: Preprocessing = preprocessing_of(meta.dataset)
        self.temperature = meta.temperature
        self.rejection = Rejection.from_meta(meta)
        self.model_id = f"{meta.model.name}-{weights_sha256(meta, run_dir)[:12]}"
        self._model = model
        self._session = session
        self._reader_path = reader
        # the line reader's not-a-digit symbol also refuses single pictures (digit models only)
        self.reader_refusal = bool(reader_refusal) and meta.dataset == "mnist"
        self._reader: Reader | None = None
        self._reader_lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        backend: str = "auto",
        *,
        batch_size: int = 1024,
        num_threads: int | None = None,
        reader: str | os.PathLike[str] | None = None,
        reader_refusal: bool = True,
    ) -> Predictor:
        """Load the checkpoint at `path` (run directory, `model.json` or `model.safetensors`), or with
        no path the bundled default MNIST model (`digitlab.pretrained`).

        backend: "torch"; "onnx" (ONNX Runtime on the run's `model.onnx` when it is up to date,
        else on an export made in memory and kept in the user cache; the run directory is never
        written); "int8" (ONNX Runtime on `model.int8.onnx`, written by `digitlab train` or
        `digitlab export --int8`; it must match the weights); "auto" (int8 when that file is
        there and up to date, else onnx when onnxruntime is installed and the export works, else
        torch). `num_threads`: intra-op threads (default: the library's own choice); for torch
        this sets the process-wide `torch.set_num_threads`. `reader`: the folder of the line reader
        behind `read` (default: the bundled one, loaded on first use); `reader_refusal`: a digit model
        also rejects pictures the reader reads as non-digit marks only (`predict_image`).
        """
        from digitlab.checkpoints import load_checkpoint

        if backend not in BACKENDS:
            raise DigitlabError(f"backend {backend!r} is unknown; use one of {', '.join(BACKENDS)}")
        if path is None:
            from digitlab.pretrained import bundled_model

            path = bundled_model()
        ckpt = load_checkpoint(path)
        meta, run_dir = ckpt.meta, Path(ckpt.run_dir)
        make: dict[str, Any] = {"batch_size": batch_size, "meta": meta, "run_dir": run_dir, "reader": reader,
                                "reader_refusal": reader_refusal}
        onnx_ok = backend in ("onnx", "int8") or (backend == "auto" and _onnxruntime_available())
        if backend == "int8" or (onnx_ok and backend == "auto" and RunFiles(run_dir).int8_onnx.is_file()):
            try:
                return cls(backend="int8", session=int8_session(meta, run_dir, num_threads), **make)
            except DigitlabError:
                if backend == "int8":
                    raise  # "auto": an int8 file of other weights, or one ONNX Runtime cannot load
        if backend == "onnx" or (backend == "auto" and onnx_ok):
            try:
                return cls(backend="onnx", session=onnx_session(ckpt.model, meta, run_dir, num_threads), **make)
            except DigitlabError:
                if backend == "onnx":
                    raise  # "auto": PyTorch still works
                log.warning("ONNX Runtime could not run %s; using PyTorch", run_dir, exc_info=True)
        if num_threads:
            import torch

            torch.set_num_threads(int(num_threads))
        return cls(backend="torch", model=ckpt.model, **make)

    # -- arrays in: the fast path ------------------------------------------------------------

    def predict_logits(self, x: np.ndarray) -> np.ndarray:
        """Logits float32 (N, C) for uint8 images (N, 28, 28) (a single (28, 28) image counts as N=1)."""
        x = check_images(x)
        if len(x) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return np.concatenate([self._run(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)])

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities float32 (N, C) for uint8 images (N, 28, 28); rows sum to 1."""
        return softmax(self.predict_logits(x), self.temperature)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted class indices int64 (N,) for uint8 images (N, 28, 28)."""
        return self.predict_logits(x).argmax(axis=1).astype(np.int64)

    def score(self, x: np.ndarray, y: np.ndarray) -> float:
        """Accuracy on uint8 images (N, 28, 28) with labels (N,): the share of `predict(x) == y`."""
        y = np.asarray(y).ravel()
        if len(y) != len(x) or len(y) == 0:
            raise DigitlabError(f"score: {len(x)} images and {len(y)} labels; pass as many of each, at least one")
        return float(np.mean(self.predict(x) == y))

    # -- pictures in ---------------------------------------------------------------------------

    def prepare(self, image: ImageInput, *, name: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
        """Any picture -> the uint8 (28, 28) this model sees, by its dataset's preprocessing.

        `image`: a file path, the file's bytes, a binary file object, a PIL image, or a NumPy
        array of any size and dtype (greyscale (H, W), RGB(A) (H, W, 3|4)). `name` names it in
        errors; `max_pixels` bounds the size a file may declare (decompression bombs). A blank
        picture raises BlankImageError (`predict_image` answers it with a rejected Prediction).
        """
        label, picture = self._picture(image, name, max_pixels)
        return preprocess_image(picture, name=label, profile=self.preprocessing)

    def preprocessed(self, image: ImageInput, *, name: str | None = None,
                     max_pixels: int = MAX_IMAGE_PIXELS) -> Preprocessed:
        """`prepare` with the facts about the ink found (blank, objects, ...); a blank picture is no error."""
        label, picture = self._picture(image, name, max_pixels)
        return preprocess(picture, name=label, profile=self.preprocessing)

    def _picture(self, image: ImageInput, name: str | None, max_pixels: int) -> tuple[str, np.ndarray | PILImage]:
        label = label_of(image, name)
        if isinstance(image, (np.ndarray, PILImage)):
            return label, image
        return label, load_image(image, name=label, max_pixels=max_pixels)

    def predict_image(self, image: ImageInput, *, top_k: int = DEFAULT_TOP_K, name: str | None = None,
                      reject_threshold: float | None = None) -> Prediction:
        """The prediction for one picture (see `prepare` for what it may be); blank: rejected, reason "blank".

        For a digit model with `reader_refusal` on, a picture the line reader reads as marks that are
        not digits (and no digit) is rejected too, reason "not a digit".
        """
        return self.predict_images([image], top_k=top_k, reject_threshold=reject_threshold, names=[name])[0]

    def predict_images(self, images: Sequence[ImageInput], *, top_k: int = DEFAULT_TOP_K,
                       reject_threshold: float | None = None,
                       names: Sequence[str | None] | None = None) -> list[Prediction]:
        """Predictions for several pictures, in one batched forward pass (see `predict_image`)."""
        pictures = [self._picture(im, nm, MAX_IMAGE_PIXELS) for im, nm in zip(images, names or [None] * len(images))]
        if not self.reader_refusal:
            done = [preprocess(pic, name=label, profile=self.preprocessing) for label, pic in pictures]
            return self._from_pictures(done, top_k, reject_threshold)
        from digitlab.inference.reading import reads_no_digit

        cleaned = [clean(pic, name=label) for label, pic in pictures]  # found once: for the classifier and the veto
        done = [preprocess(pic, name=label, profile=self.preprocessing, cleaned=c)
                for (label, pic), c in zip(pictures, cleaned, strict=True)]
        return [p.model_copy(update={"rejected": True, "reason": not_a("mnist")})
                if not p.rejected and reads_no_digit(self.reader, pic, name=label, cleaned=c) else p
                for p, (label, pic), c in zip(self._from_pictures(done, top_k, reject_threshold), pictures, cleaned,
                                              strict=True)]

    def read(self, image: ImageInput, *, name: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> Reading:
        """Every digit in one picture, as text (lines joined by "\\n") and per-digit boxes, read by the line
        reader (`self.reader`): see `digitlab.inference.reading.read`."""
        from digitlab.inference.reading import read

        return read(self.reader, image, name=name, max_pixels=max_pixels)

    @property
    def reader(self) -> Reader:
        """The line reader behind `read`: the one given to `load(reader=...)`, else the bundled one (loaded once)."""
        with self._reader_lock:
            if self._reader is None:
                from digitlab.inference.reader import Reader

                self._reader = Reader.load(self._reader_path)
            return self._reader

    def _from_pictures(self, done: list[Preprocessed], top_k: int, reject_threshold: float | None) -> list[Prediction]:
        if not done:
            return []
        logits = self.predict_logits(np.stack([d.image for d in done]))
        return self._predictions(logits, [Ink.of(d) for d in done], top_k, reject_threshold)

    def predict_prepared(self, x: np.ndarray, *, top_k: int = DEFAULT_TOP_K, reject_threshold: float | None = None,
                         ink: Sequence[Ink | None] | None = None) -> list[Prediction]:
        """Predictions for uint8 images (N, 28, 28) already in the model's format (no preprocessing).

        `ink`: the pictures' ink facts (`Ink.of(self.preprocessed(picture))`) when known; without
        them only an all-black image is rejected by the ink checks ("blank").
        """
        x = check_images(x)
        return self._predictions(self.predict_logits(x), Ink.of_images(x) if ink is None else ink, top_k,
                                 reject_threshold)

    def reasons(self, logits: np.ndarray, ink: Sequence[Ink | None] | None = None,
                reject_threshold: float | None = None) -> list[str | None]:
        """Why each of logits (N, C) is rejected (None: accepted), with the pictures' ink facts when known."""
        return decide(logits, self.rejection, ink=ink, threshold=reject_threshold, dataset=self.meta.dataset)

    def _predictions(self, logits: np.ndarray, ink: Sequence[Ink | None], top_k: int,
                     reject_threshold: float | None) -> list[Prediction]:
        reasons = self.reasons(logits, ink, reject_threshold)
        return [self._prediction(row, top_k, reason) for row, reason in zip(logits, reasons)]

    def prediction(self, logits: np.ndarray, *, top_k: int = DEFAULT_TOP_K, ink: Ink | None = None,
                   reject_threshold: float | None = None) -> Prediction:
        """The `Prediction` for one row of this model's logits (C,): calibrated probabilities, top k, rejection."""
        row = np.asarray(logits)
        return self._prediction(row, top_k, self.reasons(row[None], [ink], reject_threshold)[0])

    def _prediction(self, logits: np.ndarray, top_k: int, reason: str | None) -> Prediction:
        proba = softmax(np.asarray(logits, dtype=np.float64)[None], self.temperature)[0]  # float64: sums to 1
        return Prediction.from_probabilities(proba, self.class_names, self.model_id, top_k=top_k,
                                             rejected=reason is not None, reason=reason)

    def _run(self, xb: np.ndarray) -> np.ndarray:
        if self._session is None:
            assert self._model is not None
            return predict_logits(self._model, xb, batch_size=len(xb))
        return self._session.run([OUTPUT_NAME], {INPUT_NAME: to_model_input(xb)})[0]

    def __repr__(self) -> str:
        return f"Predictor(model_id={self.model_id!r}, backend={self.backend!r}, classes={len(self.class_names)})"
