"""The one image preprocessing: any picture -> a 28x28 uint8 image in a dataset's format.

Used by `digitlab predict`, `digitlab read`, the HTTP API and the web page. Three steps:

1. The picture at a bounded size (`picture`): decoded small (JPEG DCT scaling in `load_image`),
   shrunk by area averaging to at most WORK_SIDE, transparency composited, uint8 grey or RGB.
2. Its ink (`digitlab.vision.ink.find_ink`): the paper's lighting removed (gradients, shadows,
   the desk), ink found by thresholds set by the paper's noise, blue and coloured ink as dark as
   black, notebook lines removed; then the object: ink components grouped, specks and what lies
   on the picture's border left out, the strongest group kept (`ink_objects`).
3. The dataset's own normalisation, by profile:
   - "mnist" follows how MNIST was made (LeCun et al.): the digit, bright ink on black, is fitted
     into a 20x20 box keeping its aspect ratio (anti-aliased), then placed in a 28x28 field so
     its centre of mass is at the centre. Strokes far thinner or thicker than MNIST's (median 2.3 px,
     1st-99th percentile 1.25-4.25) are brought into its range. KMNIST uses the same format.
   - "fashion" follows how Fashion-MNIST was made (Xiao, Rasul, Vollgraf): the product, trimmed,
     has its longer side resized to 28 keeping the aspect ratio and is centred in 28x28 by its
     bounding box. No lighting removal (a product is a large dark area, not a pen stroke).
The dataset registry says which profile a dataset uses (`DatasetSpec.preprocessing`).
An image already in the profile's format (an MNIST test image) passes through nearly unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from PIL import Image

from digitlab.errors import BlankImageError, DigitlabError
from digitlab.layout import BOX, CENTRE, SIDE
from digitlab.vision.ink import (
    HALF_NORMAL_MEDIAN,
    MAX_NOISE_SHARE,
    MIN_CONTRAST,
    NOISE_MIN_SHARE,
    NOISE_SIGMAS,
    border_pixels,
    find_ink,
)
from digitlab.vision.objects import count_objects, ink_objects, object_ink
from digitlab.vision.picture import Box, Cleaned, Picture, picture

SIZE = SIDE  # output side, as MNIST

CORE_TRIM = 0.01  # fashion: mass fraction trimmed from each side to find the object's core
MNIST_STROKE = (1.25, 4.25)  # MNIST's stroke widths (2 x area / perimeter at 28 px): 1st-99th percentile
STROKE_TARGET = (1.8, 3.2)  # strokes outside MNIST_STROKE are brought to this range
FINE = 4  # stroke widths are adjusted on the digit at FINE times the output's (or the line reader's) resolution
STROKE_LEVEL = 0.5  # a pixel is on the stroke when its ink is above this (half way between paper and full ink)
FAINT_INK = 0.02  # after thinning, ink below this is nothing (the re-stroked digit is cropped to the rest)



@dataclass(frozen=True)
class _Profile:
    """How the cropped object is sized and placed in the 28x28 output."""

    box: int  # the object's longer side after resizing, in pixels
    centring: Literal["mass", "box"]  # centre of mass at (CENTRE, CENTRE), or bounding box centred


# Keys match `digitlab.data.registry.Preprocessing` (the registry names each dataset's profile).
PROFILES: dict[str, _Profile] = {
    "mnist": _Profile(box=BOX, centring="mass"),  # MNIST, KMNIST
    "fashion": _Profile(box=SIZE, centring="box"),  # Fashion-MNIST: the object fills the frame
}


@dataclass(frozen=True, kw_only=True)  # ten fields: built by keyword only
class Preprocessed:
    """One picture preprocessed: the 28x28 the model sees, and cheap facts about the ink found.

    image: uint8 (28, 28), bright ink on black (all zeros when blank).
    blank: no ink stands out from the background (then box is None and the counts are 0).
    box: the object's [x0, y0, x1, y1) in the input's pixels.
    components: significant connected ink components in the whole picture (specks left out).
    objects: separate things written or drawn: groups of components with at least OBJECT_SHARE of
        the chosen one's ink (so dust, specks and remnants of lines do not count); 1 for one digit,
        more for a number or several marks (`image` is the strongest).
    coverage: share of the picture's pixels that are ink (after cleaning).
    density: share of the object's box that is ink.
    stroke: the object's stroke width in output pixels (2 x area / perimeter), before normalising it.
    flat: the background was flat (a drawing or a scan): no lighting was removed.
    lines: notebook line segments removed.
    """

    image: np.ndarray
    blank: bool
    box: Box | None = None
    components: int = 0
    objects: int = 0
    coverage: float = 0.0
    density: float = 0.0
    stroke: float = 0.0
    flat: bool = True
    lines: int = 0


# -- the 28x28 ------------------------------------------------------------------------------------

def stroke_width(ink: np.ndarray) -> float:
    """Stroke width in pixels of float ink (h, w) in [0, 1]: 2 x area / perimeter of the pixels above STROKE_LEVEL."""
    binary = (ink > STROKE_LEVEL).astype(np.uint8)
    area = int(binary.sum())
    if area == 0:
        return 0.0
    contours, _ = cv2.findContours(binary, cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    perimeter = sum(cv2.arcLength(c, True) for c in contours)
    return 2.0 * area / max(perimeter, 1.0)


def to_mnist(ink: np.ndarray, *, box: int = BOX, adjust: bool = True) -> tuple[np.ndarray, float]:
    """(uint8 (28, 28), stroke width): float ink (h, w) in [0, 1] fitted to `box` and centred by mass, as MNIST.

    The longer side becomes `box` pixels keeping the aspect ratio (area averaging when shrinking:
    anti-aliased), and the centre of mass lands at (CENTRE, CENTRE) by an integer shift. When
    `adjust`, strokes outside MNIST_STROKE (measured at the output's scale) are thinned or
    thickened into STROKE_TARGET first, at FINE times the output's resolution.
    """
    h, w = ink.shape
    scale = box / max(h, w)
    width = stroke_width(ink) * scale
    if adjust and width > 0 and not MNIST_STROKE[0] <= width <= MNIST_STROKE[1]:
        ink = _restroke(ink, scale, width)
    return _place(_fit(ink, box)), width


def to_profile(ink: np.ndarray, profile: str = "mnist") -> np.ndarray:
    """uint8 (28, 28) of float ink (h, w) in [0, 1], normalised as `profile`'s dataset (see the module docstring)."""
    spec = _profile(profile, "image")
    if spec.centring == "mass":
        return to_mnist(ink, box=spec.box)[0]
    digit = _fit(ink, spec.box)
    h, w = digit.shape
    out = np.zeros((SIZE, SIZE), np.float32)
    top, left = (SIZE - h + 1) // 2, (SIZE - w + 1) // 2
    out[top : top + h, left : left + w] = digit
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _fit(ink: np.ndarray, box: int) -> np.ndarray:
    h, w = ink.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return ink
    method = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(ink, size, interpolation=method), 0.0, 1.0)


