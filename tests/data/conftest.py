"""Fixtures for the data-layer tests: tiny IDX datasets, a registered tiny spec, a loopback HTTP server."""
from __future__ import annotations

import pytest
from datahelpers import Server, Tiny, make_tiny


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
    from digitlab.data import sources

    monkeypatch.setattr(sources, "HTTP_BACKOFF", 0.01)
