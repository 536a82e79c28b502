"""The user cache of decompressed IDX files: where it is, and one dataset's folder in it (`CacheFolder`).

The cache (`DIGITLAB_CACHE`, default `platformdirs.user_cache_dir("digitlab")`) holds
*decompressed* IDX files, so a cached load is read + SHA-256 only. `CacheFolder` writes
atomically, fetches under a per-dataset `filelock.FileLock` (so concurrent processes neither
corrupt nor duplicate the cache), sweeps stale temp files, and turns a cache that cannot be
written into one warning (load) or one error (fetch).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from digitlab._io import atomic_open
from digitlab.data.registry import DatasetSpec
from digitlab.data.verify import Found
from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    from filelock import BaseFileLock

log = logging.getLogger("digitlab.data")

LOCK_TIMEOUT = 900.0  # seconds to wait for another process that is fetching the same dataset
STALE_TEMP_SECONDS = 3600.0  # temp files in the cache older than this are left-overs of a killed fetch


def cache_root() -> Path:
    """The cache folder: `DIGITLAB_CACHE`, else the platform's user cache folder for digitlab."""
    env = os.environ.get("DIGITLAB_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("digitlab"))


def cache_dir(spec: DatasetSpec) -> Path:
    """The cache folder of one dataset (decompressed IDX files)."""
    return cache_root() / spec.name


class CacheFolder:
    """One dataset's cache folder: the fetch lock, atomic stores, stale temp files, read-only folders.

    With `required` (a fetch), a folder that cannot be written is a `DigitlabError`: storing is
    the whole point. Otherwise (a load) it is one warning, and the files are used from where
    they were found without being cached.
    """

    def __init__(self, spec: DatasetSpec, *, required: bool = False) -> None:
        self.spec = spec
        self.dir = cache_dir(spec)
        self.required = required
        self.unwritable: str | None = None  # why the folder cannot be written, once that is known
        self._lock: BaseFileLock | None = None
        self._lock_tried = False

    def acquire(self) -> bool:
        """Take the per-dataset lock, waiting for another fetching process; True only when taken now.

        False when it was tried before, or the folder cannot be written (see the class).
        """
        if self._lock_tried:
            return False
        self._lock_tried = True
        from filelock import FileLock

        lock = FileLock(str(self.dir / ".lock"), timeout=LOCK_TIMEOUT)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            _acquire_waiting(lock, self.spec.name)
        except OSError as exc:
            self._cannot_write(exc)
            return False
        self._lock = lock
        self.sweep_stale()
        return True

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def store(self, found: Found) -> None:
        """Write verified `found` into the folder atomically (skipped once the folder proved read-only)."""
        if self.unwritable is not None:
            return
        try:
            with atomic_open(self.dir / self.spec.files[found.role].stem) as fh:
                fh.write(found.content)
        except OSError as exc:
            self._cannot_write(exc)

    def temp_dir(self) -> Path:
        """Where downloads wait for verification: the cache folder, or the system's temp folder if read-only."""
        return Path(tempfile.gettempdir()) if self.unwritable is not None else self.dir

    def sweep_stale(self) -> list[Path]:
        """Remove temp files (`.*.tmp`) older than `STALE_TEMP_SECONDS`, left by a killed fetch."""
        removed: list[Path] = []
        now = time.time()
        try:
            candidates = list(self.dir.glob(".*.tmp"))
        except OSError:
            return removed
        for path in candidates:
            try:
                if now - path.stat().st_mtime > STALE_TEMP_SECONDS:
                    path.unlink()
                    removed.append(path)
            except OSError:
                continue  # gone already, or not ours to remove
        if removed:
            log.info("cache %s: removed %d stale temp file(s) of an interrupted fetch", self.dir, len(removed))
        return removed

    def _cannot_write(self, exc: OSError) -> None:
        self.unwritable = exc.strerror or str(exc)
        fix = "Make it writable, or set DIGITLAB_CACHE to a writable folder."
        if self.required:
            raise DigitlabError(
                f"cache folder {self.dir}: cannot be written ({self.unwritable}), so the files of "
                f"{self.spec.name} could not be stored there. {fix}"
            ) from exc
        log.warning("cache folder %s: cannot be written (%s); using the files without caching them. %s",
                    self.dir, self.unwritable, fix)


def _acquire_waiting(lock: BaseFileLock, name: str) -> None:
    from filelock import Timeout

    try:
        lock.acquire(timeout=0.01)
    except Timeout:
        log.info("waiting for another process fetching %s (lock %s)", name, lock.lock_file)
        try:
            lock.acquire()
        except Timeout as exc:
            raise DigitlabError(
                f"cache lock {lock.lock_file}: still held after {LOCK_TIMEOUT:.0f} s by another process. "
                "If no other digitlab process is running, delete the lock file and retry."
            ) from exc
