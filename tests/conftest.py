"""Shared fixtures: where the reference data lives, and an isolated cache for every test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout: the reference copies tests and benchmarks may read.
SHARED_DATA = Path(os.environ.get("DIGITLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_MNIST = SHARED_DATA / "mnist"
SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty cache and no inherited data-location settings."""
    monkeypatch.setenv("DIGITLAB_CACHE", str(tmp_path_factory.mktemp("cache")))
    for var in ("DIGITLAB_DATA_DIR", "DIGITLAB_MIRRORS"):
        monkeypatch.delenv(var, raising=False)
    # Never let a test reach for the network's last resort unless it asks to.
    monkeypatch.setenv("DIGITLAB_OFFLINE", "1")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder of the four official MNIST files (gzip IDX) beside the checkout."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"reference MNIST not found at {SHARED_MNIST}")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path):
    """Full MNIST loaded once per session through the data layer's explicit-folder source."""
    from digitlab.data import load

    return load("mnist", data_dir=mnist_dir)
