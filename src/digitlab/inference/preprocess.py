"""The one image preprocessing: any picture -> a 28x28 uint8 image in a dataset's format.

Used by `digitlab predict`, the HTTP API and the web page. Two profiles, one code path:
- "mnist" follows how MNIST was made (LeCun et al.): the digit, bright ink on black, is fitted
  into a 20x20 box keeping its aspect ratio (anti-aliased), then placed in a 28x28 field so its
  centre of mass is at the centre. KMNIST uses the same format.
- "fashion" follows how Fashion-MNIST was made (Xiao, Rasul, Vollgraf): the product, trimmed, has
  its longer side resized to 28 keeping the aspect ratio and is centred in 28x28 by its bounding box.
The dataset registry says which profile a dataset uses (`DatasetSpec.preprocessing`).
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitlab.errors import BlankImageError, DigitlabError, ImageTooLargeError
from digitlab.layout import BOX, CENTRE, SIDE

SIZE = SIDE  # output side, as MNIST


MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: ~ a 7000 x 5700 photo; a digit needs far less
MAX_FILE_BYTES = 64 * 1024 * 1024  # files are read whole; no digit picture needs more
WORK_SIDE = 512  # larger inputs are first shrunk (area average) to this side: output is 20 px anyway
MIN_CONTRAST = 10.0  # ink must stand out from the paper by this much (0-255 scale), else "blank"
CORE_TRIM = 0.01  # mass fraction trimmed from each side to find the digit's core before growing it
MAX_NOISE_FRACTION = 0.25  # paper noise above this share of the ink contrast is an object at the border

ImageSource = str | os.PathLike[str] | bytes | BinaryIO  # what load_image opens
ImageInput = ImageSource | Image.Image | np.ndarray  # what Predictor.predict_image takes


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


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Image.Image:
    """Open and fully decode an image file (path, bytes or binary file object), EXIF-rotated.

    Raises DigitlabError naming the file when it is missing, empty, unreadable, not an image,
    truncated, bigger than MAX_FILE_BYTES, or larger than `max_pixels` (checked from the header,
    before decoding, so a decompression bomb costs nothing). Multi-frame images (GIF, TIFF) give their first frame.
    """
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "uploaded image")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise DigitlabError(f"{label}: no such file; check the path")
        if path.is_dir():
            raise DigitlabError(f"{label}: is a folder, not an image file")
        try:
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise ImageTooLargeError(
                    f"{label}: file is {size / 2**20:.0f} MiB, more than the {MAX_FILE_BYTES // 2**20} MiB "
                    "allowed for an image of a digit; shrink or crop it"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise DigitlabError(f"{label}: cannot be read ({exc.strerror or exc}); check its permissions") from exc
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        data = source.read()
    if not data:
        raise DigitlabError(f"{label}: the file is empty (0 bytes); give a PNG or JPEG image of a digit")

    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make every bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            if isinstance(exc, UnidentifiedImageError):
                raise DigitlabError(
                    f"{label}: not an image Pillow can read; give a PNG, JPEG, BMP, GIF, TIFF or WebP file"
                ) from exc
            raise ImageTooLargeError(f"{label}: image is too large to be a digit ({exc}); crop or shrink it") from exc
        except OSError as exc:
            raise DigitlabError(f"{label}: cannot be opened as an image ({exc})") from exc
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{label}: image is {width}x{height} = {width * height} pixels, more than the "
                f"{max_pixels} allowed (decompression-bomb guard); shrink or crop it"
            )
        if width == 0 or height == 0:
            raise DigitlabError(f"{label}: image has no pixels ({width}x{height})")
        try:
            img.load()
            img = ImageOps.exif_transpose(img)  # phone photos: apply the camera's rotation
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
            raise DigitlabError(f"{label}: image data is corrupt or truncated ({exc}); re-save or re-export it") from exc
    return img


def _grey_from_pil(img: Image.Image) -> np.ndarray:
    """Float64 greyscale 0-255 (H, W); transparency composited on white."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        # 16-bit greyscale PNGs open as I;16 or I: map 0-65535 to 0-255.
        return arr / 257.0 if (mode != "I" or arr.max(initial=0) > 255) else arr
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return arr * 255.0 if arr.max(initial=0) <= 1.0 else arr
    if mode == "P" and "transparency" in img.info or mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _composite(np.asarray(img.convert("RGBA"), dtype=np.float64))
    if mode == "L":
        return np.asarray(img, dtype=np.float64)
    return np.asarray(img.convert("L"), dtype=np.float64)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb @ np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's convert("L")


