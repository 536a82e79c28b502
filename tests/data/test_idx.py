"""IDX reader and writer: every element type, gzip or raw, and every kind of malformed file."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from digitlab.data import encode_idx, parse_idx, read_idx, write_idx
from digitlab.errors import DigitlabError
from support.datahelpers import idx_bytes  # the independent reference encoder

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_every_element_type(tmp_path, dtype, suffix):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_idx(tmp_path / f"a-idx3{suffix}", arr)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    assert (gzip.decompress(raw) if suffix else raw) == idx_bytes(arr)  # matches the reference encoding
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("dtype", DTYPES)
def test_reader_parses_reference_encoding(dtype):
    arr = np.arange(-6, 6).reshape(2, 6).astype(dtype)
    np.testing.assert_array_equal(parse_idx(bytearray(idx_bytes(arr))), arr)
    assert encode_idx(arr) == idx_bytes(arr)


def test_gzip_detected_by_content_not_name(tmp_path):
    arr = np.arange(10, dtype=np.uint8)
    (tmp_path / "labels.gz").write_bytes(idx_bytes(arr))  # raw despite the name
    (tmp_path / "labels").write_bytes(gzip.compress(idx_bytes(arr)))  # gzip without the suffix
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels"), arr)


def test_arrays_are_writable(tmp_path):
    write_idx(tmp_path / "x", np.zeros((2, 3), np.uint8))
    a = read_idx(tmp_path / "x")
    a[0, 0] = 1  # no "read-only" error, and torch.from_numpy will not warn
    assert a.flags.writeable


def test_real_mnist_labels_match_independent_parse(mnist_dir):
    path = mnist_dir / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    magic, n = struct.unpack(">II", raw[:8])
    assert magic == 0x801
    np.testing.assert_array_equal(read_idx(path), np.frombuffer(raw[8:], np.uint8))
    assert read_idx(path).shape == (n,)


GOOD = idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
CORRUPT = {
    "empty": (b"", "too short"),
    "html page": (b"<!DOCTYPE html><html><body>Not Found</body></html>", "HTML"),
    "bad magic": (b"\x01\x02" + GOOD[2:], "bad magic"),
    "unknown type": (b"\x00\x00\x07\x03" + GOOD[4:], "unknown IDX element type 0x07"),
    "zero dims": (b"\x00\x00\x08\x00", "0 dimensions"),
    "truncated header": (GOOD[:10], "truncated IDX header"),
    "truncated data": (GOOD[:-5], "truncated"),
    "trailing bytes": (GOOD + b"\x00\x00", "2 unexpected bytes"),
    "size mismatch": (GOOD[:4] + struct.pack(">3I", 5, 3, 4) + GOOD[16:], "truncated"),
    "corrupt gzip": (b"\x1f\x8b\x08\x00" + b"\xff" * 40, "gzip"),
    "truncated gzip": (gzip.compress(GOOD)[:-12], "gzip"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_malformed_files_raise_clear_errors(tmp_path, case):
    data, expected = CORRUPT[case]
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(data)
    with pytest.raises(DigitlabError) as err:
        read_idx(path)
    msg = str(err.value)
    assert str(path) in msg  # names the file
    assert expected in msg  # says what is wrong
    assert "fetch" in msg or "replace" in msg  # says what to do


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DigitlabError, match="cannot be read"):
        read_idx(tmp_path / "nope")


@pytest.mark.parametrize("dtype", [np.int64, np.uint16, np.bool_, np.complex64])
def test_writer_refuses_types_idx_cannot_hold(tmp_path, dtype):
    with pytest.raises(DigitlabError, match="IDX stores only"):
        write_idx(tmp_path / "x", np.zeros(3, dtype))
    assert not list(tmp_path.iterdir())  # nothing written
