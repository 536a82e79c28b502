"""Fixtures for the data-layer tests: tiny IDX datasets, a registered tiny spec, a loopback HTTP server."""
from __future__ import annotations

import os

import pytest

from support.datahelpers import Server, Tiny, make_tiny


@pytest.fixture
def tiny() -> Tiny:
    return make_tiny()


@pytest.fixture
def tiny_spec(tiny: Tiny, monkeypatch: pytest.MonkeyPatch):
    """Register dataset "tiny" (checksums = the tiny arrays' reference digests) for this test."""
    from digitlab.data import registry

    spec = registry.DatasetSpec(
        name="tiny",
        class_names=tuple(str(i) for i in range(10)),
        files={r: registry.FileSpec(registry.STANDARD_FILES[r], tiny.digests[r]) for r in registry.ROLES},
    )
    monkeypatch.setitem(registry.DATASETS, "tiny", spec)
    return spec


@pytest.fixture
def server(tiny: Tiny):
    s = Server(tiny, make_tiny(seed=1))
    yield s
    s.close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL whose port was just closed: connections are refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/refused/"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep urllib3's retry backoff tiny so fault tests stay fast (retries still happen)."""
    from digitlab.data import download

    monkeypatch.setattr(download, "HTTP_BACKOFF", 0.01)


@pytest.fixture(params=["simulated"] + (["chmod"] if os.geteuid() != 0 else []))
def make_read_only(request, monkeypatch):
    """A function turning a folder read-only: simulated through os (works as root), or a real chmod.

    chmod does not stop root from writing, so as root (CI) only the simulated variant runs.
    """
    import stat

    from support.datahelpers import simulate_read_only

    changed = []

    def make(folder):
        folder.mkdir(parents=True, exist_ok=True)
        if request.param == "simulated":
            simulate_read_only(monkeypatch, folder)
        else:
            for d in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
                d.chmod(stat.S_IRUSR | stat.S_IXUSR)
                changed.append(d)
        return folder

    yield make
    for d in changed:
        d.chmod(stat.S_IRWXU)