def _restroke(ink: np.ndarray, scale: float, width: float) -> np.ndarray:
    """`ink` redrawn at FINE x the output scale with its strokes eroded or dilated into STROKE_TARGET, re-cropped."""
    fine = _fit(ink, round(max(ink.shape) * scale * FINE))
    target = min(max(width, STROKE_TARGET[0]), STROKE_TARGET[1])
    r = int(round(abs(target - width) * FINE / 2))
    if r == 0:
        return ink
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    fine = np.pad(fine, r)  # room for thickened strokes
    fine = cv2.erode(fine, kernel) if width > target else cv2.dilate(fine, kernel)
    rows, cols = np.flatnonzero(fine.max(axis=1) > FAINT_INK), np.flatnonzero(fine.max(axis=0) > FAINT_INK)
    if rows.size == 0:
        return ink
    return fine[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _place(digit: np.ndarray) -> np.ndarray:
    """uint8 (28, 28) with `digit` (float, at most 28 x 28, in [0, 1]) pasted so its centre of mass is at the centre."""
    h, w = digit.shape
    cy, cx = _centre_of_mass(digit)
    top = min(max(round(CENTRE - cy), 0), SIZE - h)  # integer shift (no resampling blur), kept inside
    left = min(max(round(CENTRE - cx), 0), SIZE - w)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + h, left : left + w] = digit
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def _centre_of_mass(digit: np.ndarray) -> tuple[float, float]:
    """(row, column) of float32 `digit`'s (h, w) centre of mass; its middle when it is blank.

    Not `cv2.moments`: it sums in float64 where this sums in float32, which decides exact half-pixel
    ties (a uniform bar, a mirror-symmetric digit of even width) the other way and moves such a digit
    by a pixel (no MNIST digit moved; a third of symmetric test shapes did); and it reads an array of
    two columns (a thin 1) as a list of points.
    """
    h, w = digit.shape
    mass = float(digit.sum())
    if not mass:
        return (h - 1) / 2, (w - 1) / 2
    return (float((digit.sum(axis=1) * np.arange(h)).sum() / mass),
            float((digit.sum(axis=0) * np.arange(w)).sum() / mass))


