"""Whole pages to read: lines of MNIST digits on a sheet, and pages with no digit at all.

    page, text = digit_page(ds.x_test, ds.y_test, np.random.default_rng(0))   # 40 lines of 30 digits
    page.shape      # uint8 (3200, 1920): dark ink on white paper, as a scan
    text            # the 40 lines' digits joined by "\\n"
    noise_page("specks", np.random.default_rng(0))   # specks, salt_pepper, ruled, checkerboard: no digit

Digits are MNIST's own pixels (inverted onto paper, scaled by `scale`), placed in a grid with a
little jitter of position and gap, so a reader must find 1,200 small digits in order and keep
every stroke: what a shrunken page loses.
"""
from __future__ import annotations

import cv2
import numpy as np

from digitlab.errors import DigitlabError, did_you_mean

PAGE_SIZE = (1920, 3200)  # (width, height): a letter page scanned at about 180 dpi
PAPER = 245  # the paper's grey level
NOISE_KINDS = ("specks", "salt_pepper", "ruled", "checkerboard")


def digit_page(digits: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *, lines: int = 40,
               per_line: int = 30, size: tuple[int, int] = PAGE_SIZE, scale: float = 1.0,
               jitter: float = 0.15) -> tuple[np.ndarray, str]:
    """(uint8 (h, w) page, its text): `lines` lines of `per_line` random digits from `digits` (N, 28, 28).

    Each digit is MNIST's 28x28 scaled by `scale`, in a cell of the page's width / per_line, moved
    by up to `jitter` of a cell; lines are evenly spaced from top to bottom.
    """
    width, height = size
    side = max(8, round(28 * scale))
    cell_w, cell_h = width / (per_line + 1), height / (lines + 1)
    if side > min(cell_w, cell_h):
        raise DigitlabError(f"digit_page: {lines} lines of {per_line} digits of {side} px do not fit a "
                            f"{width}x{height} page; use fewer digits or a smaller scale")
    ink = np.zeros((height, width), np.float32)
    picks = rng.integers(0, len(digits), size=(lines, per_line))
    for i in range(lines):
        for j in range(per_line):
            glyph = cv2.resize(digits[picks[i, j]], (side, side), interpolation=cv2.INTER_LINEAR) / 255.0
            dx, dy = rng.uniform(-jitter, jitter, 2) * (cell_w - side, cell_h - side)
            x = int((j + 0.5) * cell_w + dx + (cell_w - side) / 2)
            y = int((i + 0.5) * cell_h + dy + (cell_h - side) / 2)
            region = ink[y:y + side, x:x + side]
            np.maximum(region, glyph[:region.shape[0], :region.shape[1]], out=region)
    page = np.clip(PAPER - ink * (PAPER - 20), 0, 255).astype(np.uint8)
    text = "\n".join("".join(str(int(labels[k])) for k in row) for row in picks)
    return page, text


def noise_page(kind: str, rng: np.random.Generator, *, size: tuple[int, int] = PAGE_SIZE,
               count: int = 20_000) -> np.ndarray:
    """uint8 (h, w) page with no digit: `count` specks, salt-and-pepper, an empty ruled page, or a checkerboard."""
    if kind not in NOISE_KINDS:
        raise DigitlabError(f"noise page kind {kind!r} is unknown{did_you_mean(kind, NOISE_KINDS)}; "
                            f"use one of {', '.join(NOISE_KINDS)}")
    width, height = size
    page = np.full((height, width), PAPER, np.uint8)
    if kind == "specks":
        xs, ys = rng.integers(0, width - 4, count), rng.integers(0, height - 4, count)
        radii = rng.integers(1, 3, count)
        for x, y, r in zip(xs.tolist(), ys.tolist(), radii.tolist(), strict=True):
            cv2.circle(page, (x, y), r, 30, -1)
    elif kind == "salt_pepper":
        flips = rng.random((height, width))
        page[flips < 0.02] = 0
        page[flips > 0.98] = 255
    elif kind == "ruled":
        for y in range(120, height, 64):
            cv2.line(page, (0, y), (width - 1, y), 150, 2)
        cv2.line(page, (160, 0), (160, height - 1), 120, 2)
    else:
        square = 40
        yy, xx = np.mgrid[:height, :width]
        page[((yy // square) + (xx // square)) % 2 == 1] = 20
    return page
