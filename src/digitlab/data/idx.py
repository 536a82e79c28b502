"""IDX files (the MNIST container format): a validating reader and a writer, gzip or raw.

Layout: two zero bytes, one element-type byte, one dimension-count byte, then one
big-endian uint32 per dimension, then the elements, big-endian, row-major.

Reading is bounded by the header: the header is read (and decompressed) first and
validated, then exactly the bytes it declares, plus at most `TRAILING_SLACK` bytes to
report trailing garbage. A header declaring more than `MAX_IDX_BYTES` is refused before
anything else is read, so a gzip bomb costs neither memory nor time.
"""
from __future__ import annotations

import gzip
import io
import math
import os
import struct
import zlib
from dataclasses import dataclass
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
# Largest IDX file (header + data) the reader accepts, read at call time (tests may patch it).
# 1 GiB: 20x the largest MNIST-family file (MNIST's train images, 47 MB), and EMNIST ByClass's
# images (~640 MB) still fit. Pass `max_bytes=` to read larger files.
MAX_IDX_BYTES = 1 << 30
# Bytes read past the declared size to say how many trailing bytes a file has; past that, reading stops.
TRAILING_SLACK = 1 << 16
MAX_DIMS = 64  # numpy's limit on array dimensions
_CHUNK = 1 << 20  # decompressed bytes taken per read (1 MiB: what a lying header can make us reserve)
_FIX = "Delete it and fetch it again (`digitlab data fetch NAME`), or supply a good copy."


@dataclass(frozen=True)
class IdxHeader:
    """A validated IDX header: element type and shape, and the sizes they imply."""

    dtype: np.dtype  # big-endian, as stored
    shape: tuple[int, ...]

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.shape)

    @property
    def nbytes(self) -> int:
        """The exact length of the whole file (header + data) the header declares."""
        return self.header_bytes + math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"header shape {self.shape} of {self.dtype.name} needs {self.nbytes} bytes"


def _describe_start(buf: bytes | bytearray | memoryview) -> str:
    head = bytes(buf[:64]).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
        return " (it looks like an HTML/XML page, e.g. a server's error page, not data)"
    return ""


