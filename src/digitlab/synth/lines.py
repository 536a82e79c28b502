"""Synthetic text lines of handwritten digits for a CTC line reader: ink maps, labels and x-extents.

    from digitlab.synth.lines import LineSynth, condition_set
    synth = LineSynth(ds.x_train, ds.y_train, nondigit_split="train")
    batch = synth.make(64, np.random.default_rng(0), "train")   # lines made on the fly
    batch.images[0]   # uint8 (32, W): ink bright on black (as MNIST), W varies per line
    batch.labels[0]   # int64 (L,): classes 1..10 = digits 0-9, 11 = not a digit (0 is CTC's blank)
    batch.spans[0]    # int32 (L, 2): [x0, x1) ink columns of each character
    batch.texts[0]    # "30?7": digits, "?" for a non-digit mark; "" for a line of noise
    held_out = condition_set("touching", 500, seed=1, digits=ds.x_test, labels=ds.y_test)

A line is 1-12 characters composed left to right with gaps from wide apart to touching to
overlapping (negative gaps up to 35% of the narrower neighbour's ink width), each character with
its own size and a wandering baseline, the line with one slant (shear), and then pen width
changes, broken strokes, blur and contrast. Non-digit marks (letters, symbols, doodles,
scribbles; `digitlab.synth.line_marks`) are characters of class NOT_A_DIGIT. Specks and fragments
of ruled lines are noise: drawn, never labelled. Conditions are named LineStyles (CONDITIONS):
spaced, touching, overlapping, broken, mixed_nondigit, noise_only (text ""), noisy (digits
with specks and rules), and "train", which mixes them all. Extents are those of each character's
own ink before the line's pen and blur effects (which move an edge by about a pixel).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import cv2
import numpy as np

from digitlab.errors import DigitlabError, did_you_mean
from digitlab.layout import ALPHABET, BASELINE, DIGIT_PX, INK_LEVEL, LINE_HEIGHT
from digitlab.synth.line_marks import NOT_A_DIGIT, Glyphs, digit_glyphs, nondigit_glyphs

MARGIN = (2, 12)  # blank columns left and right of the ink: a cropped line is rarely cut tight
EMPTY_WIDTH = (24, 200)  # width (px) of a line without characters
RULE_MIN = 1.5 * DIGIT_PX  # shortest ruled-line fragment: longer than a written dash, so it reads as nothing
BREAK_LEVEL = 128  # a broken stroke's gap is centred on a pixel of at least this ink


@dataclass(frozen=True)
class LineStyle:
    """How the lines of one condition vary. Sizes in px unless said; (lo, hi) ranges are uniform."""

    length: tuple[int, int] = (1, 12)  # characters per line, both ends included
    gap: tuple[float, float] = (0.3, 1.0)  # ink gap between neighbours, in the narrower's ink widths; < 0 overlaps
    gap_spread: float | None = None  # None: each gap uniform in `gap`; else a line's own centre (uniform in
    # `gap`) +- this sd, clipped to `gap`: a writer who crowds digits crowds them all
    size_jitter: float = 0.12  # each character's height is (1 +- this) x its nominal height
    scale: tuple[float, float] = (1.0, 1.0)  # the line's digit height, in DIGIT_PX: lines normalised imperfectly
    shift: tuple[float, float] = (0.0, 0.0)  # the line's baseline moved by this many px (down positive)
    wander: float = 1.0  # sd of each character's bottom around the baseline's drift
    drift: float = 2.0  # largest shift of the baseline's slow drift across the line
    slant: tuple[float, float] = (-0.15, 0.3)  # the line's shear dx/dy; writers lean right more than left
    slant_jitter: float = 0.04  # sd of each character's shear around the line's
    thicken: float = 0.15  # probability of a broader pen (a 2x2 dilation of the line)
    thin: float = 0.1  # probability of a finer pen (a 2x2 erosion after a 3x3 blur, so strokes survive)
    breaks: tuple[int, int] = (0, 0)  # erased gaps per character (broken strokes)
    break_radius: tuple[float, float] = (1.0, 1.8)  # radius of an erased gap
    blur: tuple[float, float] = (0.0, 0.7)  # Gaussian sigma of the line (0: none)
    contrast: tuple[float, float] = (0.7, 1.0)  # the brightest ink, as a share of 255
    nondigit_p: float = 0.0  # probability that a line holds non-digit marks
    nondigits: tuple[int, int] = (1, 2)  # how many, when it does
    noise_p: float = 0.0  # probability that a line gets specks and ruled-line fragments
    specks: tuple[int, int] = (0, 0)
    rules: tuple[int, int] = (0, 0)
    empty: float = 0.0  # probability of a line without characters (noise only, or nothing)


CONDITIONS: dict[str, LineStyle] = {
    "spaced": LineStyle(),
    "touching": LineStyle(gap=(-0.12, 0.02)),
    "overlapping": LineStyle(gap=(-0.35, -0.12)),
    "broken": LineStyle(gap=(0.05, 0.6), breaks=(1, 2)),
    "mixed_nondigit": LineStyle(length=(2, 12), gap=(-0.1, 0.6), nondigit_p=1.0, nondigits=(1, 3)),
    "noise_only": LineStyle(empty=1.0, noise_p=0.75, specks=(1, 6), rules=(0, 3)),
    "noisy": LineStyle(gap=(-0.1, 0.8), noise_p=1.0, specks=(1, 5), rules=(1, 2)),
    "train": LineStyle(gap=(-0.38, 1.0), gap_spread=0.2, scale=(0.8, 1.12), shift=(-2.5, 1.0),
                       slant=(-0.25, 0.4), thicken=0.25, thin=0.15,
                       breaks=(0, 1), blur=(0.0, 1.0), contrast=(0.5, 1.0), nondigit_p=0.4, nondigits=(1, 3),
                       noise_p=0.3, specks=(0, 5), rules=(0, 2), empty=0.04),
}


@dataclass
class LineBatch:
    """Lines and their truth: images[i] uint8 (LINE_HEIGHT, W_i), labels[i] int64 (L_i,), spans[i] int32 (L_i, 2)."""

    images: list[np.ndarray]
    labels: list[np.ndarray]  # classes 1..NUM_CLASSES-1, left to right
    spans: list[np.ndarray]  # [x0, x1) ink columns of each character, in the line's pixels
    kinds: list[tuple[str, ...]]  # what each character is ("digit", "printed:A", "doodle:heart", ...)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def texts(self) -> list[str]:
        """Each line's text: digits, "?" for a non-digit mark, "" for none."""
        return [labels_to_text(lab) for lab in self.labels]

    def widths(self) -> np.ndarray:
        """int64 (N,): each line's width in pixels."""
        return np.array([im.shape[1] for im in self.images], np.int64)


