"""Test scenes made here, independently of the code under test: digits written on paper and photographed.

`coverage(digit, height)` turns an MNIST digit (28x28) into smooth ink coverage of any size;
`photo(...)` puts coverage on paper under chosen conditions (lighting, shadows, ruled or squared
lines, ink colour, a page edge with the desk beyond, specks, noise, JPEG) and returns RGB uint8;
`flat(...)` is the same ink on plain white paper in black, no effects: the reference every
condition is compared with. Whole-array NumPy / OpenCV drawing, a few milliseconds a scene.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

WHITE = (250, 249, 245)
BLACK_INK = (22, 22, 28)
BLUE_INK = (30, 50, 155)
PENCIL = (80, 80, 86)
RULE_BLUE = (150, 180, 222)


def coverage(digit: np.ndarray, height: int) -> np.ndarray:
    """float32 (s, s) in [0, 1]: the MNIST `digit` (uint8 28x28) as smooth ink, its 20-px box scaled to `height` px."""
    side = int(round(height * 28 / 20))
    big = cv2.resize(digit.astype(np.float32) / 255, (side, side), interpolation=cv2.INTER_CUBIC)
    big = cv2.GaussianBlur(big, (0, 0), side / 140)
    return np.clip((big - 0.35) / 0.3, 0, 1).astype(np.float32)  # soft threshold: pen-like edges


def place(ink: np.ndarray, size: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """float32 (h, w) canvas of `size` (w, h) with `ink` pasted with its top-left at `at` (x, y)."""
    w, h = size
    out = np.zeros((h, w), np.float32)
    x, y = at
    ih, iw = ink.shape
    out[y : y + ih, x : x + iw] = np.maximum(out[y : y + ih, x : x + iw], ink[: h - y, : w - x])
    return out


def flat(ink: np.ndarray) -> np.ndarray:
    """uint8 (h, w, 3): black ink of coverage `ink` (h, w) on plain white paper."""
    grey = np.clip(255 * (1 - ink) + 0.5, 0, 255).astype(np.uint8)
    return np.dstack([grey] * 3)


def _lines(shape: tuple[int, int], pitch: float, width: int, angle: float, squared: bool) -> np.ndarray:
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    t = np.tan(np.radians(angle))
    for y in np.arange(pitch / 2, h + abs(t) * w, pitch):
        cv2.line(out, (0, int(y)), (w - 1, int(y + t * w)), 255, width, cv2.LINE_AA)
    if squared:
        for x in np.arange(pitch / 3, w + abs(t) * h, pitch):
            cv2.line(out, (int(x), 0), (int(x - t * h), h - 1), 255, width, cv2.LINE_AA)
    return out.astype(np.float32) / 255


def _light(shape: tuple[int, int], kind: str, strength: float) -> np.ndarray:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == "linear":
        g = (xx / w) * 0.7 + (yy / h) * 0.3
    elif kind == "radial":
        g = np.hypot(xx / w - 0.2, yy / h - 0.3) / 1.1
    else:
        return np.ones((h, w), np.float32)
    return (1 - strength * np.clip(g, 0, 1)).astype(np.float32)


def _shadow(shape: tuple[int, int], kind: str, strength: float) -> np.ndarray:
    """Light factor of a shadow whose edge crosses the picture diagonally (hard, or blurred over ~5% of it)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inside = (yy / h + 0.6 * xx / w > 0.75).astype(np.float32)
    if kind == "soft":
        inside = cv2.GaussianBlur(inside, (0, 0), 0.05 * max(h, w))
    return 1 - strength * inside


