"""Marks: the things a scene writes (an MNIST digit as ink, a digit redrawn as pen strokes, a glyph).

A mark lives in its own unit box: y from 0 (top of its ink) to 1 (bottom), x from 0 to `aspect`.
`render_mark(mark, matrix, shape, ...)` draws it through a 2x3 affine `matrix` (unit box -> target
pixels) into a float32 coverage array in [0, 1]. Two kinds:

- `RasterMark`: a greyscale picture (an MNIST digit, a font glyph) resampled smoothly, then soft-
  thresholded, so a 28x28 digit stays smooth at 2000 px; the threshold changes its stroke width.
- `StrokeMark`: line segments (the skeleton of a digit or glyph, or a doodle's polylines) drawn by
  OpenCV with a round pen of any width, after a smooth hand-like jitter of the points.

Skeletons come from a vectorised Zhang-Suen thinning (`thin`), no OpenCV contrib needed.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_UPSCALE = 4  # raster marks are kept 4x upsampled and smoothed: the source of every resampling
_SHIFT = 4  # fractional bits for OpenCV drawing (coordinates are multiplied by 16)


@dataclass(frozen=True)
class RasterMark:
    """A greyscale mark: `image` float32 (h, w) in [0, 1], ink bright; unit box = its ink height."""

    image: np.ndarray  # float32 (h, w): the upsampled, smoothed ink
    px_per_unit: float  # source pixels per unit (the ink height in source pixels)
    source_px: float  # original pixels per unit (e.g. the MNIST ink height in 28x28 pixels)
    aspect: float  # ink width / ink height


@dataclass(frozen=True)
class StrokeMark:
    """Pen strokes: `segments` float32 (S, 2, 2) of (x, y) end points in unit-box coordinates."""

    segments: np.ndarray  # float32 (S, 2, 2); a segment with equal ends is a dot
    aspect: float  # width / height of the unit box the segments span


Mark = RasterMark | StrokeMark


def ink_bbox(image: np.ndarray, threshold: float = 0) -> tuple[int, int, int, int] | None:
    """Tight box (x0, y0, x1, y1), end-exclusive, of the pixels of `image` (h, w) above `threshold`."""
    mask = image > threshold
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def raster_mark(image: np.ndarray, *, upscale: int = _UPSCALE, smooth: float = 0.6) -> RasterMark:
    """A RasterMark from a uint8 (h, w) picture with bright ink on black (an MNIST digit, a glyph).

    The ink is cropped (2-px pad), upsampled `upscale` times (cubic) and blurred by `smooth`
    source pixels, which removes a 28x28 digit's pixel grid while keeping its shape.
    """
    box = ink_bbox(image, 20)
    if box is None:
        raise ValueError("raster_mark: the image has no ink")
    x0, y0, x1, y1 = box
    crop = np.pad(image[y0:y1, x0:x1], 2).astype(np.float32) / 255.0
    up = crop if upscale == 1 else cv2.resize(crop, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
    if smooth > 0:
        up = cv2.GaussianBlur(up, (0, 0), smooth * upscale)
    return RasterMark(np.clip(up, 0, 1), px_per_unit=float((y1 - y0) * upscale),
                      source_px=float(y1 - y0), aspect=(x1 - x0) / (y1 - y0))


def thin(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning of a bool (h, w) mask to a one-pixel-wide skeleton, bool (h, w).

    Vectorised: each sub-iteration is a handful of whole-array operations.
    """
    p = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            c = p[1:-1, 1:-1]
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]
            b = sum(v.astype(np.int16) for v in n)
            a = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.int16) for i in range(8))
            p2, p4, p6, p8 = n[0], n[2], n[4], n[6]
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            delete = (c == 1) & (b >= 2) & (b <= 6) & (a == 1) & cond
            if delete.any():
                c[delete] = 0
                changed = True
        if not changed:
            return p[1:-1, 1:-1].astype(bool)


