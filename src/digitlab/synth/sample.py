"""The `Sample` every generator returns, and `clean_version`: the same ink, without the effects."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from digitlab.synth.photo import boxes_of

KINDS = ("digit", "number", "nondigit")


@dataclass(frozen=True)
class InkRecord:
    """Where a sample's ink is: coverage uint8 (h, w) and the 3x3 homography from its pixels to the image's."""

    coverage: np.ndarray  # uint8 (h, w), 255 = full ink, before any camera effect
    homography: np.ndarray  # float64 (3, 3): coverage continuous px -> image continuous px
    size: tuple[int, int]  # the image's (width, height)
    hulls: tuple[np.ndarray, ...] = ()  # per box: its ink's convex hull float32 (m, 2) in coverage px


@dataclass
class Sample:
    """One generated image with its ground truth.

    image: uint8 (H, W, 3) RGB (photos, decoded from `data`) or (H, W, 4) RGBA (canvases).
    kind: "digit", "number" or "nondigit". condition: the condition's name.
    label: the digit (0-9) for kind "digit", None otherwise.
    text: the digits written, in reading order ("7"; "2024"; "12\\n345" for two lines); None for non-digits.
    boxes: [x0, y0, x1, y1] per digit of `text` (newlines skipped), end-exclusive image pixels, each
        enclosing that digit's ink; a non-digit has one box around its ink.
    params: how it was made (JSON-able): the medium, the source digit (MNIST test index) or font,
        the pen, and every photo factor.
    data: the file an app would send (JPEG for photos, PNG for canvases); format: "jpeg" or "png".
    """

    image: np.ndarray
    kind: str
    condition: str
    label: int | None
    text: str | None
    boxes: list[list[int]]
    params: dict[str, Any]
    data: bytes | None = None
    format: str = "png"
    ink: InkRecord | None = field(default=None, repr=False)

    @property
    def digits(self) -> str:
        """`text` without line breaks ("" for non-digits): one character per box."""
        return (self.text or "").replace("\n", "")


def clean_version(sample: Sample, *, upright: bool = False) -> Sample:
    """The ideal scene of `sample`: same ink, same placement, flat white paper, black ink, no effects.

    Returns a Sample with image uint8 (H, W, 3) RGB of the same size, the same label, text and boxes,
    condition "<condition>/clean", params {"clean_of": condition, "upright": upright} and no file bytes.
    upright=True also undoes the camera's rotation and perspective: the ink is scaled to the same
    height and centred on the same point, without rotation or tilt (boxes are then recomputed).
    Raises ValueError for a sample that carries no InkRecord.
    """
    if sample.ink is None:
        raise ValueError(f"sample of {sample.condition!r} carries no ink record; it cannot be re-rendered clean")
    rec = sample.ink
    cov = rec.coverage.astype(np.float32) / 255
    h = rec.homography
    if upright:
        h = _upright(cov, h, sample.boxes)
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    m = np.linalg.inv(half) @ h @ half
    warped = cv2.warpPerspective(cov, m, rec.size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    grey = np.clip(255 * (1 - warped) + 0.5, 0, 255).astype(np.uint8)
    boxes = boxes_of(list(rec.hulls), h, rec.size) if upright and rec.hulls else sample.boxes
    return Sample(np.dstack([grey] * 3), sample.kind, f"{sample.condition}/clean", sample.label, sample.text, boxes,
                  {"clean_of": sample.condition, "upright": upright}, None, "png",
                  InkRecord(rec.coverage, h, rec.size, rec.hulls))


def _upright(cov: np.ndarray, h: np.ndarray, boxes: list[list[int]]) -> np.ndarray:
    """A similarity (3x3) putting the ink of `cov` at the centre and height of `boxes`' union."""
    ys, xs = np.nonzero(cov > 0.02)
    if xs.size == 0 or not boxes:
        return h
    src = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    b = np.asarray(boxes, np.float64)
    dst = np.array([b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()])
    s = (dst[3] - dst[1]) / (src[3] - src[1])
    c_src, c_dst = (src[:2] + src[2:]) / 2, (dst[:2] + dst[2:]) / 2
    return np.array([[s, 0, c_dst[0] - s * c_src[0]], [0, s, c_dst[1] - s * c_src[1]], [0, 0, 1]])

