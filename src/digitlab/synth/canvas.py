"""Drawings on a canvas, as digitlab's web page and other apps send them (PNG, RGBA).

The web page's canvas is 280x280, filled black, drawn with white round strokes of lineWidth
round(0.08 * side) = 22 px, and posted as an opaque RGBA PNG (alpha 255 everywhere). Other apps
post a transparent canvas: dark strokes whose alpha is the coverage, RGB (0, 0, 0) (or white)
where nothing was drawn. Strokes are drawn directly at canvas resolution, anti-aliased.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from digitlab.synth.compose import DEFAULT_STYLE, Item, RowStyle, arrange, rasterise
from digitlab.synth.strokes import unit_corners

PAGE_SIDE = 280  # the web page's canvas
PAGE_STROKE = 0.08  # its lineWidth / side


@dataclass
class CanvasDrawing:
    """A rendered canvas: image uint8 (h, w, 4) RGBA, its PNG bytes, item boxes, the coverage (h, w) float32."""

    image: np.ndarray
    data: bytes
    boxes: list[list[int]]
    coverage: np.ndarray


def place_on_canvas(lines: list[list[Item]], rng: np.random.Generator, size: tuple[int, int], pen_px: float,
                    fill: tuple[float, float], style: RowStyle) -> tuple[list[Item], list[np.ndarray], float]:
    """Items with their pen set to `pen_px`, their 2x3 matrices in canvas px, and the row height in px.

    The row height is a random share `fill` of the canvas height (shrunk until the drawing fits
    with its pen); the drawing sits anywhere in the free space (off-centre, as people draw).
    """
    w, h = size
    matrices = arrange(lines, rng, style)
    items = [it for line in lines for it in line]
    pts = np.concatenate([unit_corners(it.mark.aspect) @ m[:, :2].T + m[:, 2] for it, m in zip(items, matrices)])
    lo, hi = pts.min(0), pts.max(0)
    margin = pen_px / 2 + 2
    row_px = rng.uniform(*fill) * h
    row_px = min(row_px, (w - 2 * margin) / (hi[0] - lo[0]), (h - 2 * margin) / (hi[1] - lo[1]))
    free = np.array([w, h]) - 2 * margin - (hi - lo) * row_px
    origin = margin + rng.uniform(0, 1, 2) * np.maximum(free, 0) - lo * row_px
    px = [np.hstack([row_px * m[:, :2], (row_px * m[:, 2] + origin)[:, None]]) for m in matrices]
    return [replace(it, pen=pen_px / row_px) for it in items], px, float(row_px)


def render_canvas(lines: list[list[Item]], rng: np.random.Generator, *, size: tuple[int, int] = (PAGE_SIDE, PAGE_SIDE),
                  pen_px: float | None = None, fill: tuple[float, float] = (0.45, 0.85), background: str = "black",
                  ink_rgb: tuple[int, int, int] = (255, 255, 255), style: RowStyle = DEFAULT_STYLE) -> CanvasDrawing:
    """Draw `lines` of stroke items on a canvas of `size` (w, h).

    background "black": the web page (white ink by default, alpha 255); "transparent": alpha is the
    ink coverage, RGB is `ink_rgb` on the ink and black or white (chosen at random) elsewhere.
    pen_px defaults to the web page's round(0.08 * height). Boxes: each item's ink, [x0, y0, x1, y1].
    """
    w, h = size
    pen = float(round(PAGE_STROKE * h)) if pen_px is None else float(pen_px)
    items, matrices, row_px = place_on_canvas(lines, rng, size, pen, fill, style)
    cov, hulls = rasterise(items, matrices, (h, w), row_px)
    ink = np.asarray(ink_rgb, np.float32)
    if background == "black":
        rgb = (cov[:, :, None] * ink + 0.5).astype(np.uint8)
        alpha = np.full((h, w), 255, np.uint8)
    elif background == "transparent":
        empty = 255.0 if rng.random() < 0.25 else 0.0
        rgb = np.where(cov[:, :, None] > 0, ink, np.float32(empty)).astype(np.uint8)
        alpha = (cov * 255 + 0.5).astype(np.uint8)
    else:
        raise ValueError(f"background {background!r}: use 'black' or 'transparent'")
    rgba = np.dstack([rgb, alpha])
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    if not ok:
        raise RuntimeError("OpenCV could not encode a PNG")
    boxes = [_hull_box(hull, (w, h)) for hull in hulls]
    return CanvasDrawing(rgba, buf.tobytes(), boxes, cov)


def _hull_box(hull: np.ndarray, size: tuple[int, int]) -> list[int]:
    if len(hull) == 0:
        return [0, 0, 0, 0]
    x0, y0 = np.floor(hull.min(0)).astype(int)
    x1, y1 = np.ceil(hull.max(0)).astype(int)
    return [int(max(x0, 0)), int(max(y0, 0)), int(min(x1, size[0])), int(min(y1, size[1]))]
