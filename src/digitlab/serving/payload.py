"""Request bodies of `POST /api/predict` and `/api/read` -> a `Payload` (image bytes or MNIST pixels).

Three ways in:
- an image file (multipart upload, or a raw `image/*` body): decoded, then prepared by the chosen
  model's `Predictor.prepare` (its dataset's preprocessing), the same code `digitlab predict` uses;
- JSON `{"image": "<data URL or raw base64>"}`: the same, after base64 decoding;
- JSON `{"pixels": [...]}`: 784 numbers or 28 rows of 28, taken as already in MNIST format
  (bright ink on black, digit centred) and NOT preprocessed. Integers are 0..255; an array
  with any non-integer number is read as 0..1 (override with `"scale": 255` or `"scale": 1`).
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from digitlab.errors import BlankImageError, DigitlabError, ImageTooLargeError, UnsupportedImageError
from digitlab.layout import IMAGE_PIXELS, SIDE
from digitlab.serving.errors import APIError
from digitlab.serving.schemas import ImageRequest


@dataclass(frozen=True)
class Payload:
    """What a request asked for: exactly one of `image_bytes` and `pixels`."""

    source: str  # "upload" | "base64" | "pixels"
    image_bytes: bytes | None = None
    pixels: np.ndarray | None = None  # uint8 (28, 28), MNIST format
    model: str | None = None
    top_k: int | None = None
    reject_threshold: float | None = None


_FIELDS = list(ImageRequest.model_fields)


def parse_json(body: bytes, *, allow_pixels: bool = True) -> Payload:
    """A JSON body -> Payload, checked against `schemas.ImageRequest`.

    Raises APIError (400/422) naming what was wrong; nothing else, whatever the bytes.
    """
    try:
        obj = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise APIError(400, "invalid_json", f"the body is not valid JSON ({exc}); send an object such as "
                       '{"pixels": [...784 numbers...]} or {"image": "data:image/png;base64,..."}') from None
    if not isinstance(obj, dict):
        raise APIError(422, "invalid_json", "the JSON body must be an object with an \"image\" or \"pixels\" field")
    unknown = sorted(set(obj) - set(_FIELDS) | ({"pixels", "scale"} & set(obj) if not allow_pixels else set()))
    if unknown:
        fields = [f for f in _FIELDS if allow_pixels or f not in ("pixels", "scale")]
        raise APIError(422, "unknown_field", f"unknown field(s) {unknown}; accepted fields: {fields}")
    model, threshold = obj.get("model"), obj.get("reject_threshold")
    if model is not None and not isinstance(model, str):
        raise APIError(422, "invalid_parameter",
                       "\"model\" must be a string naming a served model (see GET /api/model)")
    top_k = parse_top_k(obj.get("top_k"))
    if isinstance(threshold, str):
        raise APIError(422, "invalid_parameter", "\"reject_threshold\" must be a number")
    threshold = parse_threshold(threshold)
    has_image, has_pixels = obj.get("image") is not None, obj.get("pixels") is not None
    if has_image == has_pixels:
        what = ("exactly one of \"image\" (base64 or data URL of a PNG/JPEG) and \"pixels\" (784 numbers or 28x28)"
                if allow_pixels else "\"image\" (base64 or data URL of a PNG/JPEG)")
        raise APIError(422, "missing_input", f"send {what}")
    if has_image:
        if obj.get("scale") is not None:
            raise APIError(422, "invalid_parameter", "\"scale\" applies to \"pixels\" only")
        return Payload("base64", image_bytes=decode_base64(obj["image"]), model=model, top_k=top_k,
                       reject_threshold=threshold)
    return Payload("pixels", pixels=parse_pixels(obj["pixels"], obj.get("scale")), model=model, top_k=top_k,
                   reject_threshold=threshold)


def parse_threshold(value: Any) -> float | None:
    """`reject_threshold` from a JSON or form field: a number, or None when absent (finiteness: checked later)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise APIError(422, "invalid_parameter", f"\"reject_threshold\" must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise APIError(422, "invalid_parameter", "\"reject_threshold\" must be a number")
    return float(value)