def parse_header(buf: bytes | bytearray | memoryview, *, name: str = "<bytes>",
                 max_bytes: int | None = None) -> IdxHeader:
    """Validate the IDX header at the start of `buf`; `DigitlabError` naming `name` if malformed.

    `buf` needs only the header (4 + 4 * ndim bytes). With `max_bytes`, a header declaring a
    larger file is refused too.
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
    if not 1 <= ndim <= MAX_DIMS:
        raise DigitlabError(
            f"{name}: IDX header declares {ndim} dimensions; digitlab reads 1 to {MAX_DIMS} "
            f"(numpy's limit). {_FIX}"
        )
    header = IdxHeader(IDX_DTYPES[code], struct.unpack_from(f">{ndim}I", buf, 4) if n >= 4 + 4 * ndim else ())
    if not header.shape:
        raise DigitlabError(
            f"{name}: truncated IDX header: {n} bytes, but {ndim} dimensions need {4 + 4 * ndim}. {_FIX}"
        )
    if max_bytes is not None and header.nbytes > max_bytes:
        raise DigitlabError(
            f"{name}: IDX header declares shape {header.shape} of {header.dtype.name}, {header.nbytes} bytes, "
            f"more than the {max_bytes}-byte limit (digitlab.data.idx.MAX_IDX_BYTES): not reading it. "
            f"Is this the right file? Pass max_bytes= to read_idx for larger files. {_FIX}"
        )
    return header


def _trailing_error(name: str, header: IdxHeader, extra: int, *, exact: bool) -> DigitlabError:
    count = f"{extra}" if exact else f"more than {extra}"
    has = f"the file has {header.nbytes + extra}" if exact else "reading stopped there"
    return DigitlabError(
        f"{name}: {count} unexpected bytes after the data ({header.describe()}, {has}). {_FIX}"
    )


def parse_idx(buf: bytes | bytearray, *, name: str = "<bytes>") -> np.ndarray:
    """Parse decompressed IDX content into an array of native byte order, shape from the header.

    Validates the magic number, element type, dimension count and that the sizes in the
    header account for exactly the bytes present. A `bytearray` input yields a writable
    array sharing its memory (no copy for single-byte element types).
    """
    header = parse_header(buf, name=name)
    n, expected = len(buf), header.nbytes
    if n < expected:
        raise DigitlabError(
            f"{name}: truncated: {n} bytes, but the header's shape {header.shape} of {header.dtype.name} "
            f"needs {expected}. {_FIX}"
        )
    if n > expected:
        raise _trailing_error(name, header, n - expected, exact=True)
    try:
        arr = np.frombuffer(buf, dtype=header.dtype, offset=header.header_bytes).reshape(header.shape)
    except ValueError as exc:  # e.g. zero elements but dimensions whose product numpy cannot hold
        raise DigitlabError(f"{name}: IDX shape {header.shape} cannot be an array ({exc}). {_FIX}") from exc
    if header.dtype.itemsize > 1:
        arr = arr.astype(header.dtype.newbyteorder("="))
    return arr


def _read_upto(fh: io.BufferedIOBase, n: int) -> bytes:
    """Up to `n` bytes from `fh`: fewer only at the end of the stream."""
    parts, got = [], 0
    while got < n:
        chunk = fh.read(min(n - got, _CHUNK))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def _read_header(fh: io.BufferedIOBase, name: str, max_bytes: int) -> tuple[bytes, IdxHeader | None]:
    """(bytes read, validated header) from the start of `fh`; header None when the stream ends inside it."""
    head = _read_upto(fh, 4)
    if len(head) < 4:
        return head, None  # parse_idx words the error
    plausible = head[:2] == b"\0\0" and head[2] in IDX_DTYPES and 1 <= head[3] <= MAX_DIMS
    head += _read_upto(fh, 4 * head[3] if plausible else 60)  # else enough to tell an HTML page
    if plausible and len(head) < 4 + 4 * head[3]:
        return head, None
    return head, parse_header(head, name=name, max_bytes=max_bytes)  # raises unless plausible


def _read_stream(fh: io.BufferedIOBase, name: str, max_bytes: int) -> bytearray:
    """IDX content from a stream of unknown length: at most the declared size + TRAILING_SLACK."""
    head, header = _read_header(fh, name, max_bytes)
    buf = bytearray(head)
    if header is None:
        return buf
    total = header.nbytes
    while len(buf) < total:
        chunk = fh.read(min(_CHUNK, total - len(buf)))
        if not chunk:
            return buf  # truncated: parse_idx says so
        buf += chunk
    extra = fh.read(TRAILING_SLACK + 1)
    if len(extra) > TRAILING_SLACK:
        raise _trailing_error(name, header, TRAILING_SLACK, exact=False)
    buf += extra
    return buf


def _read_raw(fh: io.BufferedIOBase, size: int, name: str, max_bytes: int) -> bytearray:
    """IDX content of an uncompressed file of `size` bytes, read in one go once the header checks out."""
    head, header = _read_header(fh, name, max_bytes)
    if header is not None and size > header.nbytes + TRAILING_SLACK:
        raise _trailing_error(name, header, size - header.nbytes, exact=True)
    if header is None:
        return bytearray(head)
    buf = bytearray(size)
    fh.seek(0)
    got = fh.readinto(buf)
    if got != size:  # the file changed while we read it
        del buf[got:]
    return buf


def _gzip_stream(fileobj: io.BufferedIOBase, name: str, max_bytes: int) -> bytearray:
    try:
        with gzip.GzipFile(fileobj=fileobj, mode="rb") as gz:
            return _read_stream(gz, name, max_bytes)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DigitlabError(f"{name}: corrupt or truncated gzip data ({exc}). {_FIX}") from exc


def decompress_if_gzip(raw: bytes | bytearray, *, name: str = "<bytes>", max_bytes: int | None = None) -> bytearray:
    """The decompressed content of `raw` if it is gzip (detected by magic, not by name), else `raw`.

    Decompression stops at the size the IDX header declares (`max_bytes`, default
    `MAX_IDX_BYTES`, at most). Returns a fresh writable bytearray so arrays made from it are
    writable without a copy.
    """
    if bytes(raw[:2]) != GZIP_MAGIC:
        return raw if isinstance(raw, bytearray) else bytearray(raw)
    return _gzip_stream(io.BytesIO(raw), name, MAX_IDX_BYTES if max_bytes is None else max_bytes)


def read_bytes(path: str | os.PathLike[str], *, max_bytes: int | None = None, name: str | None = None) -> bytearray:
    """The decompressed IDX content of the file at `path` (gzip or raw) as a writable bytearray.

    Bounded by the header: at most the size it declares plus `TRAILING_SLACK` bytes is read or
    decompressed; a header declaring more than `max_bytes` (default `MAX_IDX_BYTES`) or a
    malformed one raises `DigitlabError` (naming `name`, default the path) before the rest is read.
    """
    p = Path(path)
    label = str(p) if name is None else name
    limit = MAX_IDX_BYTES if max_bytes is None else max_bytes
    try:
        with open(p, "rb") as fh:
            compressed = fh.read(2) == GZIP_MAGIC
            fh.seek(0)
            if compressed:
                return _gzip_stream(fh, label, limit)
            return _read_raw(fh, os.fstat(fh.fileno()).st_size, label, limit)
    except OSError as exc:
        raise DigitlabError(f"{label}: cannot be read ({exc.strerror or exc}). "
                            "Check the path and its permissions.") from exc


def read_idx(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (gzip or raw) into a native-byte-order array; `DigitlabError` if malformed.

    Files declaring more than `max_bytes` (default `MAX_IDX_BYTES`, 1 GiB) are refused unread.
    """
    return parse_idx(read_bytes(path, max_bytes=max_bytes), name=str(path))


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
    if max(arr.shape) > 0xFFFFFFFF:
        raise DigitlabError(f"array of shape {arr.shape}: IDX sizes are 32-bit, at most {0xFFFFFFFF} per dimension.")
    header = struct.pack(f">HBB{arr.ndim}I", 0, code, arr.ndim, *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write `array` as an IDX file atomically; gzip when `compress`, or by default when `path` ends in .gz."""
    p = Path(path)
    data = encode_idx(array)
    if compress if compress is not None else p.suffix == ".gz":
        data = gzip.compress(data, compresslevel=6, mtime=0)
    return atomic_write_bytes(p, data)
