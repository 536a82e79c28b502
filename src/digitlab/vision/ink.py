"""The ink of a picture: paper and lighting removed, ink thresholded, notebook lines taken out.

`find_ink(pixels)` works on the bounded-size uint8 picture `preprocess` makes (grey (h, w) or RGB
(h, w, 3)) and returns an `InkMap`: how dark each pixel is against the paper under its own light
(`darkness`, uint8, 0 = paper) and which pixels are ink (`mask`), with the lines of ruled and
squared paper removed. Everything is whole-array OpenCV/NumPy/SciPy work, at most ~1 megapixel.

How, and why:
- Flat pictures (drawings, scans, MNIST itself: most of the border and much of the picture within a
  few levels of the border's median) are used as they are: darkness = 1 - pixel / paper.
- Anything else is a photo, whose paper is lit unevenly: the paper under its light is estimated
  by a morphological closing (a max then a min filter, wider than any pen stroke) at a reduced
  size. A closing keeps the sharp edge of a shadow where a blur would smear it into a dark band,
  and it takes the desk or a large shadow for what they are, background. Darkness = 1 - pixel /
  background.
- Polarity: ink is whichever extreme lies farther from the paper level (the border's median in a
  flat picture, the picture's median in a photo), so white-on-black drawings are inverted first;
  but a photo is dark ink on paper unless its paper is dark too (chalk): paper mostly in shadow
  is still paper.
- Colour: darkness is the largest of the three channels' darkness, so blue ballpoint and coloured
  markers (weak in luminance, strong in red or green) stand out like black ink.
- Ink: hysteresis thresholds set by the paper's measured noise and the ink's own contrast.
- Lines: long straight segments (probabilistic Hough on the ink mask) that are thin for their
  length and run to the picture's border (or nearly across it) are the paper's printing, and so
  are shorter ones alike in thickness and direction (the family of rules or squares); their
  pixels are removed except where ink crosses them (where the ink's run across the line is longer
  than the line is thick), so a digit crossed by a rule keeps its strokes. A digit's own straight
  strokes (a 1, the bar of a 7) are short and thick for their length, and end inside the picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

FLAT_LEVELS = 3  # a pixel within this many levels (0-255) of the paper is plain background
FLAT_SHARE = 0.5  # a picture with at least this share of plain background pixels is flat (no lighting)
FLAT_FAR, FLAT_FAR_SHARE = 40, 0.2  # ...and at most this share of its border this far from the paper (a shadow)
BG_SIDE = 256  # the paper's lighting is estimated at this long side (it varies slowly, or in sharp shadow edges)
BG_KERNEL = 0.3  # closing width / the picture's shorter side: wider than a marker stroke, narrower than a shadow
DARK_PAPER = 80  # a photo whose paper level (median) is below this may hold light ink (chalk on a board)
MIN_CONTRAST = 10  # ink must be at least this dark (0-255) against the paper, else the picture is blank
HIGH_SIGMA, LOW_SIGMA = 6.0, 3.5  # hysteresis thresholds in paper-noise sigmas...
HIGH_MIN, LOW_MIN = 32, 16  # ...but at least these darknesses (0-255) in photos...
HIGH_REL, LOW_REL = 0.45, 0.25  # ...and these shares of the ink's typical darkness
LINE_HOUGH_LENGTH = 0.12  # Hough segments from this share of the shorter side are joined into lines...
LINE_MIN_LENGTH = 0.3  # ...and a notebook line is at least this share of the picture's extent along it...
LINE_ACROSS = 0.8  # ...and reaches the border, or spans this share of the extent
LINE_BORDER = 0.03  # "reaches the border": an end within this share of the extent from it
LINE_MAX_THICKNESS = 0.05  # a line's thickness / length at most (a written 1 is thicker for its length)...
LINE_MAX_WIDTH = 0.025  # ...and / the picture's shorter side (a pen stroke is thicker than printing)
LINE_COVERED = 0.75  # a line lies on ink for at least this share of its length (strokes in a row do not)
HOUGH_SIDE = 512  # larger masks are searched for lines at half size
BORDER_CONTACT = 0.25  # a component touching the border for this share of its longer side is not writing
FAMILY_THICKNESS = 1.6  # a line at most this times (+1 px) the family's median thickness belongs to it...
FAMILY_ANGLE = 3.0  # ...and within this many degrees of its median direction
LINE_MAX_ANGLE = 30.0  # degrees from horizontal or vertical: notebook lines photographed at an angle
MID_GREY = 128  # a picture with no contrast at all is background: paper when lighter than this, else a dark field
NOISE_SAMPLE_PIXELS, NOISE_SAMPLE_STEP = 90_000, 3  # a photo's noise is measured on every 3rd pixel when it has more
# pixels than this (the noise is the same everywhere on the paper; a ninth of a megapixel sample is plenty)
NOISE_MIN_SHARE = 0.25  # paper noise shows in at least this share of the paper's pixels (fewer: a stroke at the edge)
HALF_NORMAL_MEDIAN = 0.6745  # the median of |N(0, 1)|: noise folded at 0 has its median at this many sigmas
NOISE_SIGMAS = 3.0  # darkness up to this many noise sigmas is the paper's noise
MAX_NOISE_SHARE = 0.25  # "noise" above this share of the ink's contrast is an object filling the frame, not noise
CORE_PERCENTILE = 90  # the ink's typical (core) darkness: this percentile of its pixels (above the anti-aliased rims)
MIN_LINE_SIDE = 32  # pictures with a shorter side than this hold no notebook lines worth finding
CROSSING_RUN, CROSSING_SLACK = 1.5, 2  # ink running across a line for over 1.5 x its thickness + 2 px is a stroke
HOUGH_ANGLE = np.pi / 360  # the Hough transform's angle step: half a degree
HOUGH_MIN_VOTES = 10  # a Hough segment needs at least this many pixels on it (and half its minimum length)
HOUGH_GAP_PARTS, HOUGH_MIN_GAP = 60, 3  # Hough segments are joined across gaps up to 1/60 of the shorter side (3 px)
RIDGE_REACH = 3  # a segment's thickness is the distance transform's maximum this many px around it
COLLINEAR_PARTS, COLLINEAR_MIN_PX = 120, 3.0  # segments are one line when their ends lie within 1/120 of the shorter
# side (at least 3 px) of each other's line...
COLLINEAR_ANGLE = 2.0  # ...and their directions are within this many degrees
REFIT_THICKNESS = 2.0  # px: a line is refitted to the ink that is at most this thick (a printed rule)
REFIT_MARGIN = 10  # px: ...within a band this much wider than that thickness around the line
REFIT_MIN_SHARE = 0.3  # ...when there are at least this many such pixels per px of the line's length
THIN_SLACK = 1  # px: ink counts as thin when the distance transform is at most half the thickness + this
RUN_SLACK = 2  # px: a line's run across starts on the line or on ink this close beside it
ZONE_SLACK = 2  # px: a line's zone to clear is this much wider than its thickness (and the Hough step)
LINE_SAMPLES, COVER_SAMPLES = 64, 128  # points along a line where its thickness and its coverage are measured


@dataclass(frozen=True)
class InkMap:
    """The ink of a picture of size (h, w).

    darkness: uint8 (h, w), how much darker than the paper under its light each pixel is (0 = paper,
        255 = black), noise included. mask: uint8 (h, w), 1 on ink (notebook lines removed), else 0.
    noise: the paper's noise sigma in darkness levels. flat: no lighting was removed (a drawing or scan).
    lines: how many notebook line segments were removed.
    """

    darkness: np.ndarray
    mask: np.ndarray
    noise: float
    flat: bool
    lines: int

    @property
    def blank(self) -> bool:
        """True when no ink was found."""
        return not self.mask.any()


def find_ink(pixels: np.ndarray) -> InkMap:
    """The InkMap of a uint8 picture, grey (h, w) or RGB (h, w, 3), any polarity."""
    grey = _grey(pixels)
    small = _shrunk(pixels, BG_SIDE)  # area averaging: a hot pixel or a speck does not count
    flat, paper = _flat_paper(grey)
    if _light_on_dark(_grey(small), paper, flat):
        pixels, small = cv2.bitwise_not(pixels), cv2.bitwise_not(small)
    darkness = _darkness(pixels, small, flat)
    noise = _noise(darkness, flat)
    mask = _hysteresis(darkness, noise, flat)
    mask, lines = remove_lines(mask)
    return InkMap(darkness, mask, noise, flat, lines)


def _grey(pixels: np.ndarray) -> np.ndarray:
    return pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def _shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """`image` resized (area average) so its long side is at most `side`."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    s = side / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def border_pixels(grey: np.ndarray) -> np.ndarray:
    """The pixels (n,) along the four edges of an image (h, w), each once."""
    return np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])


