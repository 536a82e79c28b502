"""Hostile IDX files: gzip bombs, absurd headers, raw numpy errors: bounded work, DigitlabError naming the file."""
from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import idx, parse_idx, read_idx
from digitlab.errors import DigitlabError
from support.datahelpers import idx_bytes

MiB = 1 << 20
LABELS_HEADER = struct.pack(">HBBI", 0, 0x08, 1, 10)  # uint8 labels, shape (10,): an 18-byte file


def _bomb(header: bytes, mib_of_zeros: int, tail: bytes = b"") -> bytes:
    """gzip of `header` + 10 zero labels + `mib_of_zeros` MiB of zeros, then `tail`, built in milliseconds.

    After a full flush deflate starts afresh, so every 1 MiB block of zeros compresses to the
    same bytes: one block is compressed and repeated.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: gzip container
    head = c.compress(header + bytes(10)) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH) == block  # the repetition is exact
    return head + block * mib_of_zeros + tail


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """~1 MB on disk inflating to 1 GiB of zeros after a valid 18-byte labels file; corrupt at the very end.

    A reader that inflated it all would need >1 GiB and, at the end, report corrupt gzip;
    one that stops at the declared size + slack reports the trailing bytes at once.
    """
    data = _bomb(LABELS_HEADER, 1024, tail=b"\xff" * 64)
    d = zlib.decompressobj(31)
    start = d.decompress(data[:20_000], 3 * MiB)
    assert start[:18] == LABELS_HEADER + bytes(10) and not any(start[18:])  # it is what it claims
    path = tmp_path_factory.mktemp("bomb") / "train-labels-idx1-ubyte.gz"
    path.write_bytes(data)
    return path


def _peak(fn) -> tuple[object, int]:
    """(fn's exception or result, peak bytes Python allocated while it ran)."""
    tracemalloc.start()
    try:
        try:
            out: object = fn()
        except Exception as exc:  # noqa: BLE001  returned for the caller to check
            out = exc
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_stops_at_the_declared_size(bomb):
    assert bomb.stat().st_size < 2 * MiB
    err, peak = _peak(lambda: read_idx(bomb))
    assert isinstance(err, DigitlabError), err
    msg = str(err)
    assert str(bomb) in msg and f"more than {idx.TRAILING_SLACK} unexpected bytes" in msg
    assert "corrupt" not in msg  # it never reached the end of the 1 GiB
    assert peak < 4 * MiB, f"peak allocation {peak / MiB:.1f} MiB"


def test_gzip_bomb_in_memory_is_bounded_too(bomb):
    raw = bomb.read_bytes()
    err, peak = _peak(lambda: idx.decompress_if_gzip(raw, name="mirror body"))
    assert isinstance(err, DigitlabError) and "mirror body: more than" in str(err)
    assert peak < 4 * MiB


def test_bomb_under_a_header_declaring_too_much_is_refused_unread(tmp_path):
    header = struct.pack(">HBBIII", 0, 0x08, 3, 1 << 20, 28, 28)  # 1 Mi images: 822 MB, under the cap
    path = tmp_path / "big.gz"
    path.write_bytes(gzip.compress(header + bytes(1000)))
    err, peak = _peak(lambda: read_idx(path))
    assert isinstance(err, DigitlabError) and "truncated" in str(err)  # honest about a short file...
    assert peak < 4 * MiB  # ...without reserving the 822 MB the header claims first


@pytest.mark.parametrize("compress", [False, True])
def test_declared_size_over_the_cap_is_refused_before_reading(tmp_path, compress, monkeypatch):
    arr = np.arange(2000, dtype=np.uint8)
    data = idx_bytes(arr)
    path = tmp_path / "labels"
    path.write_bytes(gzip.compress(data) if compress else data)
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 1000)  # read at call time
    with pytest.raises(DigitlabError, match=r"2008 bytes, more than the 1000-byte limit") as err:
        read_idx(path)
    assert str(path) in str(err.value)
    np.testing.assert_array_equal(read_idx(path, max_bytes=2008), arr)  # the cap is configurable


def test_default_cap_refuses_shapes_no_dataset_has(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(struct.pack(">HBBIII", 0, 0x08, 3, 0xFFFFFFFF, 28, 28))  # 3.4 TB declared
    with pytest.raises(DigitlabError, match=f"more than the {idx.MAX_IDX_BYTES}-byte limit"):
        read_idx(path)


def test_raw_file_with_huge_trailing_garbage_is_not_read(tmp_path):
    path = tmp_path / "labels"
    with open(path, "wb") as fh:
        fh.write(LABELS_HEADER + bytes(10))
        fh.truncate(18 + 64 * MiB)  # sparse: 64 MiB of trailing zeros, nothing on disk
    err, peak = _peak(lambda: read_idx(path))
    assert isinstance(err, DigitlabError) and f"{64 * MiB} unexpected bytes" in str(err)
    assert peak < MiB


def test_small_trailing_garbage_is_counted_exactly_in_gzip(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(LABELS_HEADER + bytes(10) + b"xyz"))
    with pytest.raises(DigitlabError, match="3 unexpected bytes after the data"):
        read_idx(path)


HOSTILE_HEADERS = {
    # name: (bytes, what the message must say)
    "65 dimensions": (b"\x00\x00\x08\x41" + struct.pack(">65I", *[1] * 65) + b"\x00", "65 dimensions"),
    "255 dimensions": (b"\x00\x00\x08\xff" + struct.pack(">255I", *[1] * 255), "255 dimensions"),
    "product overflows int64": (b"\x00\x00\x08\x04" + struct.pack(">4I", *[0xFFFFFFFF] * 4), "needs"),
    "zero size, huge dims": (b"\x00\x00\x0d\x04" + struct.pack(">4I", 0, *[0xFFFFFFFF] * 3), "cannot be an array"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_headers_numpy_cannot_hold_are_digitlab_errors(tmp_path, case):
    """These raised numpy's ValueError (or wrapped int64 arithmetic) before."""
    data, expected = HOSTILE_HEADERS[case]
    with pytest.raises(DigitlabError, match=expected) as err:
        parse_idx(bytearray(data), name="hostile.idx")
    assert "hostile.idx" in str(err.value)
    path = tmp_path / "hostile"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(DigitlabError) as err:
        read_idx(path, max_bytes=1 << 62)  # past the size cap, so the header checks themselves are reached
    assert str(path) in str(err.value)


def test_encode_refuses_sizes_idx_cannot_store():
    with pytest.raises(DigitlabError, match="32-bit"):
        idx.encode_idx(np.empty((1 << 32, 0), np.uint8))  # zero bytes of data, but a 2**32 dimension