# -- the entry points -----------------------------------------------------------------------------

def _profile(profile: str, name: str) -> _Profile:
    spec = PROFILES.get(profile)
    if spec is None:
        raise DigitlabError(f"{name}: preprocessing profile {profile!r} is unknown; use one of {', '.join(PROFILES)}")
    return spec


def preprocess(image: Image.Image | np.ndarray, *, name: str = "image", profile: str = "mnist",
               cleaned: Cleaned | None = None) -> Preprocessed:
    """A picture -> `Preprocessed`: the uint8 (28, 28) of `profile`'s dataset and facts about its ink.

    Unlike `preprocess_image`, a blank picture is not an error: it gives `blank=True` and an
    all-zero image. Raises DigitlabError for an unknown profile or an unusable array.
    `cleaned`: `clean(image)` when the caller already has it (then `image` is not looked at again).
    """
    spec = _profile(profile, name)
    pic = cleaned.picture if cleaned is not None else picture(image, name=name)
    if spec.centring == "box":
        return _fashion(pic, spec)
    ink = cleaned.ink if cleaned is not None else find_ink(pic.pixels)
    objects = ink_objects(ink)
    if not objects.objects:
        return Preprocessed(image=np.zeros((SIZE, SIZE), np.uint8), blank=True, flat=ink.flat, lines=ink.lines)
    best = objects.objects[0]
    crop, box = object_ink(ink, objects, best)
    out, width = to_mnist(crop, box=spec.box)
    return Preprocessed(
        image=out, blank=False, box=pic.to_input(box), components=objects.components,
        objects=count_objects(objects, best),
        coverage=float(np.count_nonzero(objects.labels)) / objects.labels.size,
        density=best.density, stroke=width, flat=ink.flat, lines=ink.lines,
    )


def preprocess_image(
    image: Image.Image | np.ndarray, *, name: str = "image", profile: str = "mnist"
) -> np.ndarray:
    """A picture -> uint8 (28, 28), bright ink on black, in the format of `profile`'s dataset (see `preprocess`).

    Any polarity, lighting, ink colour, ruled or squared paper; PIL images of any mode or arrays
    (H, W), (H, W, 3|4) of any dtype. `name` is used in error messages. Raises BlankImageError
    (a DigitlabError) when no ink stands out, DigitlabError for an unknown profile.
    """
    result = preprocess(image, name=name, profile=profile)
    if result.blank:
        raise BlankImageError(
            f"{name}: image is blank (no ink stands out from the background); give a picture of a digit"
        )
    return result.image