def _composite(rgba: np.ndarray) -> np.ndarray:
    """Greyscale of RGBA (H, W, 4) 0-255 over white paper; over black if that leaves nothing to see.

    Strokes drawn dark on a transparent canvas show on white; light strokes on a transparent
    canvas would vanish on white, so those are composited on black instead.
    """
    alpha = rgba[..., 3:] / 255.0
    grey = _luminance(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha))
    if np.ptp(grey) < MIN_CONTRAST and np.ptp(alpha) > 0:
        grey = _luminance(rgba[..., :3] * alpha)
    return grey


def _grey_from_array(arr: np.ndarray) -> np.ndarray:
    """Float64 greyscale 0-255 (H, W) from (H, W), (H, W, 1|2|3|4) or (1, H, W) arrays."""
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4)):
        raise DigitlabError(
            f"image array has shape {arr.shape}; expected (H, W) greyscale or (H, W, 3|4) RGB(A)"
        )
    if arr.dtype == bool:
        x = arr.astype(np.float64) * 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float64) / 257.0
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float64)
        if np.nanmax(x, initial=0) <= 1.0:
            x = x * 255.0  # floats in [0, 1]
    elif np.issubdtype(arr.dtype, np.integer):
        x = arr.astype(np.float64)
        if x.max(initial=0) > 255:
            x = x / 257.0  # 16-bit values in a wider integer type
    else:
        raise DigitlabError(f"image array has dtype {arr.dtype}; expected an integer, float or bool array")
    x = np.nan_to_num(x, nan=0.0)
    if x.ndim == 2:
        return x
    if x.shape[-1] == 2:  # greyscale + alpha
        x = np.concatenate([np.repeat(x[..., :1], 3, axis=-1), x[..., 1:]], axis=-1)
    if x.shape[-1] == 4:
        return _composite(x)
    return _luminance(x)


def _shrink(x: np.ndarray, max_side: int) -> np.ndarray:
    h, w = x.shape
    if max(h, w) <= max_side:
        return x
    s = max_side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return np.asarray(Image.fromarray(x.astype(np.float32), "F").resize(size, Image.Resampling.BOX), dtype=np.float64)


def _noise_floor(deviation: np.ndarray, contrast: float) -> float:
    """3 sigma of the paper's noise from border pixels' deviation from the paper level (ink side +).

    Measured on the ink side only, where the noise matters, from the half-normal median
    (0.6745 sigma), because a median/MAD of the whole border is 0 when the paper saturates
    at white. Only when deviations are widespread (>= 25% of the border): a few positive
    pixels are a stroke touching the edge, not noise. A floor above MAX_NOISE_FRACTION of the
    ink's `contrast` (peak minus paper) is not noise but an object touching much of the border
    (Fashion-MNIST's fill the frame): 0 then, else the object would be erased.
    """
    positive = deviation[deviation > 0]
    if positive.size < 0.25 * deviation.size:
        return 0.0
    floor = 3.0 * float(np.median(positive)) / 0.6745
    return 0.0 if floor > MAX_NOISE_FRACTION * contrast else floor


def _ink(x: np.ndarray) -> np.ndarray:
    """Bright-ink-on-black float image from greyscale: paper level removed, ink peak at 255.

    The paper is the median of the image border; ink is whichever extreme lies farther from it
    (so dark-on-light inputs get inverted). Paper noise (3 sigmas, from the border) is removed.
    Returns all zeros when nothing stands out from the paper.
    """
    border = np.concatenate([x[0], x[-1], x[1:-1, 0], x[1:-1, -1]])
    paper = float(np.median(border))
    if paper - x.min() > x.max() - paper:
        x, border, paper = 255.0 - x, 255.0 - border, 255.0 - paper  # dark ink on light paper
    noise = _noise_floor(border - paper, float(x.max()) - paper)
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


