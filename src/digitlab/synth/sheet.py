"""Contact sheets: a grid of thumbnails of Samples, with their boxes, to look at a set."""
from __future__ import annotations

import os

import cv2
import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.synth.sample import Sample


def _on_checkerboard(rgba: np.ndarray) -> np.ndarray:
    """RGBA uint8 (h, w, 4) composited over a grey checkerboard (so transparency shows): RGB uint8."""
    h, w = rgba.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    board = np.where(((yy // 16) + (xx // 16)) % 2 == 0, 200, 235).astype(np.float32)[:, :, None]
    a = rgba[:, :, 3:4].astype(np.float32) / 255
    return (rgba[:, :, :3] * a + board * (1 - a) + 0.5).astype(np.uint8)


def contact_sheet(samples: list[Sample], *, columns: int = 4, tile: int = 300, boxes: bool = True) -> np.ndarray:
    """The samples as a grid of `tile`-px thumbnails (aspect kept), boxes drawn in red: uint8 RGB.

    Shape (rows * tile, columns * tile, 3); transparent canvases are shown over a checkerboard.
    """
    rows = max(1, -(-len(samples) // columns))
    sheet = np.full((rows * tile, columns * tile, 3), 255, np.uint8)
    for k, s in enumerate(samples):
        img = _on_checkerboard(s.image) if s.image.shape[2] == 4 else s.image
        h, w = img.shape[:2]
        f = (tile - 4) / max(h, w)
        thumb = cv2.resize(img, (max(1, int(w * f)), max(1, int(h * f))), interpolation=cv2.INTER_AREA)
        if boxes:
            thumb = thumb.copy()
            for x0, y0, x1, y1 in s.boxes:
                cv2.rectangle(thumb, (int(x0 * f), int(y0 * f)), (int(x1 * f), int(y1 * f)), (230, 0, 0), 1)
        r, c = divmod(k, columns)
        sheet[r * tile + 2:r * tile + 2 + thumb.shape[0], c * tile + 2:c * tile + 2 + thumb.shape[1]] = thumb
    return sheet


def save_sheet(samples: list[Sample], path: str | os.PathLike[str], **options: object) -> None:
    """Write `contact_sheet(samples, **options)` to `path` as PNG (atomically)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(contact_sheet(samples, **options), cv2.COLOR_RGB2BGR))  # type: ignore[arg-type]
    if not ok:
        raise RuntimeError("OpenCV could not encode the contact sheet")
    atomic_write_bytes(path, buf.tobytes())