def _flat_paper(grey: np.ndarray) -> tuple[bool, float]:
    """(whether the background is flat, the paper level): the border's median when it is, else the picture's.

    Flat: most of the border, and a good share of the whole picture, lie within FLAT_LEVELS of the
    border's median (a drawing, a scan, an MNIST image; a filled object may cover most of it), and
    little of the border lies far from it (strokes may touch the edge; a shadow over part of an
    evenly lit page covers much of the border).
    """
    border = border_pixels(grey)
    level = int(np.median(border))
    near = cv2.absdiff(grey, np.full_like(grey, level)) <= FLAT_LEVELS
    deviation = np.abs(border.astype(np.int16) - level)
    near_border = np.count_nonzero(deviation <= FLAT_LEVELS)
    far_border = np.count_nonzero(deviation > FLAT_FAR)
    flat = (near_border >= FLAT_SHARE * border.size and far_border <= FLAT_FAR_SHARE * border.size
            and np.count_nonzero(near) >= FLAT_SHARE / 2 * grey.size)
    return bool(flat), float(level) if flat else float(_median_level(grey))


def _light_on_dark(small: np.ndarray, paper: float, flat: bool) -> bool:
    """True when the ink is lighter than the paper (a white-on-black drawing, chalk on a board).

    The extreme farther from the paper level is ink; but a photo is taken as dark ink on paper
    unless its paper level is itself dark (below DARK_PAPER): paper lying mostly in a shadow is
    still paper, and the light gaps between dark strokes are not light strokes.
    """
    below, above = paper - float(small.min()), float(small.max()) - paper
    light = below < above or (below == above and paper < MID_GREY)  # no contrast at all: dark means background
    return light and (flat or paper < DARK_PAPER)


