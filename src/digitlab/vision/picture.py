"""A picture at working size: any PIL image or array as uint8 grey or RGB, transparency composited, shrunk by area."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from digitlab.errors import DigitlabError
from digitlab.vision.decode import FULL_SIZE
from digitlab.vision.ink import MIN_CONTRAST, InkMap, find_ink

WORK_SIDE = 1024  # pictures are cleaned at this long side at most, shrunk by a whole factor (so 513-1024)
STRIP_PIXELS = 4_000_000  # a large picture is reduced in strips of about this many pixels

Box = tuple[int, int, int, int]  # [x0, y0, x1, y1), x1 / y1 exclusive: every box in digitlab.vision


@dataclass(frozen=True)
class Picture:
    """A picture at working size: `pixels` uint8 grey (h, w) or RGB (h, w, 3); `size` = the input's (width, height)."""

    pixels: np.ndarray
    size: tuple[int, int]

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) input pixels per working pixel."""
        h, w = self.pixels.shape[:2]
        return self.size[0] / w, self.size[1] / h

    def to_input(self, box: Box) -> Box:
        """A working-pixel box [x0, y0, x1, y1) in input pixels (rounded outwards, clipped to the input)."""
        sx, sy = self.scale
        x0, y0, x1, y1 = box
        return (max(0, int(np.floor(x0 * sx))), max(0, int(np.floor(y0 * sy))),
                min(self.size[0], int(np.ceil(x1 * sx))), min(self.size[1], int(np.ceil(y1 * sy))))


def picture(image: Image.Image | np.ndarray, *, name: str = "image", side: int = WORK_SIDE) -> Picture:
    """`image` (PIL image of any mode, or array (H, W), (H, W, 1|2|3|4), (1, H, W) of any dtype) at working size.

    Transparency is composited over white (over black when that leaves nothing to see: light
    strokes on a transparent canvas); the long side is shrunk to at most `side` by the smallest
    whole factor (box average, premultiplied by alpha; fast and exact). Raises DigitlabError for
    arrays of other shapes or dtypes.
    """
    if isinstance(image, Image.Image):
        size = tuple(image.info.get(FULL_SIZE) or image.size)
        arr = _from_pil(image, side)
    else:
        arr = _uint8_array(np.asarray(image), name)
        size = (arr.shape[1], arr.shape[0])
        if arr.ndim == 3 and arr.shape[2] in (2, 4):
            arr = _from_pil(Image.fromarray(arr, "LA" if arr.shape[2] == 2 else "RGBA"), side)
    if arr.size == 0:
        raise DigitlabError(f"{name}: image has no pixels")
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = _composite(arr)
    return Picture(np.ascontiguousarray(_shrunk(arr, side)), (int(size[0]), int(size[1])))


_PIL_MODES = {"1": "L", "P": "RGB", "PA": "RGBA", "La": "LA", "RGBa": "RGBA"}  # to the four modes used here


def _from_pil(img: Image.Image, side: int) -> np.ndarray:
    """uint8 array (h, w[, 2|3|4]) of a PIL image, reduced (premultiplied) to less than twice `side`."""
    if img.mode.startswith("I") or img.mode == "F":  # 16/32-bit integer and float greyscale
        return _uint8_array(np.asarray(img), "image")
    mode = _PIL_MODES.get(img.mode, img.mode if img.mode in ("L", "LA", "RGB", "RGBA") else "RGB")
    if img.mode == "P" and "transparency" in img.info:
        mode = "RGBA"
    if mode != img.mode:
        img = img.convert(mode)
    factor = -(-max(img.size) // side)
    if factor < 2:
        return np.asarray(img)
    # Box average by a whole factor (fast; Pillow premultiplies RGBA / LA), in strips of rows so a
    # huge picture never has a second full-size copy (its RGBa conversion) in memory.
    rows = factor * max(1, STRIP_PIXELS // (img.width * factor))
    strips = [np.asarray(img.crop((0, top, img.width, min(top + rows, img.height))).reduce(factor))
              for top in range(0, img.height - factor + 1, rows)]
    return np.concatenate(strips, axis=0)


def _uint8_array(arr: np.ndarray, name: str) -> np.ndarray:
    """uint8 (H, W) or (H, W, 2|3|4) from an array of any dtype (0-1 floats, 16-bit values are scaled)."""
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (2, 3, 4)):
        raise DigitlabError(
            f"{name}: image array has shape {arr.shape}; expected (H, W) greyscale or (H, W, 3|4) RGB(A)")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        return cv2.convertScaleAbs(arr, alpha=1 / 257)
    if np.issubdtype(arr.dtype, np.floating):
        x = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if x.size and float(x.max()) <= 1.0 else 1.0
    elif np.issubdtype(arr.dtype, np.integer):
        x = arr.astype(np.float32)
        scale = 1 / 257 if x.size and float(x.max()) > 255 else 1.0  # 16-bit values in a wider integer type
    else:
        raise DigitlabError(f"{name}: image array has dtype {arr.dtype}; expected an integer, float or bool array")
    return np.clip(np.rint(x * np.float32(scale)), 0, 255).astype(np.uint8)


def _composite(arr: np.ndarray) -> np.ndarray:
    """Grey or RGB uint8 of an LA / RGBA array over white paper; over black if that leaves nothing to see."""
    colour = arr[..., :-1].astype(np.float32)
    alpha = arr[..., -1:].astype(np.float32) / 255.0
    over_white = colour * alpha + 255.0 * (1.0 - alpha)
    if np.ptp(over_white) < MIN_CONTRAST and np.ptp(alpha) > 0:
        over_white = colour * alpha  # light strokes on a transparent canvas
    out = np.clip(np.rint(over_white), 0, 255).astype(np.uint8)
    return out[..., 0] if out.shape[2] == 1 else out


def _shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """`image` shrunk by the smallest whole factor that brings its long side to at most `side` (box average)."""
    h, w = image.shape[:2]
    factor = -(-max(h, w) // side)
    if factor <= 1:
        return image
    return cv2.resize(image, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Cleaned:
    """A picture at working size and the ink found in it: what `preprocess` and `read_layout` both start from."""

    picture: Picture
    ink: InkMap


def clean(image: Image.Image | np.ndarray, *, name: str = "image") -> Cleaned:
    """`image` at working size (`picture`) and its ink (`find_ink`), found once for several uses of one picture."""
    pic = picture(image, name=name)
    return Cleaned(pic, find_ink(pic.pixels))
