"""Lines of writing in a picture's ink, cut out and normalised as the line reader's input (NumPy and OpenCV only).

    layout = find_lines(ink)                  # ink: digitlab.vision.ink.InkMap of the picture
    layout.height                             # the writing's digit height, working pixels
    for line in layout.lines:
        line.image                            # uint8 (32, W): ink bright on black, digits DIGIT_PX tall
        line.box_of(x0, x1)                   # the working-pixel box of the line's ink in line columns [x0, x1)

How, and why:
- Components: connected ink; specks (under SPECK_SHARE of the largest, or MIN_PIXELS) and what
  lies along the picture's border (desk, page edge: `ink.on_border`) are left out. The digit
  height H is a high percentile of the taller components' heights.
- Lines: tall components (>= MAIN_HEIGHT x H) taken left to right join the line whose last member
  they overlap vertically the most (so a slanted line stays one line); lines whose bands overlap or
  nearly touch are merged (a digit broken across its middle is not two lines); small components
  (a 5's bar, a dot, a mark) join the line whose band they lie in, or are dropped when far from
  every line. Vectorised over lines, so a page of 10,000 components costs a fraction of a second.
- Normalising a line: its own components' darkness (other lines' ink never enters its crop), as a
  share of the line's typical ink darkness, scaled so its digits are DIGIT_PX tall with its baseline
  (the median bottom of its tall components) on the reader's BASELINE, its strokes brought into
  the pen widths the reader trained on (as a single digit's are). A line wider than MAX_LINE_PX is
  cut into several at gaps between its components, so no line costs unbounded time.
- Resolution (`read_layout`): lighting, ink and lines are found on the picture at working size
  (long side at most WORK_SIDE). When its digits are smaller than READ_DIGIT_PX there and the input
  has more pixels, the picture is cleaned again at the resolution that makes them READ_DIGIT_PX
  tall (at most the input's own, at most READ_MAX_PIXELS), and the lines are found in that: a page
  of 2,000 small digits keeps every stroke.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from digitlab.layout import BASELINE, DIGIT_PX, LINE_HEIGHT
from digitlab.vision.decode import MAX_FILE_BYTES, MAX_IMAGE_PIXELS, ImageInput, label_of, load_image
from digitlab.vision.ink import InkMap, find_ink, on_border
from digitlab.vision.normalise import FINE, stroke_width
from digitlab.vision.objects import MIN_PIXELS, SPECK_SHARE
from digitlab.vision.picture import Box, Cleaned, Picture, clean, picture

MAX_COMPONENTS = 20_000  # beyond this many, only the largest are kept: bounded time on a page of noise
MAIN_HEIGHT = 0.45  # components at least this tall (x H) carry lines; smaller ones are parts or marks
DIGIT_HEIGHT_PERCENTILE = 80  # H: this percentile of the heights of the taller components...
TALLER = 0.5  # ...those at least this share of the tallest one's height (not the specks and marks between digits)
LINE_OVERLAP = 0.3  # a tall component joins a line when it overlaps its last member vertically this much
LINE_GAP = 0.15  # lines closer than this (x H) vertically are one (a digit broken across its middle)
MAX_BAND = 2.0  # ...but a merged line is never taller than this (x H)
ATTACH_REACH = 0.6  # a small component farther than this (x H) from every line's band is dropped
INK_PERCENTILE = 75  # a line's ink level: this percentile of its ink pixels' darkness; darker ink saturates, as MNIST's
READ_STROKE = (2.2, 3.0)  # pen widths (px at the reader's scale) of most MNIST digits at DIGIT_PX...
STROKE_LIMITS = (2.0, 3.4)  # ...and lines whose pen is outside these are re-stroked into READ_STROKE
MAX_FINE_PIXELS = 8_000_000  # strokes are re-drawn at FINE (preprocess) x the reader's resolution when that
# takes at most this many pixels (a line 32 px high: ~15,000 px wide)
MARGIN = 4  # blank columns (reader px) left and right of a line's ink
MIN_DIGIT_PX = 10  # lines whose digits are shorter than this (px of the picture they are cut from) hold no legible
# digit (specks, dust, noise): they are left out, and nothing is spent on them
MAX_RESTROKE = 2  # strokes are thinned or thickened by at most this many reader px
ANCHOR_HEIGHT = 0.75  # components this tall (x the line's digit height) anchor its baseline
WANDER = 0.12  # baseline deviations up to this (x the digit height) are left as written: the synthetic lines' wander
WIDE_COMPONENT = 1.2  # components wider than this (x the digit height) are touching digits: several anchors
OWN_SHARE = 0.6  # a component belongs to a character read over this share of its width (its box)
MAX_GAP = 0.8  # blank runs between a line's characters are cut to this many digit heights (the reader needs
# no more to tell characters apart, and wide gaps cost time)
READ_DIGIT_PX = 32  # `read_layout` finds lines where digits are at least this tall (the reader scales them to 22 px)
READ_MAX_PIXELS = 16_000_000  # ...from at most this many pixels (bounded memory: a 12 MP photo fits)
MAX_LINE_PX = 3000  # a longer line (reader px; about 120 digits) is cut at gaps between its components
ATTACH_BATCH = 1024  # small components are attached this many at a time: (1024, lines) distances, bounded memory
MIN_SIDE_GAIN = 1.2  # the picture is cleaned again only when that makes its long side at least this much longer


@dataclass(frozen=True)
class TextLine:
    """One line of writing, ready for the reader, and how its columns map back to the picture.

    image: uint8 (LINE_HEIGHT, W), ink bright on black. scale: reader px per working px.
    xmap: float32 (W,), the working x at the centre of each image column (wide blank gaps are
    squeezed out of the image, so columns do not map linearly). mask: bool, the line's own ink
    within `bbox` (working px).
    """

    image: np.ndarray
    scale: float
    xmap: np.ndarray
    bbox: Box
    mask: np.ndarray
    parts: np.ndarray  # int (k, 4): the boxes of the line's components, working pixels

    def box_of(self, x0: int, x1: int) -> Box:
        """The working-pixel box of what was read in image columns [x0, x1): the components lying mostly
        (OWN_SHARE of their width) in those columns; else (a digit touching its neighbours) the line's ink
        under them; else the columns' band."""
        bx0, by0, bx1, by1 = self.bbox
        last = self.xmap.size - 1
        half = 0.5 / self.scale
        wx0 = int(np.floor(self.xmap[min(max(x0, 0), last)] - half))
        wx1 = int(np.ceil(self.xmap[min(max(x1 - 1, 0), last)] + half))
        p = self.parts
        inside = np.minimum(p[:, 2], wx1) - np.maximum(p[:, 0], wx0)
        mine = p[inside >= OWN_SHARE * (p[:, 2] - p[:, 0])]
        if len(mine):
            return (int(mine[:, 0].min()), int(mine[:, 1].min()), int(mine[:, 2].max()), int(mine[:, 3].max()))
        a, b = max(wx0, bx0), min(max(wx1, wx0 + 1), bx1)
        if a < b:
            rows = np.flatnonzero(self.mask[:, a - bx0:b - bx0].any(1))
            cols = np.flatnonzero(self.mask[:, a - bx0:b - bx0].any(0))
            if rows.size:
                return (a + int(cols[0]), by0 + int(rows[0]), a + int(cols[-1]) + 1, by0 + int(rows[-1]) + 1)
        return (max(wx0, bx0), by0, max(min(wx1, bx1), max(wx0, bx0) + 1), by1)


