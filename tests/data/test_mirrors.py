"""HTTP and folder mirrors against a loopback server: every fault skipped, nothing partial cached."""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from digitlab.data import fetch, load
from digitlab.errors import DigitlabError
from support.datahelpers import NAMES, cache_files

FAULTS = {
    "refused": "connection failed",
    "slow": "timed out",
    "html": "HTML page",
    "htmlbinary": "HTML",
    "truncated": "",  # requests/urllib3 word it variously; the file must simply not be accepted
    "wrong": "SHA-256",
}


def _cache_root() -> Path:
    return Path(os.environ["DIGITLAB_CACHE"])


def _assert_cache_holds_only_verified(tiny) -> None:
    files = cache_files(_cache_root())
    assert not [p for p in files if p.suffix == ".tmp" or p.name.startswith(".download")]
    for p in files:
        role = next(r for r, n in NAMES.items() if n == p.name)
        assert hashlib.sha256(p.read_bytes()).hexdigest() == tiny.digests[role]


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_faulty_mirror_is_skipped_and_nothing_reaches_the_cache(
        fault, tiny, tiny_spec, server, closed_port_url, fast_retries, caplog):
    url = closed_port_url if fault == "refused" else server.url(fault)
    server.slow_seconds = 1.0
    with caplog.at_level(logging.WARNING, "digitlab.data"), pytest.raises(DigitlabError) as err:
        fetch("tiny", mirrors=[url], offline=False, timeout=0.2)
    msg = str(err.value)
    assert f"mirror {url}" in msg and FAULTS[fault] in msg
    assert "To supply the files by hand" in msg
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("\n" not in w for w in warnings)  # one line each
    assert not [p for p in cache_files(_cache_root()) if not p.name.startswith(".")]
    _assert_cache_holds_only_verified(tiny)


def test_chain_skips_every_fault_and_accepts_recompressed_content(
        tiny, tiny_spec, server, closed_port_url, fast_retries, caplog):
    server.slow_seconds = 1.0
    bad = [closed_port_url] + [server.url(m) for m in ("slow", "html", "htmlbinary", "truncated", "wrong")]
    good = server.url("recompressed")
    with caplog.at_level(logging.WARNING, "digitlab.data"):
        cache = fetch("tiny", mirrors=bad + [good], offline=False, timeout=0.2)
    for url in bad:
        assert any(url in r.getMessage() for r in caplog.records), f"no warning for {url}"
    assert sorted(p.name for p in cache_files(_cache_root())) == sorted(NAMES.values())
    _assert_cache_holds_only_verified(tiny)
    ds = load("tiny")
    assert ds.source == f"cache {cache}" and ds.verified
    assert ds.sha256 == tiny.digests


def test_load_reports_the_mirror_then_the_cache(tiny, tiny_spec, server, monkeypatch):
    monkeypatch.delenv("DIGITLAB_OFFLINE")
    monkeypatch.setenv("DIGITLAB_MIRRORS", server.url("good"))
    ds = load("tiny")
    assert ds.source == f"mirror {server.url('good')}" and ds.verified
    assert load("tiny").source.startswith("cache ")
    assert sum(server.counts().values()) == 4  # the second load did not download


def test_env_mirrors_come_before_official_ones(tiny, tiny_spec, server, monkeypatch):
    from dataclasses import replace

    from digitlab.data import registry

    monkeypatch.setitem(registry.DATASETS, "tiny", replace(tiny_spec, mirrors=(server.url("good"),)))
    monkeypatch.delenv("DIGITLAB_OFFLINE")
    monkeypatch.setenv("DIGITLAB_MIRRORS", f" {server.url('wrong')} ,")
    assert load("tiny").source == f"mirror {server.url('good')}"
    order = [p.split("/")[1] for p in server.requests]
    assert order[0] == "wrong" and set(order) == {"wrong", "good"}


def test_folder_mirror_works_offline(tiny, tiny_spec, tmp_path, monkeypatch):
    folder = tiny.write(tmp_path / "mirror", gz=False)
    monkeypatch.setenv("DIGITLAB_MIRRORS", folder.as_uri())  # file:// URL; a plain path works too
    assert load("tiny").source == f"mirror {folder.as_uri()}"


def test_offline_skips_http_mirrors(tiny, tiny_spec, server):
    with pytest.raises(DigitlabError, match=r"skipped \(DIGITLAB_OFFLINE=1\)"):
        load("tiny", mirrors=[server.url("good")])
    assert not server.requests


def test_files_combine_across_sources(tiny, tiny_spec, tmp_path, caplog):
    """A partial explicit folder and a partial folder mirror together supply all four files."""
    full = tiny.write(tmp_path / "full")
    part_dir, mirror = tmp_path / "part", tmp_path / "mirror"
    part_dir.mkdir()
    mirror.mkdir()
    for i, name in enumerate(sorted(p.name for p in full.iterdir())):
        (full / name).rename((part_dir if i % 2 else mirror) / name)
    with caplog.at_level(logging.WARNING, "digitlab.data"):
        ds = load("tiny", data_dir=part_dir, mirrors=[str(tmp_path / "missing"), str(mirror)])
    assert set(ds.origins.values()) == {f"folder {part_dir}", f"mirror {mirror}"}
    assert ds.sha256 == tiny.digests
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # absent files are no fault


def test_content_encoding_gzip_is_accepted(tiny, tiny_spec, server):
    """Some servers label the .gz as Content-Encoding: gzip; the client then sees raw IDX bytes."""
    fetch("tiny", mirrors=[server.url("encoded")], offline=False)
    assert load("tiny").sha256 == tiny.digests


def test_progress_bar_for_large_files(tiny, tiny_spec, server, monkeypatch, capsys):
    from digitlab.data import download

    monkeypatch.setattr(download, "PROGRESS_MIN_BYTES", 1)
    fetch("tiny", mirrors=[server.url("good")], offline=False, progress=True)
    assert "train-images-idx3-ubyte.gz" in capsys.readouterr().err