def labels_to_text(labels: np.ndarray) -> str:
    """Classes int (L,) in 1..NUM_CLASSES-1 -> their text ("?" for NOT_A_DIGIT)."""
    return "".join(ALPHABET[int(c) - 1] for c in labels)


def get_style(condition: str | LineStyle) -> LineStyle:
    """The LineStyle of `condition` (a name in CONDITIONS, or a LineStyle itself)."""
    if isinstance(condition, LineStyle):
        return condition
    if condition not in CONDITIONS:
        raise DigitlabError(f"line condition {condition!r} is unknown{did_you_mean(condition, CONDITIONS)}; "
                            f"use one of {', '.join(CONDITIONS)}")
    return CONDITIONS[condition]


def _ink_spans(strips: list[np.ndarray]) -> np.ndarray:
    """int64 (L, 2): [first, last + 1) ink columns of each strip (its whole width when it has none)."""
    widths = np.array([s.shape[1] for s in strips])
    bounds = np.concatenate([[0], np.cumsum(widths)])
    cols = np.flatnonzero(np.maximum.reduce(np.hstack(strips), axis=0) > INK_LEVEL)  # over all strips at once
    first = np.searchsorted(cols, bounds[:-1])
    last = np.searchsorted(cols, bounds[1:]) - 1
    has_ink = first <= last
    a = np.where(has_ink, cols[np.minimum(first, len(cols) - 1)] - bounds[:-1], 0) if len(cols) else 0 * widths
    b = np.where(has_ink, cols[np.maximum(last, 0)] + 1 - bounds[:-1], widths) if len(cols) else widths
    return np.stack([a, b], 1).astype(np.int64)


def _warp(src: np.ndarray, height_px: float, bottom: float, shear: float) -> np.ndarray:
    """`src` uint8 (h, w) scaled to `height_px` tall, sheared about its bottom (top moves right by
    shear x height), its bottom at y = `bottom`: a uint8 (LINE_HEIGHT, w') strip with 1 px margins."""
    h_s, w_s = src.shape
    f = height_px / h_s
    lean = shear * height_px  # how far the top moves right of the bottom
    left = 1.0 + max(0.0, -lean)
    width = int(np.ceil(f * w_s + abs(lean))) + 3
    matrix = np.array([[f, -shear * f, left + lean], [0.0, f, bottom - height_px]], np.float64)
    return cv2.warpAffine(src, matrix, (width, LINE_HEIGHT), flags=cv2.INTER_LINEAR, borderValue=0)