@dataclass(frozen=True)
class LineLayout:
    """The lines of a picture's writing, top to bottom; `height`: the digit height H in working pixels."""

    lines: list[TextLine]
    height: float


@dataclass(frozen=True)
class _Components:
    labels: np.ndarray  # int32 (h, w) component labels
    ids: np.ndarray  # int (K,): the significant components' labels
    boxes: np.ndarray  # int (K, 4): their [x0, y0, x1, y1)
    height: float  # H


def components(ink: InkMap) -> _Components | None:
    """The significant ink components (specks, border junk left out) and H; None when there are none."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.mask, connectivity=8)
    if n <= 1:
        return None
    junk = on_border(labels, stats)  # the desk, a page edge, a shadow's rim: not writing...
    if junk[1:].all():
        junk[:] = False  # ...unless that is all there is (a tight crop)
    areas = np.where(junk, 0, stats[:, cv2.CC_STAT_AREA])
    areas[0] = 0
    keep = areas >= max(MIN_PIXELS, SPECK_SHARE * int(areas.max()))
    ids = np.flatnonzero(keep)
    if ids.size == 0:
        return None
    if ids.size > MAX_COMPONENTS:
        ids = np.sort(ids[np.argsort(-areas[ids], kind="stable")[:MAX_COMPONENTS]])
    s = stats[ids]
    boxes = np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 3]], 1).astype(np.int64)
    heights = s[:, 3].astype(np.float64)
    height = float(np.percentile(heights[heights >= TALLER * heights.max()], DIGIT_HEIGHT_PERCENTILE))
    return _Components(labels, ids, boxes, max(height, 1.0))


def group_lines(comps: _Components) -> list[np.ndarray]:
    """Indices into comps.ids per line, lines top to bottom, each left to right."""
    boxes, H = comps.boxes, comps.height
    heights = boxes[:, 3] - boxes[:, 1]
    tall = np.flatnonzero(heights >= MAIN_HEIGHT * H)
    tall = tall[np.argsort(boxes[tall, 0], kind="stable")]
    last = np.zeros((len(tall), 2), np.float64)  # each line's last member's [y0, y1)
    line_of = np.full(len(boxes), -1)
    count = 0
    for k in tall.tolist():
        y0, y1 = boxes[k, 1], boxes[k, 3]
        if count:
            lo, hi = last[:count, 0], last[:count, 1]
            overlap = (np.minimum(y1, hi) - np.maximum(y0, lo)) / np.minimum(y1 - y0, hi - lo)
            best = int(np.argmax(overlap))
            if overlap[best] >= LINE_OVERLAP:
                line_of[k] = best
                last[best] = (y0, y1)
                continue
        line_of[k], last[count] = count, (y0, y1)
        count += 1
    if count == 0:
        return []
    line_of = _merge_stacked(line_of, boxes, count, H)
    _attach_small(line_of, boxes, H)
    members = [np.flatnonzero(line_of == i) for i in range(int(line_of.max()) + 1)]
    members = [m[np.argsort(boxes[m, 0], kind="stable")] for m in members if m.size]
    centre = [float(np.mean(boxes[m, 1] + boxes[m, 3])) for m in members]
    return [members[i] for i in np.argsort(centre, kind="stable")]


def _merge_stacked(line_of: np.ndarray, boxes: np.ndarray, count: int, H: float) -> np.ndarray:
    """Lines whose bands overlap (LINE_OVERLAP of the lower one) or nearly touch (under LINE_GAP x H): one,
    unless the band would grow taller than MAX_BAND x H (strokes scattered over a page are not one line)."""
    tops = np.full(count, np.inf)
    bottoms = np.full(count, -np.inf)
    assigned = line_of >= 0
    np.minimum.at(tops, line_of[assigned], boxes[assigned, 1])
    np.maximum.at(bottoms, line_of[assigned], boxes[assigned, 3])
    order = np.argsort(tops, kind="stable")
    group = np.empty(count, np.int64)
    g, g_top, g_bottom = 0, tops[order[0]], bottoms[order[0]]
    group[order[0]] = 0
    for i in order[1:].tolist():
        overlap = min(bottoms[i], g_bottom) - max(tops[i], g_top)
        tall = max(bottoms[i], g_bottom) - min(tops[i], g_top) > MAX_BAND * H  # a pile of lines is not a line
        if not tall and (overlap >= LINE_OVERLAP * min(bottoms[i] - tops[i], g_bottom - g_top)
                         or -overlap < LINE_GAP * H):
            g_top, g_bottom = min(g_top, tops[i]), max(g_bottom, bottoms[i])
        else:
            g, g_top, g_bottom = g + 1, tops[i], bottoms[i]
        group[i] = g
    return np.where(assigned, group[np.maximum(line_of, 0)], -1)


def _attach_small(line_of: np.ndarray, boxes: np.ndarray, H: float) -> None:
    """Small components (line_of -1) join the line whose band box is nearest, within ATTACH_REACH x H."""
    small = np.flatnonzero(line_of < 0)
    if small.size == 0:
        return
    n_lines = int(line_of.max()) + 1
    band = np.zeros((n_lines, 4))
    band[:, :2], band[:, 2:] = np.inf, -np.inf
    assigned = line_of >= 0
    for j, op in ((0, np.minimum), (1, np.minimum), (2, np.maximum), (3, np.maximum)):
        op.at(band[:, j], line_of[assigned], boxes[assigned, j])
    for start in range(0, small.size, ATTACH_BATCH):
        b = boxes[small[start:start + ATTACH_BATCH]].astype(np.float64)
        gx = np.maximum(0, np.maximum(band[None, :, 0] - b[:, None, 2], b[:, None, 0] - band[None, :, 2]))
        gy = np.maximum(0, np.maximum(band[None, :, 1] - b[:, None, 3], b[:, None, 1] - band[None, :, 3]))
        gap = np.hypot(gx, gy)
        best = gap.argmin(1)
        near = gap[np.arange(len(b)), best] <= ATTACH_REACH * H
        line_of[small[start:start + ATTACH_BATCH][near]] = best[near]


def find_lines(ink: InkMap) -> LineLayout:
    """The lines of writing in `ink`, top to bottom, each cut out and normalised for the reader."""
    comps = components(ink)
    if comps is None:
        return LineLayout([], 0.0)
    lines: list[TextLine] = []
    for members in group_lines(comps):
        if _line_height(comps.boxes[members], comps.height) < MIN_DIGIT_PX:
            continue
        for chunk in _chunks(members, comps):
            lines.append(normalise_line(ink, comps, chunk))
    return LineLayout(lines, comps.height)


def _chunks(members: np.ndarray, comps: _Components) -> list[np.ndarray]:
    """`members` (left to right) cut where the line would pass MAX_LINE_PX, at the widest gap nearby."""
    boxes = comps.boxes[members]
    limit = MAX_LINE_PX * _line_height(boxes, comps.height) / DIGIT_PX  # working px
    out, start = [], 0
    while boxes[start:, 2].max() - boxes[start, 0] > limit:
        reach = np.flatnonzero(boxes[start + 1:, 0] - boxes[start, 0] <= limit) + start + 1
        if reach.size == 0:  # one component wider than the limit: it is a line of its own
            cut = start + 1
        else:
            right = np.maximum.accumulate(boxes[start:, 2])[reach - start - 1]  # ink reached before each
            cut = int(reach[np.argmax(boxes[reach, 0] - right)])
        out.append(members[start:cut])
        start = cut
        if start >= len(members):
            break
    if start < len(members):
        out.append(members[start:])
    return out


def _line_height(boxes: np.ndarray, H: float) -> float:
    """A line's own digit height: DIGIT_HEIGHT_PERCENTILE of its tall members' heights (H when none)."""
    heights = (boxes[:, 3] - boxes[:, 1]).astype(np.float64)
    tall = heights[heights >= MAIN_HEIGHT * H]
    return float(np.percentile(tall, DIGIT_HEIGHT_PERCENTILE)) if tall.size else H


def normalise_line(ink: InkMap, comps: _Components, members: np.ndarray) -> TextLine:
    """The reader's image of one line (its components `members`): see the module docstring."""
    boxes = comps.boxes[members]
    x0, y0 = int(boxes[:, 0].min()), int(boxes[:, 1].min())
    x1, y1 = int(boxes[:, 2].max()), int(boxes[:, 3].max())
    own = np.isin(comps.labels[y0:y1, x0:x1], comps.ids[members])
    height = _line_height(boxes, comps.height)
    scale = DIGIT_PX / height
    dark = ink.darkness[y0:y1, x0:x1].astype(np.float32)
    level = max(float(np.percentile(dark[own], INK_PERCENTILE)), 1.0)
    edge = cv2.dilate(own.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)  # anti-aliased rims
    crop = np.where(edge, np.clip(dark / level, 0.0, 1.0), 0.0).astype(np.float32)
    small = _rescale(crop, own, scale)
    whole = (boxes[:, 3] - boxes[:, 1]) >= ANCHOR_HEIGHT * height  # whole digits, not the halves of broken ones
    base = baseline(own, height, boxes[whole] - np.array([x0, y0, x0, y0])) * scale  # per crop column, reader px
    cols = np.clip(np.round((np.arange(small.shape[1]) + 0.5) / scale - 0.5).astype(np.int64), 0, own.shape[1] - 1)
    map_y = (np.arange(LINE_HEIGHT, dtype=np.float32)[:, None] - BASELINE + base[cols][None, :]).astype(np.float32)
    map_x = np.broadcast_to(np.arange(small.shape[1], dtype=np.float32), map_y.shape)
    straight = cv2.remap(small, np.ascontiguousarray(map_x), map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    keep = _squeezed(straight.max(0) > 0, int(round(MAX_GAP * DIGIT_PX)))
    image = np.zeros((LINE_HEIGHT, keep.size + 2 * MARGIN), np.float32)
    image[:, MARGIN:MARGIN + keep.size] = straight[:, keep]
    xmap = np.concatenate([keep[0] - np.arange(MARGIN, 0, -1), keep, keep[-1] + np.arange(1, MARGIN + 1)])
    return TextLine(np.clip(np.rint(image * 255), 0, 255).astype(np.uint8), scale,
                    (x0 + (xmap + 0.5) / scale).astype(np.float32), (x0, y0, x1, y1), own, boxes.copy())


def _squeezed(inked: np.ndarray, max_gap: int) -> np.ndarray:
    """Indices of the columns kept when every run of blank columns (`inked` False) is cut to `max_gap`."""
    idx = np.arange(inked.size)
    if not inked.any():
        return idx[:max(1, min(inked.size, max_gap))]
    run_start = np.maximum.accumulate(np.where(inked, idx, -1))  # the last inked column at or before each
    next_ink = np.minimum.accumulate(np.where(inked, idx, inked.size)[::-1])[::-1]  # the first at or after
    gap = next_ink - run_start - 1  # the length of the blank run each blank column is in
    into = idx - run_start  # 1-based position in its run
    keep = inked | (gap <= max_gap) | (into <= max_gap // 2) | (next_ink - idx <= max_gap - max_gap // 2)
    return idx[keep]


def baseline(own: np.ndarray, height: float, whole: np.ndarray) -> np.ndarray:
    """float32 (w,): the baseline row under each column of a line's ink mask (h, w), following the writing.

    Anchors: each whole digit's component (`whole`: int (k, 4) boxes in the mask's pixels) sits on
    its bottom across its own columns; a component wider than WIDE_COMPONENT x height (touching
    digits) on the lowest ink of every height-wide stretch of it; between components the baseline
    runs straight. Deviations from the line's median within WANDER x height are kept (the reader
    learnt that much wander); larger ones are taken out, so a digit written far above or below its
    neighbours still lands on the reader's baseline, and nothing inside a digit is bent.
    """
    h, w = own.shape
    if len(whole) == 0:
        return np.full(w, h, np.float32)
    bottom = np.where(own.any(0), h - own[::-1].argmax(0), 0)
    xs: list[float] = []
    ys: list[float] = []
    for x0, _, x1, y1 in whole.tolist():
        if x1 - x0 <= WIDE_COMPONENT * height:
            xs += [x0, x1 - 1]
            ys += [y1, y1]
            continue
        for c in np.arange(x0 + height / 2, x1, height).tolist():
            lo, hi = int(max(x0, c - height / 2)), int(min(x1, c + height / 2))
            xs.append(c)
            ys.append(float(bottom[lo:hi].max()))
    order = np.argsort(xs, kind="stable")
    line = np.interp(np.arange(w), np.asarray(xs)[order], np.asarray(ys)[order])
    median = float(np.median(ys))
    dev = line - median
    kept = np.sign(dev) * np.maximum(np.abs(dev) - WANDER * height, 0.0)
    return (median + kept).astype(np.float32)


def _rescale(crop: np.ndarray, own: np.ndarray, scale: float) -> np.ndarray:
    """float ink `crop` resized by `scale`, its pen brought into READ_STROKE when outside STROKE_LIMITS."""
    h, w = crop.shape
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    width = stroke_width(own.astype(np.float32)) * scale
    fine_pixels = size[0] * size[1] * FINE * FINE
    if width > 0 and not STROKE_LIMITS[0] <= width <= STROKE_LIMITS[1] and fine_pixels <= MAX_FINE_PIXELS:
        fine = cv2.resize(crop, (size[0] * FINE, size[1] * FINE),
                          interpolation=cv2.INTER_AREA if scale * FINE < 1 else cv2.INTER_LINEAR)
        target = min(max(width, READ_STROKE[0]), READ_STROKE[1])
        r = int(round(min(abs(target - width), MAX_RESTROKE) * FINE / 2))
        if r:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
            fine = cv2.erode(fine, kernel) if width > target else cv2.dilate(fine, kernel)
        return np.clip(cv2.resize(fine, size, interpolation=cv2.INTER_AREA), 0.0, 1.0)
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.clip(cv2.resize(crop, size, interpolation=method), 0.0, 1.0)


def read_layout(image: ImageInput, *, name: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS,
                cleaned: Cleaned | None = None) -> tuple[Picture, LineLayout]:
    """(the picture the lines were cut from, its lines): see the module docstring on resolution.

    `cleaned`: `clean(image)` at working size when the caller already has it (a decoded `image`).
    """
    label = label_of(image, name)
    data: Any = image
    if not isinstance(image, (np.ndarray, Image.Image, str, os.PathLike, bytes)):
        data = image.read(MAX_FILE_BYTES + 1)  # a file object is read once, for both passes (size checked)
    source: Any = data if isinstance(data, (np.ndarray, Image.Image)) else load_image(
        data, name=label, max_pixels=max_pixels)
    if cleaned is None:
        cleaned = clean(source, name=label)
    pic = cleaned.picture
    layout = find_lines(cleaned.ink)
    side = _reading_side(pic, layout)
    if side is None:
        return pic, layout
    if not isinstance(data, (np.ndarray, Image.Image)):
        source = load_image(data, name=label, max_pixels=max_pixels, min_side=side)
    pic = picture(source, name=label, side=side)
    return pic, find_lines(find_ink(pic.pixels))


def _reading_side(pic: Picture, layout: LineLayout) -> int | None:
    """The long side to clean the picture again at, for digits READ_DIGIT_PX tall; None: working size will do."""
    work, full = max(pic.pixels.shape[:2]), max(pic.size)
    if layout.height >= READ_DIGIT_PX or full <= work or layout.height * full / work < MIN_DIGIT_PX:
        return None  # large enough already; no more pixels to be had; or specks even at full size
    side = min(full, math.ceil(work * READ_DIGIT_PX / layout.height),
               int(full * math.sqrt(READ_MAX_PIXELS / (pic.size[0] * pic.size[1]))))
    return side if side > work * MIN_SIDE_GAIN else None