def parse_top_k(value: Any) -> int | None:
    """`top_k` from a JSON or form field: a positive integer, or None when absent."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise APIError(422, "invalid_parameter", f"top_k must be a positive integer, got {value!r}")
    return value


def decode_base64(value: Any) -> bytes:
    """A data URL (`data:image/png;base64,...`) or raw base64 string -> the file's bytes."""
    if not isinstance(value, str):
        raise APIError(422, "invalid_base64", "\"image\" must be a string: a data URL or base64 of a PNG/JPEG file")
    text = value.strip()
    if text.startswith("data:"):
        header, sep, text = text.partition(",")
        if not sep or not header.endswith(";base64"):
            raise APIError(422, "invalid_base64", "a data URL must look like data:image/png;base64,<data>")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise APIError(422, "invalid_base64", "\"image\" is not valid base64; encode the file's bytes with "
                       "standard base64 (A-Z a-z 0-9 + /, padded with =)") from None
    if not data:
        raise APIError(422, "invalid_base64", "\"image\" is empty; send the base64 of a PNG or JPEG file")
    return data


def parse_pixels(value: Any, scale: Any = None) -> np.ndarray:
    """784 numbers or 28 rows of 28 -> uint8 (28, 28); integers 0..255 or floats 0..1."""
    if isinstance(scale, bool) or scale not in (None, 1, 255):
        raise APIError(422, "invalid_parameter",
                       f"\"scale\" must be 255 (values 0..255) or 1 (values 0..1), got {scale!r}")
    try:
        arr = np.asarray(value)
    except (ValueError, OverflowError, RecursionError):
        arr = None  # ragged rows, or nested far too deep
    if arr is not None and arr.dtype == object and all(type(v) is int for v in arr.ravel()):
        arr = np.clip(arr, -1, 256).astype(np.int64)  # integers too big for int64: out of range all the same
    if arr is None or arr.dtype.kind not in "iuf":
        raise APIError(422, "invalid_pixels", "\"pixels\" must be numbers only: 784 of them, or 28 rows of 28")
    if arr.shape not in ((IMAGE_PIXELS,), (SIDE, SIDE)):
        raise APIError(422, "invalid_shape", f"\"pixels\" has shape {list(arr.shape)}; send 784 numbers or 28 rows "
                       "of 28 (row by row, top to bottom)")
    if scale is None:
        scale = 255 if arr.dtype.kind in "iu" else 1
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise APIError(422, "invalid_pixels", "\"pixels\" contains NaN or infinity; send finite numbers")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > scale:
        raise APIError(422, "pixels_out_of_range",
                       f"\"pixels\" values run from {lo:g} to {hi:g} but must lie in 0..{scale} "
                       + ("(integers 0..255)" if scale == 255 else "(floats 0..1; send integers for 0..255)"))
    if scale == 255:
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
            raise APIError(422, "invalid_pixels", "with \"scale\": 255 the pixels must be whole numbers 0..255")
        out = arr.astype(np.uint8)
    else:
        out = np.rint(arr.astype(np.float64) * 255.0).astype(np.uint8)
    return out.reshape(SIDE, SIDE)


def api_error(exc: DigitlabError) -> APIError:
    """The APIError for a picture the library refused: 415 for a format outside the allowlist (refused
    before decoding), else 422 (not an image, too large, blank)."""
    if isinstance(exc, UnsupportedImageError):
        return APIError(415, "unsupported_image_format", str(exc))
    if isinstance(exc, ImageTooLargeError):
        code = "image_too_large"
    elif isinstance(exc, BlankImageError):
        code = "blank_image"
    else:
        code = "invalid_image"
    return APIError(422, code, str(exc))