def _choose(sources: tuple[Glyphs, Glyphs | None], lengths: np.ndarray, style: LineStyle,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which bank entry each character of the batch is: (bool (K,) a non-digit mark, int64 (K,) its index).

    `lengths` int (n,) characters per line, K = their sum; a line holds marks with probability
    style.nondigit_p, then style.nondigits of them (at most its length) at random positions.
    """
    digits, marks = sources
    k_total = int(lengths.sum())
    index = rng.integers(len(digits), size=k_total)
    is_mark = np.zeros(k_total, bool)
    if marks is None or style.nondigit_p <= 0 or k_total == 0:
        return is_mark, index
    wanted = rng.integers(style.nondigits[0], style.nondigits[1] + 1, len(lengths))
    wanted = np.where(rng.random(len(lengths)) < style.nondigit_p, np.minimum(wanted, lengths), 0)
    line = np.repeat(np.arange(len(lengths)), lengths)
    order = np.lexsort((rng.random(k_total), line))  # characters shuffled within each line
    rank = np.empty(k_total, np.int64)
    rank[order] = np.arange(k_total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    is_mark = rank < wanted[line]
    index[is_mark] = rng.integers(len(marks), size=int(is_mark.sum()))
    return is_mark, index


def _strips(sources: tuple[Glyphs, Glyphs | None], lengths: np.ndarray, is_mark: np.ndarray, index: np.ndarray,
            style: LineStyle, rng: np.random.Generator) -> list[np.ndarray]:
    """Each character of the batch warped into its own uint8 (LINE_HEIGHT, w_k) strip.

    Per character: its height (the bank's relative height, jittered), its bottom (its line's
    slow baseline drift plus a wobble, and the bank's drop) and its shear (its line's slant, jittered).
    """
    digits, marks = sources
    k_total, n = len(index), len(lengths)
    line = np.repeat(np.arange(n), lengths)
    pos = np.arange(k_total) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # place in its line
    rel, drop = np.ones(k_total), np.zeros(k_total)
    if marks is not None and is_mark.any():
        rel[is_mark], drop[is_mark] = marks.heights[index[is_mark]], marks.drops[index[is_mark]]
    phase, period = rng.uniform(0, 2 * np.pi, n), rng.uniform(4, 16, n)  # drifts over ~4-16 characters
    amplitude = style.drift * rng.uniform(-1, 1, n)
    drift = amplitude[line] * np.sin(phase[line] + 2 * np.pi * pos / period[line])
    digit_px = DIGIT_PX * rng.uniform(*style.scale, n)[line]  # each character's line's digit height
    heights = digit_px * rel * (1 + rng.uniform(-style.size_jitter, style.size_jitter, k_total))
    bottoms = (BASELINE + rng.uniform(*style.shift, n)[line] + drop * digit_px + drift
               + rng.normal(0, style.wander, k_total))
    shears = rng.uniform(*style.slant, n)[line] + rng.normal(0, style.slant_jitter, k_total)
    images = [(marks if m else digits).images[i]  # type: ignore[union-attr]
              for m, i in zip(is_mark.tolist(), index.tolist(), strict=True)]
    return [_warp(*args) for args in zip(images, heights.tolist(), bottoms.tolist(), shears.tolist(), strict=True)]


def _gap_shares(lengths: np.ndarray, style: LineStyle, rng: np.random.Generator) -> np.ndarray:
    """float (K,): each character's gap to its left neighbour, in the narrower's ink widths (style.gap)."""
    k_total = int(lengths.sum())
    if style.gap_spread is None:
        return rng.uniform(*style.gap, k_total)
    centres = np.repeat(rng.uniform(*style.gap, len(lengths)), lengths)
    return np.clip(centres + rng.normal(0, style.gap_spread, k_total), *style.gap)


def _layout(strips: list[np.ndarray], lengths: np.ndarray, style: LineStyle,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each strip goes: (int64 (K,) its column 0 in its line, int32 (K, 2) ink spans, int64 (n,) line widths).

    In a line, each character's ink starts a gap after the previous one's ends; the gap is a
    share (style.gap) of the narrower of the two inks' widths, negative to overlap. Lines
    without characters get a random width (EMPTY_WIDTH).
    """
    n, k_total = len(lengths), len(strips)
    widths_out = rng.integers(*EMPTY_WIDTH, n)
    if k_total == 0:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.int32), widths_out
    line = np.repeat(np.arange(n), lengths)
    first = np.cumsum(lengths) - lengths  # index of each line's first character
    ink = _ink_spans(strips)  # (K, 2)
    inked = ink[:, 1] - ink[:, 0]
    narrower = np.minimum(inked, np.concatenate([inked[:1], inked[:-1]]))  # of each and its left neighbour
    gaps = np.rint(_gap_shares(lengths, style, rng) * narrower)
    has = lengths > 0
    gaps[first[has]] = rng.integers(MARGIN[0], MARGIN[1] + 1, int(has.sum()))  # a line's first gap: its margin
    rights = np.cumsum(gaps + inked)
    head = first[has]
    before = np.zeros(n, np.int64)  # the running sum before each line's first character
    before[has] = rights[head] - gaps[head] - inked[head]
    rights -= np.repeat(before, lengths)
    starts = rights - ink[:, 1]
    shift = np.zeros(n, np.int64)
    np.minimum.at(shift, line, starts)  # a slanted first strip may start left of 0: move the line right
    starts, rights = starts - shift[line], rights - shift[line]
    ends = np.maximum(starts + np.array([s.shape[1] for s in strips]), rights + rng.integers(*MARGIN, k_total))
    widths_out[has] = 0  # lines with characters: as wide as their ink and margins
    np.maximum.at(widths_out, line, ends)
    return starts.astype(np.int64), np.stack([rights - inked, rights], 1).astype(np.int32), widths_out


