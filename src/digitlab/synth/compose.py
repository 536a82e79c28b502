"""Arranging marks into a written line (or two) and rasterising them: the ink of a scene.

`arrange` places items left to right in row units (1 = the nominal digit height) with varied
gaps (negative ones overlap), sizes, baselines and slants; `rasterise` draws them at a pixel scale
and returns the coverage plus each item's ink hull, from which every ground-truth box is taken.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from digitlab.synth.strokes import Mark, StrokeMark, render_mark, unit_corners


@dataclass(frozen=True)
class Item:
    """One mark to write: a digit (label 0-9) or a non-digit (label None)."""

    mark: Mark
    label: int | None = None
    char: str | None = None  # the character it stands for ("7", "A"), None for shapes
    threshold: float = 0.5  # RasterMark: soft-threshold level (lower = bolder)
    pen: float = 0.08  # StrokeMark: pen width as a fraction of the row height


@dataclass(frozen=True)
class RowStyle:
    """How a line of items varies. Lengths are in row units (the nominal digit height)."""

    gap: tuple[float, float] = (0.08, 0.35)  # space between neighbours' unit boxes; < 0 overlaps
    size_jitter: float = 0.1  # each item's height is 1 +- this
    baseline_jitter: float = 0.04  # standard deviation of each item's bottom
    slant_deg: float = 4.0  # standard deviation of each item's rotation
    line_gap: tuple[float, float] = (1.3, 1.7)  # baseline to baseline, for two lines


DEFAULT_STYLE = RowStyle()


@dataclass
class Layout:
    """Rasterised ink: coverage float32 (h, w) in [0, 1] and what each item occupies.

    hulls[i]: float32 (m, 2) convex hull (x, y) of item i's ink, continuous pixel coordinates
    (pixel (r, c) spans [c, c+1] x [r, r+1]). row_px: the nominal digit height in pixels;
    baselines: y of each line's baseline (the bottom of its nominal row).
    """

    coverage: np.ndarray
    hulls: list[np.ndarray]
    items: tuple[Item, ...]
    row_px: float
    baselines: list[float] = field(default_factory=list)


def arrange(lines: list[list[Item]], rng: np.random.Generator, style: RowStyle) -> list[np.ndarray]:
    """2x3 matrices (unit box -> row units) placing each item of `lines`, in reading order.

    Line k's baseline is at y = 1 + sum of line gaps; items advance by their width plus a gap.
    """
    matrices = []
    baseline = 1.0
    for k, line in enumerate(lines):
        if k:
            baseline += rng.uniform(*style.line_gap)
        cursor = 0.0 if k == 0 else rng.normal(0, 0.15)
        for item in line:
            h = 1.0 + rng.uniform(-style.size_jitter, style.size_jitter)
            w = item.mark.aspect * h
            bottom = baseline + rng.normal(0, style.baseline_jitter)
            a = np.deg2rad(rng.normal(0, style.slant_deg))
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * h
            centre = np.array([cursor + w / 2, bottom - h / 2])
            offset = centre - rot @ np.array([item.mark.aspect / 2, 0.5])
            matrices.append(np.hstack([rot, offset[:, None]]))
            cursor += w + rng.uniform(*style.gap)
    return matrices


def baselines_of(lines: list[list[Item]], matrices: list[np.ndarray]) -> list[float]:
    """The mean bottom (row units) of each line's items under `matrices`."""
    out, i = [], 0
    for line in lines:
        bottoms = [float((m[:, :2] @ np.array([it.mark.aspect / 2, 1.0]) + m[:, 2])[1])
                   for it, m in zip(line, matrices[i:i + len(line)])]
        out.append(float(np.mean(bottoms)))
        i += len(line)
    return out


def extent(items: list[Item], matrices: list[np.ndarray]) -> tuple[float, float, float, float]:
    """Bounds (x0, y0, x1, y1) of the items' unit boxes under `matrices`, pen width included."""
    pts, pad = [], 0.0
    for item, m in zip(items, matrices):
        pts.append(unit_corners(item.mark.aspect) @ m[:, :2].T + m[:, 2])
        pad = max(pad, item.pen if isinstance(item.mark, StrokeMark) else 0.05)
    p = np.concatenate(pts)
    return (float(p[:, 0].min() - pad), float(p[:, 1].min() - pad), float(p[:, 0].max() + pad),
            float(p[:, 1].max() + pad))


def rasterise(items: list[Item], matrices: list[np.ndarray], shape: tuple[int, int],
              row_px: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Draw `items` through `matrices` (unit -> pixels) into coverage float32 `shape` (h, w).

    Each item is drawn in its own patch (its box plus the pen) and merged by maximum; returns the
    coverage and each item's ink hull (float32 (m, 2), continuous pixel coordinates). `row_px`
    turns an item's pen fraction into pixels.
    """
    h, w = shape
    cov = np.zeros((h, w), np.float32)
    hulls = []
    for item, m in zip(items, matrices):
        pen_px = item.pen * row_px
        corners = unit_corners(item.mark.aspect) @ m[:, :2].T + m[:, 2]
        margin = pen_px + 3 + 0.08 * row_px
        x0, y0 = np.maximum(np.floor(corners.min(0) - margin), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(corners.max(0) + margin), [w, h]).astype(int)
        local = m.copy()
        local[:, 2] -= (x0, y0)
        patch = render_mark(item.mark, local, (int(y1 - y0), int(x1 - x0)), pen_px=pen_px, threshold=item.threshold)
        np.maximum(cov[y0:y1, x0:x1], patch, out=cov[y0:y1, x0:x1])
        hulls.append(ink_hull(patch, (x0, y0)))
    return cov, hulls


def ink_hull(coverage: np.ndarray, offset: tuple[int, int] = (0, 0), threshold: float = 0.02) -> np.ndarray:
    """Convex hull float32 (m, 2) of the pixels of `coverage` above `threshold`, as pixel corners + offset.

    Empty ink gives an empty (0, 2) array.
    """
    pts = cv2.findNonZero((coverage > threshold).astype(np.uint8))
    if pts is None:
        return np.zeros((0, 2), np.float32)
    hull = cv2.convexHull(pts).reshape(-1, 2).astype(np.float32)
    corners = (hull[:, None, :] + np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)).reshape(-1, 2)
    return cv2.convexHull(corners).reshape(-1, 2).astype(np.float32) + np.asarray(offset, np.float32)


def layout(lines: list[list[Item]], rng: np.random.Generator, style: RowStyle, row_px: float) -> Layout:
    """Arrange `lines` and rasterise them at `row_px` pixels per row unit into a Layout just big enough."""
    matrices = arrange(lines, rng, style)
    items = [it for line in lines for it in line]
    x0, y0, x1, y1 = extent(items, matrices)
    px = [row_px * (m - np.array([[0, 0, x0], [0, 0, y0]])) for m in matrices]
    shape = (int(np.ceil((y1 - y0) * row_px)) + 1, int(np.ceil((x1 - x0) * row_px)) + 1)
    cov, hulls = rasterise(items, px, shape, row_px)
    bases = [(b - y0) * row_px for b in baselines_of(lines, matrices)]
    return Layout(cov, hulls, tuple(items), float(row_px), bases)