def _median_level(channel: np.ndarray) -> int:
    return int(percentile_u8(channel, 50))


def percentile_u8(image: np.ndarray, q: float, mask: np.ndarray | None = None) -> float:
    """The q-th percentile (0-100) of uint8 `image`'s values (where `mask` uint8 is non-zero), by histogram."""
    hist = cv2.calcHist([image], [0], mask, [256], [0, 256]).ravel()
    total = float(hist.sum())
    if total == 0:
        return 0.0
    return float(np.searchsorted(np.cumsum(hist), q / 100 * total))


def _darkness(pixels: np.ndarray, small: np.ndarray, flat: bool) -> np.ndarray:
    """darkness uint8 (h, w): the largest channel's 255 * (1 - pixel / paper), 0 where lighter than the paper.

    Flat pictures: the paper is each channel's border median. Photos: the paper as lit (`_lighting`).
    """
    channels = pixels.reshape(*pixels.shape[:2], -1)
    if flat:
        levels = [max(1, int(np.median(border_pixels(np.ascontiguousarray(channels[..., c])))))
                  for c in range(channels.shape[2])]
        background = np.empty_like(channels)
        background[...] = np.asarray(levels, np.uint8)
    else:
        background = _lighting(small, pixels.shape[:2]).reshape(channels.shape)
    ratio = cv2.divide(channels, np.maximum(background, 1), scale=255.0)  # uint8, saturates at 255 (paper)
    ratio = ratio.reshape(channels.shape)
    planes = cv2.split(ratio)
    lightest = planes[0] if len(planes) == 1 else cv2.min(cv2.min(planes[0], planes[1]), planes[2])
    return cv2.bitwise_not(lightest)