def _neighbours(skeleton: np.ndarray) -> np.ndarray:
    """How many of each pixel's 8 neighbours are on in a bool (h, w) mask: int16 (h, w)."""
    s = np.pad(skeleton, 1).astype(np.int16)
    h, w = skeleton.shape
    out = np.zeros((h, w), np.int16)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                out += s[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    return out


def prune(skeleton: np.ndarray, length: int) -> np.ndarray:
    """A bool (h, w) skeleton without its spurs: side branches of at most `length` pixels.

    The classic pruning: peel the end pixels `length` times, regrow the surviving ends along the
    original skeleton as far; pieces peeled away entirely (short strokes, dots) are kept whole.
    """
    x1 = skeleton.copy()
    for _ in range(length):
        x1 &= ~(x1 & (_neighbours(x1) == 1))
    grown = x1 & (_neighbours(x1) == 1)
    kernel = np.ones((3, 3), np.uint8)
    for _ in range(length):
        grown = (cv2.dilate(grown.astype(np.uint8), kernel) > 0) & skeleton
    out = x1 | grown
    n, labels = cv2.connectedComponents(skeleton.astype(np.uint8), connectivity=8)
    lost = np.setdiff1d(np.arange(1, n), np.unique(labels[out]))
    return out | np.isin(labels, lost)


def skeleton_segments(skeleton: np.ndarray) -> np.ndarray:
    """Segments float32 (S, 2, 2) of (x, y) pixel centres joining 8-neighbours of a bool (h, w) skeleton.

    A diagonal link is left out where an L of two straight links already joins the pair, so strokes
    are not doubled; isolated pixels become dots (both ends equal).
    """
    s = np.pad(skeleton, 1)
    h, w = skeleton.shape
    ys, xs = np.nonzero(skeleton)
    segs = []
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        nb = s[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        link = skeleton & nb
        if dy and dx:  # diagonal: skip when (y, x+dx) or (y+dy, x) is on (an L covers it)
            link &= ~(s[1:1 + h, 1 + dx:1 + dx + w] | s[1 + dy:1 + dy + h, 1:1 + w])
        yy, xx = np.nonzero(link)
        segs.append(np.stack([np.stack([xx, yy], 1), np.stack([xx + dx, yy + dy], 1)], 1))
    degree = np.zeros_like(skeleton, dtype=np.int16)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                degree += s[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    lone = skeleton[ys, xs] & (degree[ys, xs] == 0)
    dots = np.stack([xs[lone], ys[lone]], 1)
    segs.append(np.stack([dots, dots], 1))
    return np.concatenate(segs).astype(np.float32)


def smooth_segments(segments: np.ndarray, iterations: int = 6) -> np.ndarray:
    """Segments (S, 2, 2) with their shared end points smoothed along the strokes (Laplacian).

    Removes the pixel staircase of a skeleton: each point moves halfway towards the mean of its
    neighbours, `iterations` times; stroke ends (one neighbour) stay, so strokes keep their length.
    """
    pts, inverse = np.unique(segments.reshape(-1, 2), axis=0, return_inverse=True)
    edges = inverse.reshape(-1, 2)
    edges = edges[edges[:, 0] != edges[:, 1]]
    degree = np.bincount(edges.ravel(), minlength=len(pts)).astype(np.float32)
    moving = (degree >= 2)[:, None]
    p = pts.astype(np.float32)
    for _ in range(iterations):
        acc = np.zeros_like(p)
        np.add.at(acc, edges[:, 0], p[edges[:, 1]])
        np.add.at(acc, edges[:, 1], p[edges[:, 0]])
        mean = acc / np.maximum(degree, 1)[:, None]
        p = np.where(moving, 0.5 * p + 0.5 * mean, p)
    return p[inverse].reshape(-1, 2, 2)


def _extend_ends(segments: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Segments (S, 2, 2) plus one segment at each stroke end, reaching half a stroke width short of its tip.

    Thinning eats about a stroke width at each end; each end is pushed out along its direction up to
    where the ink of `mask` ends, less the half width there (a round pen restores that part).
    """
    pts, inverse = np.unique(segments.reshape(-1, 2), axis=0, return_inverse=True)
    edges = inverse.reshape(-1, 2)
    degree = np.bincount(edges[edges[:, 0] != edges[:, 1]].ravel(), minlength=len(pts))
    ends = pts[degree == 1]
    if len(ends) == 0:
        return segments
    near = np.linalg.norm(ends[:, None] - pts[None], axis=2) < 4.0
    mean = (near[:, :, None] * pts[None]).sum(1) / near.sum(1, keepdims=True)
    direction = ends - mean
    direction /= np.maximum(np.linalg.norm(direction, axis=1, keepdims=True), 1e-6)
    steps = np.arange(0, 40, 0.5)
    ray = ends[:, None] + direction[:, None] * steps[None, :, None]  # (E, T, 2)
    ij = np.round(ray).astype(int)
    inside = (ij[..., 0] >= 0) & (ij[..., 1] >= 0) & (ij[..., 0] < mask.shape[1]) & (ij[..., 1] < mask.shape[0])
    ij = np.clip(ij, 0, [mask.shape[1] - 1, mask.shape[0] - 1])
    inside &= mask[ij[..., 1], ij[..., 0]] > 0
    exit_t = steps[np.argmin(np.cumprod(inside, axis=1), axis=1)]  # first step outside the ink
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    e = np.clip(np.round(ends).astype(int), 0, [mask.shape[1] - 1, mask.shape[0] - 1])
    half = dist[e[:, 1], e[:, 0]]
    tips = ends + direction * np.maximum(exit_t - half, 0)[:, None]
    return np.concatenate([segments, np.stack([ends, tips], 1).astype(np.float32)])


INK_PAD = 2  # pixels of background kept around the ink's box before upsampling


def _upsampled_ink(image: np.ndarray, upsample: int) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """(ink box in `image`, bool mask of the ink cropped with INK_PAD, upsampled `upsample` times); None: no ink."""
    box = ink_bbox(image, 20)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    crop = np.pad(image[y0:y1, x0:x1], INK_PAD)
    up = cv2.resize(crop, None, fx=upsample, fy=upsample, interpolation=cv2.INTER_LINEAR)
    return box, up > max(40.0, 0.35 * float(up.max()))  # faint MNIST strokes must not fall apart


def _pen_width(mask: np.ndarray, skeleton: np.ndarray) -> float:
    """The strokes' width in `mask`'s pixels: twice the median distance to the background along the skeleton."""
    if not skeleton.any():
        return 2.0
    return 2 * float(np.median(cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)[skeleton]))


def stroke_mark(image: np.ndarray, *, upsample: int = 2, join_pieces: bool = True) -> StrokeMark:
    """A StrokeMark from the skeleton of a uint8 (h, w) bright-on-black picture (digit or glyph).

    The picture is cropped to its ink, upsampled `upsample` times, thresholded and thinned; the
    segments are in unit-box coordinates (ink height 1). join_pieces: a faint digit that falls apart
    into more than two pieces is grown until they join (for MNIST; glyphs such as ÷ keep their dots).
    """
    found = _upsampled_ink(image, upsample)
    if found is None:
        raise ValueError("stroke_mark: the image has no ink")
    (x0, y0, x1, y1), ink = found
    mask = cv2.morphologyEx(ink.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    for _ in range(3 if join_pieces else 0):  # a digit in dots and dashes: grow it until its pieces join
        if cv2.connectedComponents(mask)[0] - 1 <= 2:
            break
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    skeleton = thin(mask > 0)
    skeleton = prune(skeleton, max(2, int(round(_pen_width(mask, skeleton)))))
    segs = _extend_ends(smooth_segments(skeleton_segments(skeleton)), mask)
    # pixel index -> continuous coordinate (centre at +0.5) -> crop pixels -> unit box of the ink
    unit = ((segs + 0.5) / upsample - INK_PAD) / (y1 - y0)
    return StrokeMark(unit.astype(np.float32), aspect=(x1 - x0) / (y1 - y0))


FIDELITY_UPSCALE = 4  # the check draws at 4x the source's pixels
FIDELITY_REACH = 1.5  # source pixels: ink this close to the other drawing counts as matched
FIDELITY_MIN = 0.9  # a redrawing must match this share of the source's ink, and the source this share of it


def stroke_fidelity(image: np.ndarray, mark: StrokeMark) -> tuple[float, float]:
    """(recall, precision) of `mark` drawn over the uint8 (h, w) picture it was traced from.

    recall: the share of the picture's ink within FIDELITY_REACH source pixels of the drawn strokes;
    precision: the share of the drawn strokes within that reach of the picture's ink. A faithful
    tracing has both near 1; a skeleton that lost a loop (an 8 drawn as a 9), closed one (a 3 drawn
    as a 0) or kept only a fragment (a 9 drawn as a 1) has one of them well below.
    """
    k, pad = FIDELITY_UPSCALE, INK_PAD
    found = _upsampled_ink(image, k)
    if found is None:
        return 0.0, 0.0
    (x0, y0, x1, y1), source = found
    width = _pen_width(source, thin(source))
    scale = (y1 - y0) * k
    matrix = np.array([[scale, 0, pad * k], [0, scale, pad * k]], np.float64)
    lo, hi = mark.segments.reshape(-1, 2).min(axis=0), mark.segments.reshape(-1, 2).max(axis=0)
    reach_px = int(np.ceil(max(0.0, -float(lo.min())) * scale)) + 2 * pad * k  # strokes left of or above the box
    grow_x = max(0, int(np.ceil(hi[0] * scale)) + 2 * pad * k - source.shape[1])
    grow_y = max(0, int(np.ceil(hi[1] * scale)) + 2 * pad * k - source.shape[0])
    source = np.pad(source, ((reach_px, grow_y), (reach_px, grow_x)))  # room for every stroke: none is clipped
    matrix[:, 2] += reach_px
    drawn = render_mark(mark, matrix, source.shape, pen_px=max(2.0, width)) > 0.5
    if not source.any() or not drawn.any():
        return 0.0, 0.0
    reach = FIDELITY_REACH * k
    near_drawn = cv2.distanceTransform((~drawn).astype(np.uint8), cv2.DIST_L2, 5) <= reach
    near_source = cv2.distanceTransform((~source).astype(np.uint8), cv2.DIST_L2, 5) <= reach
    return float(near_drawn[source].mean()), float(near_source[drawn].mean())


def faithful(image: np.ndarray, mark: StrokeMark) -> bool:
    """Whether `mark` redraws the picture it was traced from (`stroke_fidelity` both >= FIDELITY_MIN)."""
    return min(stroke_fidelity(image, mark)) >= FIDELITY_MIN


def polylines_mark(polylines: list[np.ndarray]) -> StrokeMark:
    """A StrokeMark from polylines, each float (K, 2) of (x, y); rescaled so their height is 1."""
    pts = np.concatenate(polylines)
    lo, hi = pts.min(0), pts.max(0)
    scale = 1.0 / max(float(hi[1] - lo[1]), 1e-6 + 0.25 * float(hi[0] - lo[0]))
    segs = [np.stack([p[:-1], p[1:]], 1) if len(p) > 1 else np.stack([p, p], 1) for p in polylines]
    unit = (np.concatenate(segs) - lo) * scale
    return StrokeMark(unit.astype(np.float32), aspect=float(hi[0] - lo[0]) * scale)


def hand_jitter(points: np.ndarray, rng: np.random.Generator, amount: float = 1.0) -> np.ndarray:
    """Points float (..., 2) in a unit box moved by a smooth random warp, as a hand redraws a shape.

    A small random affine (slant, rotation, width) plus a sum of three low-frequency waves per axis;
    the warp is a function of position, so segments that share an end stay joined. `amount` scales it.
    """
    p = np.asarray(points, np.float32)
    centre = p.reshape(-1, 2).mean(0)
    q = p - centre
    angle = np.deg2rad(rng.normal(0, 4) * amount)
    shear = rng.uniform(-0.18, 0.18) * amount
    sx = 1 + rng.uniform(-0.12, 0.12) * amount
    m = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array([[sx, shear], [0, 1]])
    q = q @ m.T.astype(np.float32)
    for axis in (0, 1):
        for _ in range(3):
            k = rng.normal(0, 1, 2) * 2 * np.pi * rng.uniform(0.4, 1.3)
            wave = 0.012 * amount * np.sin(q @ k.astype(np.float32) + rng.uniform(0, 2 * np.pi))
            q[..., axis] += wave.astype(np.float32)
    return q + centre


def unit_corners(aspect: float) -> np.ndarray:
    """The unit box's corners float32 (4, 2): (0,0), (aspect,0), (aspect,1), (0,1)."""
    return np.array([[0, 0], [aspect, 0], [aspect, 1], [0, 1]], np.float32)


def render_mark(
    mark: Mark,
    matrix: np.ndarray,
    shape: tuple[int, int],
    *,
    pen_px: float = 3.0,
    threshold: float = 0.5,
) -> np.ndarray:
    """Coverage float32 `shape` (h, w) in [0, 1] of `mark` drawn through `matrix` (2x3, unit -> pixels).

    RasterMark: resampled and soft-thresholded at `threshold` (lower = bolder strokes).
    StrokeMark: drawn with a round pen `pen_px` pixels wide, anti-aliased.
    """
    h, w = shape
    if isinstance(mark, StrokeMark):
        # OpenCV's anti-aliased thick lines come in coarse widths (+2.7 px, 3 and 4 alike): draw k times
        # finer without anti-aliasing and average down, which gives the pen's width to a quarter pixel.
        k = 4 if h * w <= 400_000 else 2
        pts = (mark.segments.reshape(-1, 2) @ matrix[:, :2].T + matrix[:, 2]) * k - 0.5  # continuous -> index
        fixed = np.round(pts * (1 << _SHIFT)).astype(np.int32).reshape(-1, 2, 2)
        fine = np.zeros((h * k, w * k), np.uint8)
        thickness = max(1, round(pen_px * k) - 1)
        cv2.polylines(fine, list(fixed), False, 255, thickness, cv2.LINE_8, _SHIFT)
        return cv2.resize(fine, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    # Continuous coordinates (pixel i spans [i, i+1]) throughout: source -> unit is x / ppu - pad
    # (the crop's 2-px pad); warpAffine works on pixel indices, so conjugate by the half-pixel shift.
    pad = 2.0 / mark.source_px
    s = 1.0 / mark.px_per_unit
    to_unit = np.array([[s, 0, -pad], [0, s, -pad], [0, 0, 1]])
    full = np.vstack([matrix, [0, 0, 1]]) @ to_unit
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    m = (np.linalg.inv(half) @ full @ half)[:2]
    v = cv2.warpAffine(mark.image, m.astype(np.float64), (w, h), flags=cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    scale = abs(np.linalg.det(matrix[:, :2])) ** 0.5 / mark.source_px  # target px per source px
    steep = float(np.clip(1.2 * scale, 1.0, 40.0))  # the edge ramp stays ~1 target pixel wide
    return np.clip((v - threshold) * steep + 0.5, 0, 1).astype(np.float32)


def normalised(segments: np.ndarray) -> StrokeMark:
    """A StrokeMark of `segments` (S, 2, 2) moved and scaled so they span y in [0, 1] from x = 0."""
    pts = segments.reshape(-1, 2)
    lo, hi = pts.min(0), pts.max(0)
    height = max(float(hi[1] - lo[1]), 1e-3, 0.2 * float(hi[0] - lo[0]))
    return StrokeMark(((segments - lo) / height).astype(np.float32), aspect=float(hi[0] - lo[0]) / height)


def jittered(mark: StrokeMark, rng: np.random.Generator, amount: float = 1.0) -> StrokeMark:
    """`mark` redrawn by a hand: `hand_jitter` of its points, renormalised to its unit box."""
    return normalised(hand_jitter(mark.segments, rng, amount))


def _bends(pts: np.ndarray, radius: float = 0.12) -> np.ndarray:
    """How far from straight the stroke is around each point (n,): the minor/major spread of its neighbours.

    High at corners, junctions and tight curves, ~0 along straight runs.
    """
    d = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    near = (d < radius).astype(np.float32)
    count = near.sum(1, keepdims=True)
    mean = near @ pts / count
    centred = pts[None] - mean[:, None]
    cov = np.einsum("ij,ijk,ijl->ikl", near, centred, centred) / count[:, :, None]
    eig = np.linalg.eigvalsh(cov)
    return eig[:, 0] / np.maximum(eig[:, 1], 1e-9)


def break_strokes(mark: StrokeMark, label: int | None, rng: np.random.Generator, pen: float) -> StrokeMark:
    """`mark` with a gap where two strokes should have met, as a pen lifted early; `pen`: pen width (units).

    Where: for a 4 (p=0.7) a junction (its two strokes no longer touch); for a 5 (p=0.7) the
    top-left corner (bar apart from body); for a 0 the top (the loop left open); for a 1 its top
    (the flag apart from the stem); otherwise one of
    the most bent places (corners, junctions), away from stroke ends. The gap between the pen's
    round ends is 0.3-1 pen width plus 2-6% of the height.
    """
    pts, inverse = np.unique(mark.segments.reshape(-1, 2), axis=0, return_inverse=True)
    edges = inverse.reshape(-1, 2)
    degree = np.bincount(edges[edges[:, 0] != edges[:, 1]].ravel(), minlength=len(pts))
    ends = pts[degree == 1]
    far = np.ones(len(pts), bool) if len(ends) == 0 else (
        np.linalg.norm(pts[:, None] - ends[None], axis=2).min(1) > 0.2)
    if label == 4 and (degree >= 3).any() and rng.random() < 0.7:
        candidates = pts[degree >= 3]
    elif label == 5 and rng.random() < 0.7:
        upper = pts[pts[:, 1] < 0.45] if (pts[:, 1] < 0.45).any() else pts
        candidates = upper[np.argsort(upper.sum(1))[:3]]
    elif label == 0:
        candidates = pts[pts[:, 1] < pts[:, 1].min() + 0.12]
    elif label == 1:  # only where a flag or a foot meets the stem
        top = pts[(pts[:, 1] < 0.3) & far]
        candidates = top if len(top) else pts
    else:
        bend = np.where(far, _bends(pts), -1.0)
        candidates = pts[bend >= np.quantile(bend[far], 0.8)] if far.any() else pts
    centre = candidates[int(rng.integers(len(candidates)))]
    radius = pen / 2 + 0.5 * (rng.uniform(0.3, 1.0) * pen + rng.uniform(0.02, 0.06))
    near = (np.linalg.norm(mark.segments - centre, axis=2) < radius).any(1)
    if near.all():
        return mark
    return StrokeMark(mark.segments[~near], mark.aspect)
