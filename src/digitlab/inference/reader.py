"""`Reader`: a trained line reader ready to read lines (BatchNorm folded, calibrated, thread-safe).

    reader = Reader.load()                    # the bundled reader (digitlab/pretrained/reader), or a folder
    chars = reader.read_lines(images)         # uint8 (32, W_i) lines -> [[ReadChar, ...], ...]
    chars[0][0].char, .probability, .span, .rejected

A reader folder holds `reader.safetensors` and `reader.json` (`digitlab.training.line_reader.save_reader`);
`reader.json` may carry "calibration": {"temperature": T} (fitted on held-out lines, see
`calibrate_reader`), "reject_below": a digit read with a calibrated probability under it is
refused as unsure, and "mark_sure": a character read as the not-a-digit symbol with at least this
calibrated probability is refused as "not a digit"; one read less surely counts as its likeliest digit.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from digitlab.errors import DigitlabError
from digitlab.export.onnx import READER_INPUT, READER_OUTPUT, reader_onnx_bytes
from digitlab.export.sessions import cached_export, ort_session
from digitlab.inference.ctc import best_path_runs, pad_lines
from digitlab.layout import ALPHABET, LINE_HEIGHT
from digitlab.models.fuse import fuse_for_inference
from digitlab.models.reader import META, WEIGHTS, load_reader

READER_BACKENDS = ("auto", "torch", "onnx")
NOT_A_DIGIT_REASON = "not a digit"
UNSURE_REASON = "unsure"
TAIL = 16  # px of black read after every line (see log_probs)
MAX_BATCH_PIXELS = 1_000_000  # lines are read in batches of at most this many padded pixels (the first conv's
# activations: 64 MB)


@dataclass(frozen=True)
class ReadChar:
    """One character read from a line: its digit (or the likeliest digit of a refused mark) and where."""

    label: int  # 0-9: the digit (for a refused mark: the digit it most resembles)
    char: str  # "0".."9", or "?" for a mark that is not a digit
    probability: float  # calibrated: the peak posterior of `char` over its frames
    span: tuple[int, int]  # [x0, x1): the line columns of its frames
    rejected: bool
    reason: str | None


class Reader:
    """A line reader (`digitlab.models.reader.LineReader`) that answers for line images.

    backend "auto": ONNX Runtime (an export made at the first load and kept in the user cache,
    threads that sleep between ops) when onnxruntime is installed, else PyTorch; "torch"; "onnx".
    """

    def __init__(self, model: torch.nn.Module, meta: dict[str, Any], folder: Path, *, backend: str = "auto",
                 num_threads: int | None = None) -> None:
        if backend not in READER_BACKENDS:
            raise DigitlabError(f"reader backend {backend!r} is unknown; use one of {', '.join(READER_BACKENDS)}")
        self.model = fuse_for_inference(model)
        self.meta = meta
        self.folder = folder
        self.stride = int(model.stride)  # type: ignore[arg-type]
        self.temperature = float((meta.get("calibration") or {}).get("temperature", 1.0))
        self.reject_below = float(meta.get("reject_below", 0.0))
        self.mark_sure = float(meta.get("mark_sure", 0.0))
        self.digest = hashlib.sha256((folder / WEIGHTS).read_bytes()).hexdigest()
        self.model_id = f"line_reader-{self.digest[:12]}"
        self._lock = threading.Lock()  # one forward pass at a time through the torch module
        self._session: Any = None
        self.backend = "torch"
        if backend != "torch":
            try:
                self._session = ort_session(self._onnx(), num_threads, name=f"the reader in {folder}", spin=False)
                self.backend = "onnx"
            except (DigitlabError, ImportError):
                if backend == "onnx":
                    raise

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, *, backend: str = "auto",
             num_threads: int | None = None) -> Reader:
        """The reader saved in folder `path` (reader.json + reader.safetensors); None: the bundled one."""
        if path is None:
            from digitlab.pretrained import bundled_reader

            path = bundled_reader()
        folder = Path(path)
        meta = json.loads((folder / META).read_text(encoding="utf-8")) if (folder / META).is_file() else {}
        return cls(load_reader(folder), meta, folder, backend=backend, num_threads=num_threads)

    def _onnx(self) -> bytes:
        """The reader as ONNX: from the user cache (keyed by the weights' SHA-256), else exported now and cached."""
        return cached_export(f"reader-{self.digest[:32]}.onnx", self.digest, lambda: reader_onnx_bytes(self.model))

    @torch.no_grad()
    def log_probs(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Each line's calibrated log-probabilities float32 (T_i, C), lines batched by width."""
        out: list[np.ndarray] = [np.zeros((0, len(ALPHABET) + 1), np.float32)] * len(images)
        # black columns after every line: its last character then reads the same alone or beside wider lines
        # (the context convs see black either way; without it padding moved a probability by up to 0.06)
        images = [np.pad(im, ((0, 0), (0, TAIL))) for im in images]
        order = np.argsort([im.shape[1] for im in images], kind="stable")
        k = 0
        while k < len(order):  # widths ascend, so a batch's last line is its widest
            n = 1
            while k + n < len(order) and (n + 1) * images[order[k + n]].shape[1] * LINE_HEIGHT <= MAX_BATCH_PIXELS:
                n += 1
            idx = order[k:k + n]
            x, widths = pad_lines([images[i] for i in idx], stride=self.stride)
            if self._session is not None:
                logits = torch.from_numpy(self._session.run([READER_OUTPUT], {READER_INPUT: x.numpy()})[0])
            else:
                with self._lock:
                    logits = self.model(x)  # (T, N, C) log-softmax at T=1
            lp = torch.log_softmax(logits / self.temperature, -1).numpy()
            lengths = self.model.output_lengths(widths).tolist()  # type: ignore[operator]
            for j, i in enumerate(idx.tolist()):
                out[i] = lp[:lengths[j], j]
            k += n
        return out

    def read_lines(self, images: Sequence[np.ndarray]) -> list[list[ReadChar]]:
        """Each line uint8 (32, W_i) read: its characters left to right (greedy CTC decoding)."""
        return [self.decode(lp) for lp in self.log_probs(images)]

    def decode(self, log_probs: np.ndarray) -> list[ReadChar]:
        """Best-path decoding of one line's log-probabilities (T, C): runs merged, blanks dropped.

        A character's probability is the peak posterior of its class over its run (a CTC spike).
        """
        if len(log_probs) == 0:
            return []
        probs = np.exp(log_probs)
        chars = []
        for s, e, c in best_path_runs(probs.argmax(1)):
            p, span = float(probs[s:e, c].max()), (s * self.stride, e * self.stride)
            if ALPHABET[c - 1] == "?":
                t = s + int(probs[s:e, c].argmax())
                digit = int(probs[t, 1:len(ALPHABET)].argmax())
                if p >= self.mark_sure:
                    chars.append(ReadChar(digit, "?", p, span, True, NOT_A_DIGIT_REASON))
                    continue
                c, p = 1 + digit, float(probs[t, 1 + digit])  # an unsure mark: its likeliest digit
            unsure = p < self.reject_below
            chars.append(ReadChar(c - 1, ALPHABET[c - 1], p, span, unsure, UNSURE_REASON if unsure else None))
        return chars


def is_reader_folder(path: str | Path) -> bool:
    """Whether `path` is a folder holding a line reader (reader.json and reader.safetensors)."""
    folder = Path(path)
    return (folder / META).is_file() and (folder / WEIGHTS).is_file()
