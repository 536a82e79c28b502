"""Property-based tests of the IDX reader: any bytes give an array or a DigitlabError, never anything else.

Inputs: random bytes, random headers over random bodies, and valid files mutated byte by byte
(raw and gzip, from memory and from disk). Bounded work: what the reader keeps is never more
than the header declares plus `TRAILING_SLACK`, and each example has a deadline.
"""
from __future__ import annotations

import gzip
import struct
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from digitlab.data import encode_idx, idx, parse_idx, read_idx
from digitlab.errors import DigitlabError
from support.datahelpers import idx_bytes  # the independent reference encoder

PROPERTY = settings(max_examples=200, deadline=timedelta(seconds=2), derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
CODES = sorted(idx.IDX_DTYPES)
DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.fixture(scope="module")
def scratch() -> Path:
    """One file path reused by every example (Hypothesis runs examples in one fixture scope)."""
    with tempfile.TemporaryDirectory(prefix="idx-prop-") as d:
        yield Path(d) / "train-images-idx3-ubyte"


def _header(code: int, dims: list[int]) -> bytes:
    return bytes([0, 0, code, len(dims) % 256]) + b"".join(struct.pack(">I", d) for d in dims)


headers = st.builds(
    _header,
    st.one_of(st.sampled_from(CODES), st.integers(0, 255)),
    st.lists(st.one_of(st.integers(0, 4), st.integers(0, 0xFFFFFFFF)), min_size=0, max_size=70),
)
small_arrays = st.sampled_from(DTYPES).flatmap(
    lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))


@st.composite
def mutated(draw, base: st.SearchStrategy[bytes]) -> bytes:
    """`base` with a few bytes flipped, cut, inserted or deleted."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            data[min(at, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[min(at, len(data) - 1)]
    return bytes(data)


def _check(outcome: object, content_len: int | None = None, header_src: bytes | None = None) -> None:
    """An ndarray, or a DigitlabError; and what was kept stays within the declared size + slack."""
    assert isinstance(outcome, (np.ndarray, DigitlabError)), f"{type(outcome).__name__}: {outcome}"
    if content_len is not None and header_src is not None and content_len > 4 + 4 * 255:
        declared = idx.parse_header(header_src).nbytes
        assert content_len <= declared + idx.TRAILING_SLACK


def _parse(data: bytes) -> object:
    try:
        return parse_idx(bytearray(data), name="<prop>")
    except DigitlabError as exc:
        return exc


def _read_file(path: Path, data: bytes) -> object:
    path.write_bytes(data)
    try:
        content = idx.read_bytes(path)
    except DigitlabError as exc:
        return exc
    _check(np.empty(0), len(content), bytes(content[: 4 + 4 * 255]))
    try:
        return parse_idx(content, name=str(path))
    except DigitlabError as exc:
        return exc


@PROPERTY
@given(st.binary(max_size=512))
def test_random_bytes(data):
    _check(_parse(data))


@PROPERTY
@given(headers, st.binary(max_size=256))
def test_random_headers_over_random_bodies(head, body):
    out = _parse(head + body)
    _check(out)
    if isinstance(out, np.ndarray):  # then the header was honest: the body is exactly the data
        assert out.size * out.itemsize == len(body)


@PROPERTY
@given(mutated(small_arrays.map(idx_bytes)))
def test_mutated_raw_files(scratch, data):
    _check(_read_file(scratch, data))


@PROPERTY
@given(mutated(small_arrays.map(lambda a: gzip.compress(idx_bytes(a), mtime=0))))
def test_mutated_gzip_files(scratch, data):
    _check(_read_file(scratch, data))


@PROPERTY
@given(mutated(small_arrays.map(idx_bytes)).map(lambda d: gzip.compress(d, mtime=0)))
def test_gzip_of_mutated_content(scratch, data):
    """Valid gzip whose content is damaged: the header checks, not the gzip layer, must catch it."""
    _check(_read_file(scratch, data))


@PROPERTY
@given(small_arrays)
def test_round_trip_encode_then_parse(arr):
    data = encode_idx(arr)
    assert data == idx_bytes(arr)  # the same bytes as the independent reference encoder
    back = parse_idx(bytearray(data))
    assert back.dtype == arr.dtype and back.shape == arr.shape and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)  # NaNs compare equal here


@PROPERTY
@given(small_arrays, st.booleans())
def test_round_trip_through_files(scratch, arr, compress):
    idx.write_idx(scratch, arr, compress=compress)
    np.testing.assert_array_equal(read_idx(scratch), arr)