def photo(ink: np.ndarray, *, seed: int = 0, light: str = "flat", light_strength: float = 0.0,
          shadow: str | None = None, shadow_strength: float = 0.5, lines: str | None = None,
          line_pitch: float = 60.0, line_width: int = 2, line_angle: float = 1.5,
          ink_rgb: tuple[int, int, int] = BLACK_INK, opacity: float = 0.92, desk: str | None = None,
          specks: int = 0, noise: float = 2.0, blur: float = 0.6) -> np.ndarray:
    """uint8 (h, w, 3) RGB: coverage `ink` (h, w) written on paper and photographed under these conditions.

    lines: None, "ruled" or "squared" (blue-grey lines of `line_pitch` px). desk: None, or "dark" /
    "wood": the page ends a fifth of the way in from the right edge and the desk shows beyond.
    """
    rng = np.random.default_rng(seed)
    h, w = ink.shape
    paper = np.ones((h, w, 3), np.float32) * np.asarray(WHITE, np.float32)
    if lines:
        a = 0.8 * _lines((h, w), line_pitch, line_width, line_angle, lines == "squared")[..., None]
        paper = paper * (1 - a) + np.asarray(RULE_BLUE, np.float32) * a
    a = (opacity * ink)[..., None]
    rgb = paper * (1 - a) + np.asarray(ink_rgb, np.float32) * a
    if specks:
        for _ in range(specks):
            cv2.circle(rgb, (int(rng.integers(w)), int(rng.integers(h))), int(rng.integers(1, 3)), (60, 60, 60), -1,
                       cv2.LINE_AA)
    if desk:
        colour = (48, 46, 45) if desk == "dark" else (135, 92, 58)
        edge = int(0.8 * w)
        rgb[:, edge:] = np.asarray(colour, np.float32)
        if desk == "wood":
            grain = (np.sin(np.arange(h)[:, None] / 3.0 + rng.normal(0, 0.3, (h, 1))) * 18).astype(np.float32)
            rgb[:, edge:] += grain[..., None]
    factor = _light((h, w), light, light_strength)
    if shadow:
        factor = factor * _shadow((h, w), shadow, shadow_strength)
    rgb = rgb * factor[..., None]
    if blur:
        rgb = cv2.GaussianBlur(rgb, (0, 0), blur)
    rgb = rgb + rng.normal(0, noise, rgb.shape).astype(np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    """The JPEG file of an RGB uint8 picture."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png(rgb: np.ndarray) -> bytes:
    """The PNG file of a uint8 picture."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def ink_box(cov: np.ndarray, at: tuple[int, int] = (0, 0)) -> tuple[int, int, int, int]:
    """[x0, y0, x1, y1) of the ink (coverage > 0.05) in `cov`, shifted by `at` (x, y)."""
    rows, cols = np.nonzero(cov > 0.05)
    return (int(cols.min()) + at[0], int(rows.min()) + at[1], int(cols.max()) + 1 + at[0], int(rows.max()) + 1 + at[1])


def number(digits: list[np.ndarray], *, height: int = 120, gap: float = 0.25, rng: np.random.Generator | None = None,
           break_at: float | None = None, margin: int = 60) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """(coverage float32 (h, w), each digit's ink box): MNIST `digits` written left to right.

    gap: space between neighbours' ink, in digit heights (negative: they overlap and may touch);
    with `rng`, sizes vary by 10% and baselines by 5% of the height. break_at: erase a gap (a disc
    8% of the height across) in each digit's stroke at this share of its height (the leftmost ink
    there), as a pen lifted too early.
    """
    covs = []
    for d in digits:
        h = int(round(height * (1 + (rng.uniform(-0.1, 0.1) if rng is not None else 0))))
        c = coverage(d, h)
        if break_at is not None:
            x0, y0, x1, y1 = ink_box(c)
            row = int(y0 + break_at * (y1 - y0))
            cols = np.flatnonzero(c[row] > 0.5)
            if cols.size:
                cv2.circle(c, (int(cols[0]) + 2, row), max(2, int(0.08 * height)), 0.0, -1)
        covs.append(c)
    boxes_local = [ink_box(c) for c in covs]
    side = max(c.shape[0] for c in covs)
    width = sum(b[2] - b[0] for b in boxes_local) + int(max(gap, 0) * height) * len(covs) + 2 * (margin + side)
    out = np.zeros((side + 2 * margin, width), np.float32)
    x = margin + side  # room on the left for the first square's blank border
    boxes = []
    for c, (bx0, by0, bx1, by1) in zip(covs, boxes_local):
        dy = int(rng.normal(0, 0.05) * height) if rng is not None else 0
        at = (x - bx0, margin + (side - c.shape[0]) + dy)
        region = out[at[1] : at[1] + c.shape[0], at[0] : at[0] + c.shape[1]]
        np.maximum(region, c[: region.shape[0], : region.shape[1]], out=region)
        boxes.append((bx0 + at[0], by0 + at[1], bx1 + at[0], by1 + at[1]))
        x += (bx1 - bx0) + int(round(gap * height))
    left = min(b[0] for b in boxes) - margin
    right = max(b[2] for b in boxes) + margin
    boxes = [(b[0] - left, b[1], b[2] - left, b[3]) for b in boxes]
    return np.ascontiguousarray(out[:, left:right]), boxes
