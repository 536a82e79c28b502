"""A cache that cannot be written, and a cache left half-filled by a killed fetch.

A load says so in one warning and uses the files from where it found them; a fetch fails
(exit 1, one clear message) rather than printing a cache folder where nothing was stored.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import pytest

from digitlab.cli import main
from digitlab.data import fetch, load
from digitlab.data.cache import CacheFolder
from digitlab.errors import DigitlabError
from support.datahelpers import NAMES, cache_files, idx_bytes


def _cache_root() -> Path:
    return Path(os.environ["DIGITLAB_CACHE"])


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_load_with_a_read_only_empty_cache_uses_a_folder_mirror(tiny, tiny_spec, tmp_path, make_read_only, caplog):
    mirror = tiny.write(tmp_path / "mirror")
    make_read_only(_cache_root())
    with caplog.at_level(logging.WARNING, "digitlab.data"):
        ds = load("tiny", mirrors=[str(mirror)])
    assert ds.source == f"mirror {mirror}" and ds.sha256 == tiny.digests
    warned = [w for w in _warnings(caplog) if "cannot be written" in w]
    assert len(warned) == 1 and str(_cache_root() / "tiny") in warned[0] and "DIGITLAB_CACHE" in warned[0]
    assert not cache_files(_cache_root())


def test_load_with_a_read_only_cache_downloads_outside_it(tiny, tiny_spec, server, make_read_only, caplog):
    make_read_only(_cache_root())
    with caplog.at_level(logging.WARNING, "digitlab.data"):
        ds = load("tiny", mirrors=[server.url("good")], offline=False)
    assert ds.source == f"mirror {server.url('good')}" and ds.verified
    assert any("cannot be written" in w for w in _warnings(caplog))
    assert not cache_files(_cache_root())


def _damaged_cache(tiny, tmp_path) -> Path:
    cache = fetch("tiny", data_dir=tiny.write(tmp_path / "ref"))
    (cache / NAMES["test_labels"]).write_bytes(idx_bytes(np.zeros(6, np.uint8)))  # well-formed, wrong content
    return cache


def test_info_with_a_damaged_read_only_cache_uses_the_mirror(tiny, tiny_spec, tmp_path, make_read_only,
                                                             monkeypatch, capsys):
    """Used to die with PermissionError on the cache lock."""
    cache = _damaged_cache(tiny, tmp_path)
    monkeypatch.setenv("DIGITLAB_MIRRORS", str(tiny.write(tmp_path / "mirror")))
    make_read_only(cache)
    assert main(["data", "info", "tiny"]) == 0
    out = capsys.readouterr().out
    assert f"source    cache {cache} + mirror {tmp_path / 'mirror'}" in out


def test_info_with_a_damaged_read_only_cache_and_nothing_else_is_one_clear_error(
        tiny, tiny_spec, tmp_path, make_read_only, monkeypatch, capsys):
    cache = _damaged_cache(tiny, tmp_path)
    monkeypatch.setenv("DIGITLAB_MIRRORS", str(tmp_path / "no-such-mirror"))  # a fetch is tried, finds nothing
    make_read_only(cache)
    assert main(["data", "info", "tiny"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "PermissionError" not in err
    assert f"cache {cache}: test_labels: {cache / NAMES['test_labels']}: SHA-256" in err
    assert f"The cache folder {cache} cannot be written" in err and "DIGITLAB_CACHE" in err


def test_fetch_into_a_read_only_cache_fails_instead_of_printing_it(tiny, tiny_spec, tmp_path, make_read_only, capsys):
    ref = tiny.write(tmp_path / "ref")
    make_read_only(_cache_root())
    assert main(["data", "fetch", "tiny", "--data-dir", str(ref)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # no cache folder printed
    lines = [line for line in captured.err.splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"digitlab: error: cache folder {_cache_root() / 'tiny'}: "
                                                   "cannot be written")
    assert "DIGITLAB_CACHE" in lines[0]
    assert not cache_files(_cache_root())


def test_fetch_from_a_mirror_into_a_read_only_cache_fails(tiny, tiny_spec, server, make_read_only):
    make_read_only(_cache_root())
    with pytest.raises(DigitlabError, match="cannot be written"):
        fetch("tiny", mirrors=[server.url("good")], offline=False)
    assert not server.requests  # refused before downloading anything it could not keep


def test_fetch_with_a_complete_read_only_cache_succeeds(tiny, tiny_spec, tmp_path, make_read_only):
    cache = fetch("tiny", data_dir=tiny.write(tmp_path / "ref"))
    make_read_only(cache)
    assert fetch("tiny") == cache  # nothing to store: true success


def _age(path: Path, seconds: float) -> Path:
    path.write_bytes(b"partial")
    t = time.time() - seconds
    os.utime(path, (t, t))
    return path


@pytest.mark.parametrize("how", ["folder", "mirror"])
def test_stale_temp_files_are_removed_on_the_next_fetch(tiny, tiny_spec, tmp_path, server, how):
    cache = _cache_root() / "tiny"
    cache.mkdir(parents=True)
    stale = [_age(cache / ".download-k9x.tmp", 2 * 3600),  # a killed download
             _age(cache / f".{NAMES['train_images']}.a1b2.tmp", 3 * 3600)]  # a killed atomic write
    fresh = _age(cache / ".download-live.tmp", 60)  # another process, busy now: left alone
    if how == "folder":
        fetch("tiny", data_dir=tiny.write(tmp_path / "ref"))
    else:
        fetch("tiny", mirrors=[server.url("good")], offline=False)
    assert not any(p.exists() for p in stale)
    assert fresh.exists()
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == sorted(NAMES.values())


def test_stale_temp_files_are_swept_by_age_only(tmp_path, tiny_spec, monkeypatch):
    monkeypatch.setattr("digitlab.data.cache.STALE_TEMP_SECONDS", 10.0)
    folder = CacheFolder(tiny_spec)
    folder.dir.mkdir(parents=True)
    old, new = _age(folder.dir / ".x.tmp", 11), _age(folder.dir / ".y.tmp", 5)
    keep = _age(folder.dir / NAMES["train_labels"], 3600)  # only temp files are candidates
    assert folder.sweep_stale() == [old]
    assert new.exists() and keep.exists()