def _paint(strips: list[np.ndarray], starts: np.ndarray, lengths: np.ndarray, widths: np.ndarray) -> list[np.ndarray]:
    """The lines: uint8 (LINE_HEIGHT, widths[i]) each, its strips pasted at `starts` (overlaps keep the brighter)."""
    lines = [np.zeros((LINE_HEIGHT, int(w)), np.uint8) for w in widths.tolist()]
    owners = np.repeat(np.arange(len(lengths)), lengths).tolist()
    for s, x, i in zip(strips, starts.tolist(), owners, strict=True):
        view = lines[i][:, x:x + s.shape[1]]
        np.maximum(view, s, out=view)
    return lines


def _break(line: np.ndarray, count: int, style: LineStyle, rng: np.random.Generator) -> None:
    """Erase `count` small discs centred on ink of `line` (in place): strokes broken as by a dry pen."""
    ink = np.flatnonzero(line >= BREAK_LEVEL)
    if ink.size == 0 or count < 1:
        return
    w = line.shape[1]
    radii = np.rint(rng.uniform(*style.break_radius, count) * 16).astype(int)
    for p, r in zip(rng.choice(ink, size=count).tolist(), radii.tolist(), strict=True):
        cv2.circle(line, ((p % w) * 16 + 8, (p // w) * 16 + 8), r, 0, -1, cv2.LINE_AA, shift=4)


def _noise(line: np.ndarray, style: LineStyle, rng: np.random.Generator) -> None:
    """Specks and fragments of ruled lines drawn into `line` in place: ink that is no character."""
    h, w = line.shape
    for _ in range(int(rng.integers(style.specks[0], style.specks[1] + 1))):
        centre = (int(rng.uniform(0, w) * 16), int(rng.uniform(0, h) * 16))
        cv2.circle(line, centre, int(rng.uniform(0.5, 1.6) * 16), int(rng.integers(90, 256)), -1, cv2.LINE_AA,
                   shift=4)
    for _ in range(int(rng.integers(style.rules[0], style.rules[1] + 1))):
        length = rng.uniform(RULE_MIN, max(RULE_MIN, 1.2 * w))  # a rule runs on: longer than a dash or a 1
        x0 = rng.uniform(-0.3 * length, max(0.0, w - 0.7 * length))
        y0 = rng.uniform(1, h - 1)
        y1 = y0 + rng.normal(0, 1.0)
        ends = np.array([[x0, y0], [x0 + length, y1]]) * 16
        cv2.line(line, tuple(ends[0].astype(int)), tuple(ends[1].astype(int)), int(rng.integers(90, 256)),
                 int(rng.choice([1, 1, 2])), cv2.LINE_AA, shift=4)


def _pen(line: np.ndarray, style: LineStyle, rng: np.random.Generator) -> np.ndarray:
    """The line's pen and optics: broader or finer strokes, blur, contrast. Returns a new uint8 array."""
    u = rng.random()
    if u < style.thicken:
        line = cv2.dilate(line, np.ones((2, 2), np.uint8))
    elif u < style.thicken + style.thin:
        line = cv2.erode(cv2.GaussianBlur(line, (3, 3), 0), np.ones((2, 2), np.uint8))
    sigma = rng.uniform(*style.blur)
    if sigma > 0.3:  # below, a 3-tap kernel is the identity
        line = cv2.GaussianBlur(line, (0, 0), sigma)
    return cv2.convertScaleAbs(line, alpha=rng.uniform(*style.contrast))


def make_lines(sources: tuple[Glyphs, Glyphs | None], n: int, style: LineStyle,
               rng: np.random.Generator) -> LineBatch:
    """`n` lines of `style` written with (digits, marks): the batch's random choices are drawn together."""
    lengths = rng.integers(style.length[0], style.length[1] + 1, n)
    lengths[rng.random(n) < style.empty] = 0
    is_mark, index = _choose(sources, lengths, style, rng)
    strips = _strips(sources, lengths, is_mark, index, style, rng)
    starts, spans, widths = _layout(strips, lengths, style, rng)
    lines = _paint(strips, starts, lengths, widths)
    line = np.repeat(np.arange(n), lengths)
    breaks = np.zeros(n, np.int64)
    np.add.at(breaks, line, rng.integers(style.breaks[0], style.breaks[1] + 1, len(line)))
    noisy = rng.random(n) < style.noise_p
    for i in range(n):
        _break(lines[i], int(breaks[i]), style, rng)
        if noisy[i]:
            _noise(lines[i], style, rng)
        lines[i] = _pen(lines[i], style, rng)
    digits, marks = sources
    classes = np.where(is_mark, NOT_A_DIGIT, digits.classes[np.where(is_mark, 0, index)])
    kinds = np.array(digits.kinds[:1] * len(index), object)
    if marks is not None and is_mark.any():
        kinds[is_mark] = [marks.kinds[i] for i in index[is_mark].tolist()]
    cuts = np.cumsum(lengths)[:-1]
    return LineBatch(lines, np.split(classes, cuts), np.split(spans, cuts),
                     [tuple(k) for k in np.split(kinds, cuts)])


class LineSynth:
    """Makes lines from one set of digits (and one split of non-digit marks), as many as asked.

    digits: uint8 (N, h, w) bright on black (MNIST's training split for training, its test split
    for held-out sets); labels: int (N,). nondigit_split: "train", "heldout" or None (no marks).
    """

    def __init__(self, digits: np.ndarray, labels: np.ndarray, *, nondigit_split: str | None = "train",
                 bank_size: int = 600, bank_seed: int = 0) -> None:
        self.digits = digit_glyphs(digits, labels)
        self.marks = None if nondigit_split is None else nondigit_glyphs(nondigit_split, bank_size, bank_seed)

    def make(self, n: int, rng: np.random.Generator, condition: str | LineStyle = "train") -> LineBatch:
        """`n` lines of `condition` (a name in CONDITIONS or a LineStyle), drawn with `rng`."""
        style = get_style(condition)
        if style.nondigit_p > 0 and self.marks is None:
            raise DigitlabError("this LineSynth has no non-digit marks; make it with nondigit_split='train' or "
                                "'heldout' to draw lines with non-digits")
        return make_lines((self.digits, self.marks), n, style, rng)


def condition_set(condition: str, n: int, *, seed: int, digits: np.ndarray, labels: np.ndarray,
                  nondigit_split: str = "heldout", **overrides: object) -> LineBatch:
    """A seeded set of `n` lines of `condition` made from `digits` (use MNIST's test split to evaluate).

    Non-digits come from `nondigit_split` (default: the held-out kinds and fonts). `overrides`
    replace fields of the condition's LineStyle (e.g. length=(5, 5)). Same arguments, same lines.
    """
    style = replace(get_style(condition), **overrides)  # type: ignore[arg-type]
    synth = LineSynth(digits, labels, nondigit_split=nondigit_split if style.nondigit_p > 0 else None)
    rng = np.random.default_rng([seed, zlib.crc32(condition.encode())])  # the name, not its place in a list
    return synth.make(n, rng, style)