def _digit_mask(ink: np.ndarray) -> np.ndarray:
    """The digit's pixels: the ink connected (8-neighbour) to its core, without stray specks.

    The core is the ink bounding box after trimming CORE_TRIM of the mass from each side; the
    mask grows from there through touching ink, so faint anti-aliased edges stay and specks
    or smudges separated from the digit by paper are left out.
    """
    has_ink = ink > 0
    r0, r1 = _trimmed_span(ink.sum(axis=1), CORE_TRIM)
    c0, c1 = _trimmed_span(ink.sum(axis=0), CORE_TRIM)
    mask = np.zeros_like(has_ink)
    mask[r0:r1, c0:c1] = has_ink[r0:r1, c0:c1]
    while True:  # binary dilation restricted to ink, until nothing changes
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        g2 = grown.copy()
        g2[:, 1:] |= grown[:, :-1]
        g2[:, :-1] |= grown[:, 1:]
        g2 &= has_ink
        if np.array_equal(g2, mask):
            return mask
        mask = g2


def preprocess_image(
    image: Image.Image | np.ndarray, *, name: str = "image", profile: str = "mnist"
) -> np.ndarray:
    """A picture -> uint8 (28, 28), bright ink on black, in the format of `profile`'s dataset.

    Steps: greyscale (alpha over white, palette, 16-bit, float arrays handled); dark ink on
    light paper detected from the border and inverted; paper level and noise removed, ink
    stretched to peak 255; cropped to the object (ink connected to its core); then, by profile:
    "mnist": longer side resized to 20 px keeping the aspect ratio (Lanczos, anti-aliased) and
    pasted into 28x28 so the centre of mass is at (14, 14), as MNIST (and KMNIST);
    "fashion": longer side resized to 28 px keeping the aspect ratio and pasted into 28x28
    centred by its bounding box, as Fashion-MNIST. An image of the profile's dataset passes
    through nearly unchanged. `name` is used in error messages. Raises DigitlabError for a blank
    image or an unknown profile.
    """
    spec = PROFILES.get(profile)
    if spec is None:
        raise DigitlabError(
            f"{name}: preprocessing profile {profile!r} is unknown; use one of {', '.join(PROFILES)}"
        )
    if isinstance(image, Image.Image):
        grey = _grey_from_pil(image)
    else:
        grey = _grey_from_array(np.asarray(image))
    if grey.size == 0:
        raise DigitlabError(f"{name}: image has no pixels")
    ink = _ink(_shrink(grey, WORK_SIDE))
    if not ink.any():
        raise BlankImageError(
            f"{name}: image is blank (no ink stands out from the background); give a picture of a digit"
        )
    mask = _digit_mask(ink)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    digit = np.where(mask, ink, 0.0)[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    h, w = digit.shape
    scale = spec.box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))  # (width, height) for Pillow
    if size != (w, h):
        resized = Image.fromarray(digit.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS)
        digit = np.clip(np.asarray(resized, dtype=np.float64), 0.0, 255.0)  # Lanczos rings below 0
    h, w = digit.shape

    if spec.centring == "mass":
        mass = digit.sum()
        cy = float((digit.sum(axis=1) * np.arange(h)).sum() / mass)
        cx = float((digit.sum(axis=0) * np.arange(w)).sum() / mass)
        top = min(max(round(CENTRE - cy), 0), SIZE - h)  # integer shift (no resampling blur), kept inside
        left = min(max(round(CENTRE - cx), 0), SIZE - w)
    else:
        # bounding box centred; an odd margin puts the spare pixel above / left, as most Fashion-MNIST images
        top, left = (SIZE - h + 1) // 2, (SIZE - w + 1) // 2
    out = np.zeros((SIZE, SIZE), dtype=np.float64)
    out[top : top + h, left : left + w] = digit
    return np.rint(out).astype(np.uint8)