def _lighting(small: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The paper as lit, uint8 of `shape` (h, w): a closing of `small` (the picture at BG_SIDE) removes
    the ink, then a 1-px min filter, resized to `shape`.

    The final min filter biases the estimate dark by a pixel of the reduced size, so where the
    lighting steps (a shadow's edge) the resized estimate errs on the dark side: paper, not ink.
    """
    h, w = shape
    k = max(3, int(BG_KERNEL * min(small.shape[:2])) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (k, k))
    paper = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    paper = cv2.erode(paper, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    if paper.shape[:2] == (h, w):
        return paper
    return cv2.resize(paper, (w, h), interpolation=cv2.INTER_LINEAR)


def _noise(darkness: np.ndarray, flat: bool) -> float:
    """The paper's noise sigma in darkness levels: from the border (flat pictures) or the lighter half (photos).

    Paper noise is folded at 0 (pixels lighter than the paper estimate count as 0), so sigma is the
    half-normal median of the positive ones / HALF_NORMAL_MEDIAN. When few of those pixels are above 0
    (under NOISE_MIN_SHARE: an exactly flat drawing, or a stroke touching the border), it is 0; so it
    is when NOISE_SIGMAS of it would exceed MAX_NOISE_SHARE of the ink's contrast (an object filling
    the frame, not noise).
    """
    if flat:
        paper = border_pixels(darkness)
    else:
        step = NOISE_SAMPLE_STEP if darkness.size > NOISE_SAMPLE_PIXELS else 1
        sample = darkness[::step, ::step]
        paper = sample[sample <= np.median(sample)]
    positive = paper[paper > 0]
    if positive.size < NOISE_MIN_SHARE * max(paper.size, 1):
        return 0.0
    sigma = float(np.median(positive)) / HALF_NORMAL_MEDIAN
    return 0.0 if NOISE_SIGMAS * sigma > MAX_NOISE_SHARE * float(darkness.max()) else sigma


def _hysteresis(darkness: np.ndarray, noise: float, flat: bool) -> np.ndarray:
    """uint8 (h, w) 0/1: pixels above the low threshold connected to one above the high threshold."""
    high_min = MIN_CONTRAST if flat else HIGH_MIN
    low_min = 0 if flat else LOW_MIN
    high0 = max(HIGH_SIGMA * noise, high_min)
    strong = darkness > high0
    if not strong.any():
        return np.zeros(darkness.shape, np.uint8)
    typical = percentile_u8(darkness, CORE_PERCENTILE, strong.view(np.uint8))
    high = max(high0, HIGH_REL * typical)
    low = max(LOW_SIGMA * noise, low_min, LOW_REL * typical)
    weak = (darkness > low).astype(np.uint8)
    n, labels = cv2.connectedComponents(weak, connectivity=8)
    keep = np.zeros(n, bool)
    keep[labels[darkness > high]] = True
    keep[0] = False
    return keep[labels].astype(np.uint8)


def remove_lines(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(`mask` without the notebook lines (uint8 0/1), how many line segments were found).

    Pixels of a line are removed unless ink runs across the line for longer than it is thick
    (a stroke crossing it): those are kept, so the digit is not cut where a rule crossed it.
    """
    h, w = mask.shape
    if min(h, w) < MIN_LINE_SIDE:
        return mask, 0
    segments, lines = _line_segments(mask)
    if not segments:
        return mask, 0
    out = mask.copy()
    for horizontal in (True, False):  # vertical lines after horizontal ones: their crossings go too
        group = [s for s in segments if s[4] == horizontal]
        if not group:
            continue
        thick = max(s[5] for s in group)
        zone = np.zeros_like(mask)
        for x0, y0, x1, y1, _, _, width in group:
            cv2.line(zone, (x0, y0), (x1, y1), 1, thickness=int(np.ceil(width)))
        across = int(np.ceil(thick * CROSSING_RUN)) + CROSSING_SLACK  # a longer run across is a crossing stroke
        kernel = np.ones((across, 1) if horizontal else (1, across), np.uint8)
        crossing = cv2.morphologyEx(out, cv2.MORPH_OPEN, kernel)
        out[(zone > 0) & (crossing == 0)] = 0
    return out, lines


Segment = tuple[int, int, int, int, bool, float, float]  # x0, y0, x1, y1, horizontal, thickness px, width px


class _Candidate(NamedTuple):
    """A joined Hough line that may be one of the paper's lines."""

    line: tuple[float, float, float, float]  # x0, y0, x1, y1, refitted to the thin ink
    members: list[int]  # the Hough segments joined into it
    horizontal: bool
    thickness: float  # px, the ink's run across it
    strong: bool  # reaches the border, or spans LINE_ACROSS of the picture
    direction: float  # degrees from horizontal (or from vertical), signed: -30..30


def _line_segments(mask: np.ndarray) -> tuple[list[Segment], int]:
    """(the zone to clear of the notebook lines in `mask`, as segments (x0, y0, x1, y1, horizontal,
    thickness px, width px), how many lines).

    Hough segments on one straight line (a rule broken by faint stretches, a page edge's dotted
    rim) are joined first, so a line's length and reach are those of the whole line.
    """
    h, w = mask.shape
    step = 2 if max(h, w) > HOUGH_SIDE else 1  # Hough at half size: 4x fewer votes, lines stay (area > 0)
    segments = _hough_segments(mask, step)
    if segments is None:
        return [], 0
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_3)
    # each segment's thickness from the distance transform's local maximum (RIDGE_REACH px around), so a
    # segment along the edge of a thick stroke counts as thick, not as a thin rule
    ridge = cv2.dilate(dist, np.ones((2 * RIDGE_REACH + 1,) * 2, np.uint8))
    tolerance = max(COLLINEAR_MIN_PX, min(h, w) / COLLINEAR_PARTS)
    candidates = [c for line, members in _collinear(segments, tolerance, _thicknesses(segments, ridge))
                  if (c := _candidate(line, members, mask, dist, ridge)) is not None]
    return _paper_lines(candidates, segments, step, (w, h))