# -- Fashion-MNIST: the object trimmed and fitted, no lighting removal ----------------------------

def _fashion(pic: Picture, spec: _Profile) -> Preprocessed:
    """The "fashion" profile: border paper removed, the object connected to its core, longer side 28, box-centred."""
    grey = pic.pixels if pic.pixels.ndim == 2 else cv2.cvtColor(pic.pixels, cv2.COLOR_RGB2GRAY)
    ink = _fashion_ink(grey.astype(np.float32))
    if not ink.any():
        return Preprocessed(image=np.zeros((SIZE, SIZE), np.uint8), blank=True)
    mask = _core_connected(ink)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    obj = np.where(mask, ink, 0.0)[y0:y1, x0:x1]
    h, w = obj.shape
    scale = spec.box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size != (w, h):
        resized = Image.fromarray(obj, "F").resize(size, Image.Resampling.LANCZOS)
        obj = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 255.0)  # Lanczos rings below 0
    h, w = obj.shape
    top, left = (SIZE - h + 1) // 2, (SIZE - w + 1) // 2  # an odd margin: the spare pixel above / left
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + h, left : left + w] = obj
    n = cv2.connectedComponents(mask.astype(np.uint8))[0] - 1
    return Preprocessed(image=np.rint(out).astype(np.uint8), blank=False, box=pic.to_input((x0, y0, x1, y1)),
                        components=n, objects=1, coverage=float(mask.mean()),
                        density=float(mask[y0:y1, x0:x1].mean()), stroke=0.0, flat=True, lines=0)


def _fashion_ink(x: np.ndarray) -> np.ndarray:
    """Bright-on-black float32 ink: paper (the border's median) and its noise removed, peak at 255; zeros if none."""
    border = border_pixels(x)
    paper = float(np.median(border))
    if paper - x.min() > x.max() - paper:
        x, border, paper = 255.0 - x, 255.0 - border, 255.0 - paper  # dark ink on light paper
    deviation = border - paper
    positive = deviation[deviation > 0]
    noise = 0.0
    if positive.size >= NOISE_MIN_SHARE * deviation.size:  # widespread: paper noise, not a stroke touching the edge
        noise = NOISE_SIGMAS * float(np.median(positive)) / HALF_NORMAL_MEDIAN
        if noise > MAX_NOISE_SHARE * (float(x.max()) - paper):
            noise = 0.0  # an object touching much of the border (fills the frame), not noise
    ink = np.clip(x - paper - noise, 0.0, None)
    peak = float(ink.max())
    if peak < MIN_CONTRAST:
        return np.zeros_like(ink)
    return ink * (255.0 / peak)


def _trimmed_span(profile: np.ndarray, frac: float) -> tuple[int, int]:
    """[lo, hi) of a mass profile after dropping up to `frac` of the mass from each end."""
    c = np.cumsum(profile) / profile.sum()
    lo = int(np.searchsorted(c, frac, side="right"))
    hi = int(np.searchsorted(c, 1.0 - frac, side="left")) + 1
    return min(lo, hi - 1), hi


def _core_connected(ink: np.ndarray) -> np.ndarray:
    """bool mask: the ink components (8-neighbour) that reach the core (CORE_TRIM of the mass trimmed off each side)."""
    r0, r1 = _trimmed_span(ink.sum(axis=1), CORE_TRIM)
    c0, c1 = _trimmed_span(ink.sum(axis=0), CORE_TRIM)
    n, comp = cv2.connectedComponents((ink > 0).astype(np.uint8), connectivity=8)
    hit = np.zeros(n, bool)
    hit[comp[r0:r1, c0:c1][ink[r0:r1, c0:c1] > 0]] = True
    hit[0] = False
    return hit[comp]
