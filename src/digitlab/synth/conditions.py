"""Named conditions and `build_set`: a labelled, seeded set of Samples per condition.

Photo conditions change one factor at a time on a mild baseline (`BASE`: white plain paper,
black pen, gentle light, no shadow, +-3 degrees, light blur and noise, JPEG 82-93, 640-1280 px,
the digit 30-65% of the shorter side); the `*_mixed` and `mixed` conditions draw every factor
broadly (`BROAD`). Sample i of a condition depends only on (seed, condition, split, i), not on n.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from digitlab.errors import DigitlabError
from digitlab.synth import makers
from digitlab.synth.compose import RowStyle
from digitlab.synth.makers import DigitSource
from digitlab.synth.nondigits import SPLITS
from digitlab.synth.photo import LIGHTS, PAPERS, TINTS, PhotoFactors
from digitlab.synth.sample import Sample

BASE = PhotoFactors()
BROAD = PhotoFactors(
    long_side=(300, 2000), fraction=(0.12, 0.85), offset=0.8, papers=PAPERS, tints=tuple(TINTS),
    lights=LIGHTS, light_strength=(0.02, 0.45), shadows=("none", "none", "soft", "hard"),
    inks=("black", "blue", "blue", "pencil", "marker"), rotation=10.0, tilt=0.15,
    blurs=("none", "defocus", "defocus", "motion"), blur_px=(0.3, 2.0), noise=(1.0, 8.0), sharpen=(0.0, 0.8),
    jpeg_quality=(55, 95), page_edge=0.3, specks=(0, 12), white_balance=0.1,
)
FLAT = PhotoFactors(  # a scan or a screenshot: flat white, no camera
    long_side=(64, 600), aspects=(1.0, 4 / 3, 3 / 4), fraction=(0.4, 0.85), texture=(0.0, 0.1), lights=("flat",),
    exposure=(0.98, 1.03), white_balance=0.0, rotation=0.0, tilt=0.0, blurs=("none",), noise=(0.0, 1.0),
    sharpen=(0.0, 0.0), jpeg_quality=(88, 97), specks=(0, 0),
)
TOUCHING = RowStyle(gap=(-0.14, 0.0))

Maker = Callable[..., Sample]  # (rng, source: DigitSource | None, split: str, *, max_side: int | None) -> Sample


@dataclass(frozen=True)
class Condition:
    """A named way of making samples: what kind, what it varies, and its maker."""

    name: str
    kind: str  # "digit", "number" or "nondigit"
    description: str
    make: Maker = field(repr=False)
    needs_mnist: bool = True
    default_n: int = 100
    feed: str = "image"  # what a benchmark should give the model: "image" (the array) or "data" (file bytes)
    needs_fonts: bool = False  # draws glyphs of Debian's fonts (see digitlab.synth.fonts)
    post: Callable[[Sample, np.random.Generator], Sample] | None = field(default=None, repr=False)


def _photo(name: str, description: str, **factors: Any) -> Condition:
    return Condition(name, "digit", description, partial(makers.photo_digit, factors=replace(BASE, **factors)))


def _number(name: str, description: str, factors: PhotoFactors = BASE, **options: Any) -> Condition:
    make = partial(makers.photo_number, factors=factors, **options)
    return Condition(name, "number", description, make, default_n=50)


def _canvas(name: str, description: str, **options: Any) -> Condition:
    return Condition(name, "digit", description, partial(makers.canvas_digit, **options))


def _nondigit(name: str, description: str, groups: tuple[str, ...], factors: PhotoFactors = BASE) -> Condition:
    nd_factors = replace(factors, papers=PAPERS) if factors is BASE else factors
    return Condition(name, "nondigit", description, partial(makers.nondigit, groups=groups, factors=nd_factors),
                     needs_mnist=False)


def _mixed_digit(rng: np.random.Generator, src: DigitSource | None, split: str, max_side: int | None = None) -> Sample:
    """Any medium: a broad photo (60%), a canvas of any pen (25%, a third transparent), printed (15%)."""
    u = rng.random()
    if u < 0.6:
        return makers.photo_digit(rng, src, split, factors=BROAD, max_side=max_side)
    if u < 0.85:
        background = "transparent" if rng.random() < 0.33 else "black"
        return makers.canvas_digit(rng, src, split, pen=(0.02, 0.15), background=background, sizes=(160, 800))
    return makers.printed(rng, src, split, factors=BROAD if rng.random() < 0.6 else FLAT, max_side=max_side)


def _mixed_number(rng: np.random.Generator, src: DigitSource | None, split: str, max_side: int | None = None) -> Sample:
    """Any medium for numbers: broad photos with touching/broken/two-line writing, canvases, print."""
    u = rng.random()
    if u < 0.65:
        style = TOUCHING if rng.random() < 0.3 else RowStyle()
        return makers.photo_number(rng, src, split, factors=BROAD, style=style, two_lines=bool(rng.random() < 0.2),
                                   broken=0.3 if rng.random() < 0.2 else 0.0, max_side=max_side)
    if u < 0.85:
        return makers.canvas_number(rng, src, split, pen=(0.03, 0.12))
    return makers.printed(rng, src, split, factors=BROAD if rng.random() < 0.6 else FLAT, length=(2, 6),
                          max_side=max_side)


_GROUPS = ("letters", "symbols", "doodles", "scribbles")
_LIST: list[Condition] = [
    _photo("photo_plain", "baseline: white plain paper, black pen, mild light, slight blur/noise"),
    _photo("photo_ruled", "ruled paper: blue/grey lines (digit on a line), sometimes a red margin", papers=("ruled",)),
    _photo("photo_squared", "squared (grid) paper", papers=("squared",)),
    _photo("photo_gradient", "uneven light: strong linear/radial gradient or vignetting (25-55%)",
           lights=("linear", "radial", "vignette"), light_strength=(0.25, 0.55)),
    _photo("photo_soft_shadow", "a soft-edged shadow (hand, phone) over part of the page", shadows=("soft",)),
    _photo("photo_hard_shadow", "a sharp-edged shadow over part of the page", shadows=("hard",)),
    _photo("photo_blue_ink", "blue ballpoint", inks=("blue",)),
    _photo("photo_pencil", "pencil: grey, light, grainy", inks=("pencil",)),
    _photo("photo_marker", "thick marker (black, blue, red or green)", inks=("marker",)),
    _photo("photo_tinted", "cream, grey or recycled (flecked) paper", tints=("cream", "grey", "recycled")),
    _photo("photo_colour_cast", "indoor light: a warm or cool colour cast (white balance off by up to 15%)",
           white_balance=0.15),
    _photo("photo_jpeg_low", "strong JPEG compression (quality 30-60)", jpeg_quality=(30, 60)),
    _photo("photo_blur", "defocus or motion blur (1-2.5 px per 1000 px)", blurs=("defocus", "motion"),
           blur_px=(1.0, 2.5)),
    _photo("photo_noise", "dim-light sensor noise (sigma 6-14)", noise=(6.0, 14.0)),
    _photo("photo_rotated", "rotation up to +-10 degrees and perspective tilt", rotation=10.0, tilt=0.15),
    _photo("photo_small", "small photos: 240-400 px long side", long_side=(240, 400)),
    replace(_photo("photo_large", "12 MP photos, 4032x3024 either way (for speed)", exact_size=(4032, 3024)),
            default_n=10),
    _photo("photo_page_edge", "the page edge and the desk (wood, dark, grey, white, green) in view", page_edge=1.0),
    _photo("photo_far", "the digit small in the frame: 10-20% of the shorter side", fraction=(0.1, 0.2), offset=0.8),
    _photo("photo_close", "the digit filling the frame: 75-95% of the shorter side", fraction=(0.75, 0.95)),
    _photo("photo_dusty", "dust, dirt and specks on the paper (15-40)", specks=(15, 40)),
    replace(_photo("photo_exif", "a phone JPEG stored rotated with an EXIF Orientation tag (feed the file bytes)"),
            feed="data", post=makers.with_exif_rotation),
    Condition("photo_mixed", "digit", "every photo factor drawn broadly", partial(makers.photo_digit, factors=BROAD)),
    _number("number_plain", "2-6 digits on plain paper, varied gaps, sizes, baselines"),
    _number("number_ruled", "numbers on ruled paper", replace(BASE, papers=("ruled",), line_spacing=(0.95, 1.5))),
    _number("number_squared", "numbers on squared paper", replace(BASE, papers=("squared",))),
    _number("number_touching", "neighbours touching or overlapping (gaps -14% to 0)", style=TOUCHING),
    _number("number_broken", "pen-drawn digits with gaps (a 4 or 5 in two strokes that do not touch)",
            broken=0.6, how="strokes"),
    _number("number_two_lines", "two lines of digits (text joined by a newline)", two_lines=True),
    _number("number_mixed_photo", "numbers under broad photo factors", BROAD),
    Condition("number_mixed", "number", "numbers in any medium, touching/broken/two lines at random", _mixed_number,
              default_n=50),
    _canvas("canvas_default", "the web page: 280x280 black, white 22 px round pen, digit off-centre, 40-85% tall"),
    _canvas("canvas_thin", "a thin pen: 2-3.5% of the side", pen=(0.02, 0.035)),
    _canvas("canvas_thick", "a very thick pen: 12-15% of the side", pen=(0.12, 0.15)),
    _canvas("canvas_small", "a small drawing: 20-38% of the canvas, anywhere", fill=(0.2, 0.38)),
    _canvas("canvas_broken", "the web page canvas, digits drawn with a gap", broken=1.0),
    _canvas("canvas_transparent", "transparent RGBA canvas (200-800 px), dark strokes 3-12%",
            pen=(0.03, 0.12), background="transparent", sizes=(200, 800)),
    Condition("canvas_number", "number", "the page's number mode: 840x280 black, 22 px pen, 2-6 digits",
              makers.canvas_number, default_n=50),
    Condition("printed_fonts", "digit", "one printed digit in any font (DejaVu, Liberation, FreeFont), flat scan",
              partial(makers.printed, factors=FLAT), needs_mnist=False),
    Condition("printed_photo", "digit", "one printed digit photographed (baseline photo)",
              partial(makers.printed, factors=replace(BASE, papers=PAPERS)), needs_mnist=False),
    Condition("printed_number", "number", "a printed number of 2-6 digits in one font, photographed",
              partial(makers.printed, factors=replace(BASE, papers=PAPERS), length=(2, 6)), needs_mnist=False,
              default_n=50),
    Condition("mixed", "digit", "any medium and any factor: broad photos, canvases of any pen, print", _mixed_digit),
    _nondigit("nondigit_letters", "letters (printed or hand-drawn) of the split, paper or canvas", ("letters",)),
    _nondigit("nondigit_symbols", "symbols of the split, printed or hand-drawn", ("symbols",)),
    _nondigit("nondigit_scribbles", "pen scribbles of the split's kinds", ("scribbles",)),
    _nondigit("nondigit_doodles", "doodles of the split's kinds", ("doodles",)),
    _nondigit("nondigit_mixed", "any non-digit group of the split, broad photo factors", _GROUPS, BROAD),
]
_FONTS = {"printed_fonts", "printed_photo", "printed_number", "mixed", "number_mixed", "nondigit_letters",
          "nondigit_symbols", "nondigit_mixed"}
_LIST = [replace(c, needs_fonts=c.name in _FONTS) for c in _LIST]
CONDITIONS: dict[str, Condition] = {c.name: c for c in _LIST}


def condition_names(kind: str | None = None) -> list[str]:
    """Names of the conditions (of `kind` "digit", "number" or "nondigit" when given), in a fixed order."""
    return [c.name for c in _LIST if kind is None or c.kind == kind]


def get_condition(name: str) -> Condition:
    """The Condition called `name`; DigitlabError listing the names otherwise."""
    if name not in CONDITIONS:
        raise DigitlabError(f"condition {name!r} is unknown; use one of: {', '.join(CONDITIONS)}")
    return CONDITIONS[name]


def sample_rng(seed: int, condition: str, split: str, index: int) -> np.random.Generator:
    """The generator of sample `index`: a function of (seed, condition, split, index) only."""
    words = [int(seed) & 0xFFFFFFFF, zlib.crc32(condition.encode()), zlib.crc32(split.encode()), int(index)]
    return np.random.default_rng(np.random.SeedSequence(words))


def build_set(condition: str, n: int, seed: int = 0, mnist_test: tuple[np.ndarray, np.ndarray] | None = None,
              *, split: str = "train", start: int = 0, max_side: int | None = None) -> list[Sample]:
    """`n` Samples of `condition`, reproducible from `seed`: samples start .. start+n-1 of its stream.

    mnist_test: (x uint8 (N, 28, 28), y (N,)) MNIST *test* digits, needed by the handwritten-digit
    conditions (`Condition.needs_mnist`). split: "train", "heldout" or "ambiguous"; it selects the
    non-digit family (see `digitlab.synth.nondigits`) and is ignored by digit conditions.
    max_side: cap every photo's longer side at this many pixels (the whole scene scales down, the
    random draws stay the same): quick fixtures for tests. Canvases keep their sizes.
    Raises DigitlabError for an unknown condition or split, a bad n, or missing/ill-shaped digits.
    """
    cond = get_condition(condition)
    if split not in SPLITS:
        raise DigitlabError(f"split {split!r} is unknown; use one of {', '.join(SPLITS)}")
    if n < 0 or start < 0:
        raise DigitlabError(f"n={n}, start={start}: both must be >= 0")
    if max_side is not None and max_side < 32:
        raise DigitlabError(f"max_side={max_side}: use at least 32 pixels, or None for the condition's own sizes")
    src = DigitSource.of(mnist_test) if cond.needs_mnist else (
        DigitSource.of(mnist_test) if mnist_test is not None else None)
    stream = split if cond.kind == "nondigit" else ""
    out = []
    for i in range(start, start + n):
        rng = sample_rng(seed, condition, stream, i)
        sample = cond.make(rng, src, split, max_side=max_side)
        if cond.post is not None:
            sample = cond.post(sample, rng)
        sample.condition = condition
        sample.params = {"seed": seed, "index": i, **sample.params}
        out.append(sample)
    return out