def _hough_segments(mask: np.ndarray, step: int) -> np.ndarray | None:
    """float64 (k, 4): the probabilistic Hough segments (x0, y0, x1, y1) of `mask` searched at 1/`step`
    size, in `mask`'s pixels; None when there are none."""
    h, w = mask.shape
    coarse = mask
    if step == 2:
        coarse = (cv2.resize(mask * np.uint8(255), (w // 2, h // 2), interpolation=cv2.INTER_AREA) > 0).astype(np.uint8)
    min_len = int(LINE_HOUGH_LENGTH * min(h, w) / step)
    found = cv2.HoughLinesP(coarse, 1, HOUGH_ANGLE, threshold=max(HOUGH_MIN_VOTES, min_len // 2),
                            minLineLength=min_len,
                            maxLineGap=max(HOUGH_MIN_GAP, min(h, w) // (HOUGH_GAP_PARTS * step)))
    if found is None:
        return None
    return found.reshape(-1, 4).astype(np.float64) * step


def _candidate(line: tuple[float, float, float, float], members: list[int], mask: np.ndarray, dist: np.ndarray,
               ridge: np.ndarray) -> _Candidate | None:
    """The joined line as a `_Candidate` when it is long, thin and straight enough for printing; else None."""
    h, w = mask.shape
    x0, y0, x1, y1 = line
    angle = float(np.degrees(np.arctan2(y1 - y0, x1 - x0))) % 180  # 0..180, 0 = horizontal
    tilt = min(angle, 180 - angle)  # 0 = horizontal, 90 = vertical
    horizontal = tilt <= LINE_MAX_ANGLE
    if not horizontal and tilt < 90 - LINE_MAX_ANGLE:
        return None
    extent = w if horizontal else h
    if float(np.hypot(x1 - x0, y1 - y0)) < LINE_MIN_LENGTH * extent:
        return None
    x0, y0, x1, y1 = _refit((x0, y0, x1, y1), mask, dist, REFIT_THICKNESS, w, h)
    length = float(np.hypot(x1 - x0, y1 - y0))
    lo, hi = (min(x0, x1), max(x0, x1)) if horizontal else (min(y0, y1), max(y0, y1))
    reaches = lo <= LINE_BORDER * extent or hi >= (1 - LINE_BORDER) * extent - 1
    thickness = _run_across((x0, y0, x1, y1), mask, int(LINE_MAX_WIDTH * min(h, w)) + RUN_SLACK)
    too_thick = thickness > min(LINE_MAX_THICKNESS * length, LINE_MAX_WIDTH * min(h, w))
    if length < LINE_MIN_LENGTH * extent or too_thick or _covered(x0, y0, x1, y1, ridge) < LINE_COVERED:
        return None
    strong = reaches or length >= LINE_ACROSS * extent
    direction = (angle if angle < 90 else angle - 180) if horizontal else angle - 90
    return _Candidate((x0, y0, x1, y1), members, horizontal, thickness, strong, direction)


def _paper_lines(candidates: list[_Candidate], segments: np.ndarray, step: int,
                 size: tuple[int, int]) -> tuple[list[Segment], int]:
    """(the zone to clear, how many lines): the strong candidates and those like them, per direction.

    The paper's lines are one family, alike in thickness and (nearly) parallel: a candidate that
    does not reach the border joins it when it is like them (a rule found only in parts).
    """
    w, h = size
    out: list[Segment] = []
    lines = 0
    for horizontal in (True, False):
        group = [c for c in candidates if c.horizontal == horizontal]
        strong = [c for c in group if c.strong]
        if not strong:
            continue
        family_thickness = float(np.median([c.thickness for c in strong]))
        family_angle = float(np.median([c.direction for c in strong]))
        for c in group:
            alike = (c.thickness <= FAMILY_THICKNESS * family_thickness + 1
                     and abs(c.direction - family_angle) <= FAMILY_ANGLE)
            if not (c.strong or alike):
                continue
            # the zone to clear: the line continued across the picture (a rule runs on past where
            # Hough found it, behind a digit's stroke), and each of its segments where exactly they
            # lay, widened by the half-size rounding
            for a0, b0, a1, b1 in [_across(c.line, w, h), *segments[c.members].tolist()]:
                out.append((int(round(a0)), int(round(b0)), int(round(a1)), int(round(b1)), horizontal, c.thickness,
                            c.thickness + step + ZONE_SLACK))
            lines += 1
    return out, lines


def _run_across(line: tuple[float, float, float, float], mask: np.ndarray, reach: int) -> float:
    """Median length (px) of the ink runs across `line` (through it or within RUN_SLACK px of it), at
    LINE_SAMPLES points along it, up to `reach` px each side.

    Measured across, not by the distance transform at the line: a line along the edge of a thick
    stroke is as thick as the stroke.
    """
    h, w = mask.shape
    x0, y0, x1, y1 = line
    d = np.array([x1 - x0, y1 - y0], np.float64)
    d /= max(float(np.hypot(*d)), 1e-9)
    t = np.linspace(0, 1, LINE_SAMPLES)[:, None]
    off = np.arange(-reach, reach + 1)[None]
    xs = np.clip(np.rint(x0 + t * (x1 - x0) - off * d[1]).astype(int), 0, w - 1)
    ys = np.clip(np.rint(y0 + t * (y1 - y0) + off * d[0]).astype(int), 0, h - 1)
    on = mask[ys, xs] > 0  # (LINE_SAMPLES, 2 reach + 1)
    runs = np.zeros(len(on))
    for c in range(reach - RUN_SLACK, reach + RUN_SLACK + 1):  # the run through the line, or through ink beside it
        right = np.cumprod(on[:, c:], axis=1).sum(axis=1)  # from there outwards, each side
        left = np.cumprod(on[:, c::-1], axis=1).sum(axis=1)
        runs = np.maximum(runs, right + left - 1)
    return float(np.median(runs))


def _covered(x0: float, y0: float, x1: float, y1: float, ridge: np.ndarray) -> float:
    """Share of the segment's length that lies on ink (a rule is continuous; strokes in a row are not)."""
    h, w = ridge.shape
    t = np.linspace(0, 1, COVER_SAMPLES)
    xs = np.clip(np.rint(x0 + t * (x1 - x0)).astype(int), 0, w - 1)
    ys = np.clip(np.rint(y0 + t * (y1 - y0)).astype(int), 0, h - 1)
    return float(np.mean(ridge[ys, xs] > 0))


def _thicknesses(segments: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Thickness (px) of the ink along each of `segments` (k, 4): the distance transform's median on it."""
    h, w = dist.shape
    t = np.linspace(0, 1, LINE_SAMPLES)[None]
    xs = np.clip(np.rint(segments[:, :1] + t * (segments[:, 2:3] - segments[:, :1])).astype(int), 0, w - 1)
    ys = np.clip(np.rint(segments[:, 1:2] + t * (segments[:, 3:4] - segments[:, 1:2])).astype(int), 0, h - 1)
    return np.maximum(1.0, 2.0 * np.median(dist[ys, xs], axis=1) - 1.0)


def _refit(line: tuple[float, float, float, float], mask: np.ndarray, dist: np.ndarray, thickness: float,
           w: int, h: int) -> tuple[float, float, float, float]:
    """`line` fitted again to the thin ink pixels (distance transform <= the rule's half-thickness + THIN_SLACK)
    within a few pixels of it across the picture: where the rule is, not where a stroke along it pulled it."""
    x0, y0, x1, y1 = _across(line, w, h)
    width = int(np.ceil(thickness)) + REFIT_MARGIN
    m = width // 2 + 1  # work in the line's own bounding box only
    X0, Y0 = max(0, int(min(x0, x1)) - m), max(0, int(min(y0, y1)) - m)
    X1, Y1 = min(w, int(max(x0, x1)) + m + 1), min(h, int(max(y0, y1)) + m + 1)
    zone = np.zeros((Y1 - Y0, X1 - X0), np.uint8)
    cv2.line(zone, (int(round(x0)) - X0, int(round(y0)) - Y0), (int(round(x1)) - X0, int(round(y1)) - Y0), 1,
             thickness=width)
    thin = (dist[Y0:Y1, X0:X1] <= thickness / 2 + THIN_SLACK) & (mask[Y0:Y1, X0:X1] > 0)
    ys, xs = np.nonzero(zone.astype(bool) & thin)
    if len(xs) < REFIT_MIN_SHARE * max(abs(x1 - x0), abs(y1 - y0)):
        return line
    pts = np.stack([xs + X0, ys + Y0], 1).astype(np.float64)
    centre, direction = _fit_line(pts, np.ones(len(pts)))
    t = (pts - centre) @ direction
    a, b = centre + t.min() * direction, centre + t.max() * direction
    return float(a[0]), float(a[1]), float(b[0]), float(b[1])


def _across(line: tuple[float, float, float, float], w: int, h: int) -> tuple[float, float, float, float]:
    """The straight line through `line`'s ends, from one side of the (w, h) picture to the other."""
    x0, y0, x1, y1 = line
    if abs(x1 - x0) >= abs(y1 - y0):
        slope = (y1 - y0) / (x1 - x0)
        return 0.0, y0 - slope * x0, float(w - 1), y0 + slope * (w - 1 - x0)
    slope = (x1 - x0) / (y1 - y0)
    return x0 - slope * y0, 0.0, x0 + slope * (h - 1 - y0), float(h - 1)


def linked_groups(linked: np.ndarray) -> list[list[int]]:
    """The connected groups of the graph with adjacency bool (k, k) `linked` (symmetric): indices joined
    transitively, each group ascending, groups in the order of their first index."""
    if len(linked) == 0:
        return []
    _, group = connected_components(csr_matrix(linked), directed=False)
    groups = np.split(np.argsort(group, kind="stable"), np.cumsum(np.bincount(group))[:-1])  # each ascending
    return [groups[g].tolist() for g in np.argsort([members[0] for members in groups])]


def _fit_line(pts: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, unit direction) of the weighted total-least-squares line through points (n, 2)."""
    centre = (pts * weight[:, None]).sum(0) / weight.sum()
    cov = ((pts - centre) * weight[:, None]).T @ (pts - centre)
    return centre, np.linalg.eigh(cov)[1][:, -1]


def _collinear(segments: np.ndarray, tolerance: float,
               thickness: np.ndarray) -> list[tuple[tuple[float, float, float, float], list[int]]]:
    """Segments (k, 4) of `thickness` (k,) px joined when they lie on one line (angle within COLLINEAR_ANGLE
    degrees, ends within `tolerance` px of it), transitively.

    Returns ((x0, y0, x1, y1), members): each joined line (fitted to its members' ends) and the
    indices of the segments joined into it.
    """
    k = len(segments)
    d = segments[:, 2:] - segments[:, :2]
    length = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-9)
    u = d / length[:, None]  # unit directions
    normal = np.stack([-u[:, 1], u[:, 0]], 1)
    ends = segments.reshape(k, 2, 2)
    # off[i, j]: how far j's ends lie from i's line; a pair joins when parallel and one lies on the other's line
    off = np.abs(np.einsum("jed,id->ije", ends, normal) - np.einsum("id,id->i", segments[:, :2], normal)[:, None, None])
    off = off.max(axis=2)
    join = (np.abs(u @ u.T) >= np.cos(np.radians(COLLINEAR_ANGLE))) & (np.minimum(off, off.T) <= tolerance)
    out = []
    for members in linked_groups(join):
        # the line through the members' ends, by total least squares weighted by length / thickness^2
        # (a long thin rule, not the digit's stroke that happened to lie along it, sets its direction)
        pts = segments[members].reshape(-1, 2)
        weight = np.repeat(length[members] / thickness[members] ** 2, 2)
        centre, direction = _fit_line(pts, weight)
        off = np.abs((pts - centre) @ np.array([-direction[1], direction[0]]))
        if (off > tolerance / 2).any() and (off <= tolerance / 2).sum() >= 2:  # refit without the outliers
            keep = np.repeat((off.reshape(-1, 2) <= tolerance / 2).all(axis=1), 2)
            if keep.any():
                centre, direction = _fit_line(pts[keep], weight[keep])
        t = (pts - centre) @ direction
        a, b = centre + t.min() * direction, centre + t.max() * direction
        out.append(((float(a[0]), float(a[1]), float(b[0]), float(b[1])), members))
    return out


def on_border(labels: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """bool (n,): components (OpenCV labels and stats) lying along the picture's border: the desk, a page edge.

    A component counts when its pixels on one side of the border run for at least BORDER_CONTACT of
    its longer side: a strip of desk or shadow does; a digit whose stroke ends touch the edges
    (even a thick 1 cropped tightly at top and bottom) does not.
    """
    n = len(stats)
    longer = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    out = np.zeros(n, bool)
    for side in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        out |= np.bincount(side, minlength=n) >= BORDER_CONTACT * longer
    out[0] = False
    return out
