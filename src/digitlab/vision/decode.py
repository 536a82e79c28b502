"""Decoding image files with bounded memory: only allowlisted formats, large JPEGs decoded small (Pillow)."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitlab.errors import DigitlabError, ImageTooLargeError, UnsupportedImageError

MAX_IMAGE_PIXELS = 40_000_000  # decompression-bomb guard: ~ a 7000 x 5700 photo; a digit needs far less
MAX_FILE_BYTES = 64 * 1024 * 1024  # files are read whole; no digit picture needs more
ALLOWED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")  # Pillow decoders load_image uses
DECODE_SIDE = 768  # JPEGs are decoded by DCT scaling (1/2, 1/4, 1/8) down to this long side at least
ORIENTATION = 0x0112  # the EXIF tag of the camera's rotation
FULL_SIZE = "digitlab.full_size"  # Image.info key: the (width, height) a reduced decode stands for

ImageSource = str | os.PathLike[str] | bytes | BinaryIO  # what load_image opens
ImageInput = ImageSource | Image.Image | np.ndarray  # what Predictor.predict_image takes


def label_of(image: object, name: str | None = None) -> str:
    """What errors call a picture: `name`, else its path, else "image"."""
    return name or (str(image) if isinstance(image, (str, os.PathLike)) else "image")


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    min_side: int | None = DECODE_SIDE,
) -> Image.Image:
    """Open and fully decode an image file (path, bytes or binary file object), EXIF-rotated.

    A JPEG larger than `min_side` (long side) is decoded at a reduced size by DCT scaling (1/2,
    1/4 or 1/8, keeping at least `min_side`), which is several times faster and smaller; its
    full (width, height) is then in `image.info["digitlab.full_size"]` (None: decode in full).
    Raises DigitlabError naming the file when it is missing, empty, unreadable, not an image,
    damaged, bigger than MAX_FILE_BYTES, or larger than `max_pixels` (checked from the header,
    before decoding, so a decompression bomb costs nothing); UnsupportedImageError (undecoded) for
    formats outside ALLOWED_FORMATS. Multi-frame images (GIF, TIFF) give their first frame.
    """
    label = name or (str(source) if isinstance(source, (str, os.PathLike)) else "uploaded image")
    data = _read_bytes(source, label)
    with warnings.catch_warnings():
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; make every bomb an error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        img = _open(data, label)
        width, height = img.size
        if width * height > max_pixels:
            raise ImageTooLargeError(
                f"{label}: image is {width}x{height} = {width * height} pixels, more than the "
                f"{max_pixels} allowed (decompression-bomb guard); shrink or crop it"
            )
        if width == 0 or height == 0:
            raise DigitlabError(f"{label}: image has no pixels ({width}x{height})")
        try:
            if min_side and img.format in ("JPEG", "MPO") and max(width, height) >= 2 * min_side:
                step = max(s for s in (1, 2, 4, 8) if max(width, height) // s >= min_side)
                img.draft(img.mode, (width // step, height // step))
            img.load()
            decoded = img.size
            if img.getexif().get(ORIENTATION, 1) != 1:
                img = ImageOps.exif_transpose(img)  # phone photos: apply the camera's rotation (else a copy)
        except Image.DecompressionBombWarning as exc:
            raise ImageTooLargeError(f"{label}: image is too large to be a digit ({exc}); crop or shrink it") from exc
        except Exception as exc:  # noqa: BLE001 - a damaged file makes Pillow raise many types; all mean "corrupt"
            raise DigitlabError(
                f"{label}: image data is corrupt or truncated ({exc}); re-save or re-export it") from exc
    if decoded != (width, height):
        img.info[FULL_SIZE] = (width, height) if img.size == decoded else (height, width)
    return img


def _open(data: bytes, label: str) -> Image.Image:
    """The image in `data`, opened (header only) by one of ALLOWED_FORMATS' decoders; DigitlabError otherwise.

    A file in another format Pillow knows (EPS, TGA, ICO, PCX, ...) is an UnsupportedImageError,
    refused before any of it is decoded (EPS would run Ghostscript).
    """
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        pass
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"{label}: image is too large to be a digit ({exc}); crop or shrink it") from exc
    except Exception as exc:  # noqa: BLE001 - a damaged header makes Pillow raise OSError, ValueError, ...
        raise DigitlabError(f"{label}: cannot be opened as an image ({exc}); re-save or re-export it") from exc
    accepted = ", ".join(f if f != "WEBP" else "WebP" for f in ALLOWED_FORMATS)
    try:
        other = Image.open(io.BytesIO(data)).format  # identification only: headers, nothing decoded
    except Exception:  # noqa: BLE001 - not an image at all
        other = None
    if other:
        raise UnsupportedImageError(f"{label}: {other} images are not accepted; give a {accepted} file")
    raise DigitlabError(f"{label}: not an image Pillow can read; give a {accepted} file")


def _read_bytes(source: ImageSource, label: str) -> bytes:
    """The whole file of `source` (path, bytes or binary file object), size-checked."""
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
        data = source.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            raise ImageTooLargeError(f"{label}: file is more than the {MAX_FILE_BYTES // 2**20} MiB allowed "
                                     "for an image of a digit; shrink or crop it")
    if not data:
        raise DigitlabError(f"{label}: the file is empty (0 bytes); give a PNG or JPEG image of a digit")
    return data
