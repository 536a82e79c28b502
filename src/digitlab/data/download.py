"""Downloading one file over HTTP(S): bounded, retried with backoff, never leaving a partial file.

`download(url, dest_dir)` streams into a temp file and raises one `DigitlabError` naming the
URL and the cause (refusal, timeout, an HTTP error, an HTML page, a truncated or oversized body).
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from digitlab.data import idx
from digitlab.errors import DigitlabError

if TYPE_CHECKING:
    import requests

HTTP_TIMEOUT = (5.0, 60.0)  # (connect, read) seconds: fail fast on dead hosts, tolerate slow ones
HTTP_RETRIES = 2  # per request, with exponential backoff, on connection errors and 5xx
HTTP_BACKOFF = 0.5  # seconds; urllib3 sleeps backoff * 2**(retry - 1)
PROGRESS_MIN_BYTES = 1 << 20  # show a progress bar only for files larger than 1 MiB
MAX_DOWNLOAD_BYTES = idx.MAX_IDX_BYTES  # a download larger than any IDX file digitlab reads is refused


def http_session(retries: int | None = None, backoff: float | None = None) -> requests.Session:
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

    sess = session or http_session(retries)
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


def unreachable(reason: str) -> bool:
    """Whether `download`'s error `reason` says the host could not be reached (rather than one file failing)."""
    return "connection failed" in reason or "timed out" in reason
