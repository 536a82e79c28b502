"""IDX files (the MNIST container format): a validating reader and a writer, gzip or raw.

Layout: two zero bytes, one element-type byte, one dimension-count byte, then one
big-endian uint32 per dimension, then the elements, big-endian, row-major.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.errors import DigitlabError

# IDX element-type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_FOR_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_DTYPES.items()}
GZIP_MAGIC = b"\x1f\x8b"
_FIX = "Delete it and fetch it again (`digitlab data fetch NAME`), or supply a good copy."


def _describe_start(buf: bytes | bytearray | memoryview) -> str:
    head = bytes(buf[:64]).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return " (it looks like an HTML/XML page, e.g. a server's error page, not data)"
    return ""


def decompress_if_gzip(raw: bytes | bytearray, *, name: str = "<bytes>") -> bytearray:
    """The decompressed content of `raw` if it is gzip (detected by magic, not by name), else `raw`.

    Returns a fresh writable bytearray so arrays made from it are writable without a copy.
    """
    if bytes(raw[:2]) != GZIP_MAGIC:
        return raw if isinstance(raw, bytearray) else bytearray(raw)
    try:
        return bytearray(gzip.decompress(raw))
    except (OSError, EOFError, zlib.error) as exc:
        raise DigitlabError(
            f"{name}: corrupt or truncated gzip data ({exc}). {_FIX}"
        ) from exc


def read_bytes(path: str | os.PathLike[str]) -> bytearray:
    """The decompressed content of the file at `path` (gzip or raw) as a writable bytearray."""
    p = Path(path)
    try:
        size = p.stat().st_size
        buf = bytearray(size)
        with open(p, "rb") as fh:
            got = fh.readinto(buf)
    except OSError as exc:
        raise DigitlabError(f"{p}: cannot be read ({exc.strerror or exc}). Check the path and its permissions.") from exc
    if got != size:  # the file changed while we read it
        del buf[got:]
    return decompress_if_gzip(buf, name=str(p))


def parse_idx(buf: bytes | bytearray, *, name: str = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX content into an array of native byte order, shape from the header.

    Validates the magic number, element type, dimension count and that the sizes in the
    header account for exactly the bytes present. A `bytearray` input yields a writable
    array sharing its memory (no copy for single-byte element types).
    """
    n = len(buf)
    if n < 4:
        raise DigitlabError(f"{name}: only {n} bytes, too short for an IDX header (4 bytes or more). {_FIX}")
    zero, code, ndim = struct.unpack_from(">HBB", buf, 0)
    if zero != 0:
        magic = struct.unpack_from(">I", buf, 0)[0]
        raise DigitlabError(
            f"{name}: bad magic number 0x{magic:08X} (an IDX file starts with two zero bytes)"
            f"{_describe_start(buf)}. {_FIX}"
        )
    if code not in IDX_DTYPES:
        raise DigitlabError(
            f"{name}: unknown IDX element type 0x{code:02X} (known: "
            f"{', '.join(f'0x{c:02X}' for c in IDX_DTYPES)}). {_FIX}"
        )
    if ndim == 0:
        raise DigitlabError(f"{name}: IDX header declares 0 dimensions; an IDX file has at least one. {_FIX}")
    header = 4 + 4 * ndim
    if n < header:
        raise DigitlabError(
            f"{name}: truncated IDX header: {n} bytes, but {ndim} dimensions need {header}. {_FIX}"
        )
    shape = struct.unpack_from(f">{ndim}I", buf, 4)
    dtype = IDX_DTYPES[code]
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if n < expected:
        raise DigitlabError(
            f"{name}: truncated: {n} bytes, but the header's shape {tuple(shape)} of {dtype.name} "
            f"needs {expected}. {_FIX}"
        )
    if n > expected:
        raise DigitlabError(
            f"{name}: {n - expected} unexpected bytes after the data (header shape {tuple(shape)} "
            f"of {dtype.name} needs {expected} bytes, the file has {n}). {_FIX}"
        )
    arr = np.frombuffer(buf, dtype=dtype, offset=header).reshape(shape)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a native-byte-order array; `DigitlabError` if malformed."""
    return parse_idx(read_bytes(path), name=str(path))


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX bytes (uncompressed) of `array`; dtype one of uint8, int8, int16, int32, float32, float64."""
    arr = np.asarray(array)
    code = _CODE_FOR_KIND.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None or arr.dtype.kind not in "uif" or (arr.dtype.kind == "u" and arr.dtype.itemsize != 1):
        raise DigitlabError(
            f"array of dtype {arr.dtype}: IDX stores only uint8, int8, int16, int32, float32 and "
            "float64. Convert it with .astype(...) first."
        )
    if arr.ndim == 0 or arr.ndim > 255:
        raise DigitlabError(f"array of shape {arr.shape}: IDX needs 1 to 255 dimensions. Reshape it first.")
    header = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file atomically; gzip when `compress`, or by default when `path` ends in .gz."""
    p = Path(path)
    data = encode_idx(array)
    if compress if compress is not None else p.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return atomic_write_bytes(p, data)
