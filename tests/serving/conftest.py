"""Fixtures of the service tests: a small deterministic predictor and a test client over it."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from digitlab.serving import create_app  # noqa: E402

MAX_BODY = 64 * 1024  # small limits keep the oversize tests cheap
MAX_PIXELS = 1_000_000


class LinearPredictor:
    """A fixed random linear classifier on pixels/255: probabilities are easy to recompute exactly.

    It records the batches it was given, so tests can check what the model actually saw.
    """

    def __init__(self, class_names: list[str], seed: int, model_id: str) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(28 * 28, len(class_names)))  # (784, C)
        self.class_names = tuple(class_names)
        self.model_id = model_id
        self.meta = {"dataset": model_id.split("-")[0], "class_names": list(class_names), "num_classes": len(class_names)}
        self.batches: list[np.ndarray] = []

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """uint8 (N, 28, 28) -> (N, C) softmax probabilities."""
        assert x.dtype == np.uint8 and x.shape[1:] == (28, 28), (x.dtype, x.shape)
        self.batches.append(x.copy())
        logits = (x.reshape(len(x), -1) / 255.0) @ self.weights  # (N, C)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture
def digits() -> LinearPredictor:
    return LinearPredictor([str(i) for i in range(10)], seed=0, model_id="mnist-linear-test")


@pytest.fixture
def fashion() -> LinearPredictor:
    return LinearPredictor(FASHION_NAMES, seed=1, model_id="fashion-linear-test")


@pytest.fixture
def client(digits: LinearPredictor, fashion: LinearPredictor) -> Iterator[TestClient]:
    app = create_app({"digits": digits, "fashion": fashion}, max_body_bytes=MAX_BODY, max_image_pixels=MAX_PIXELS)
    with TestClient(app) as c:
        yield c


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(trained_run: Path) -> Iterator[str]:
    """`digitlab serve` as a real uvicorn process on a free loopback port, serving `trained_run`
    as its default model and again as "second" (so the page shows its model picker)."""
    port = free_port()
    cmd = [sys.executable, "-m", "digitlab", "serve", str(trained_run), "--model", f"second={trained_run}",
           "--host", "127.0.0.1", "--port", str(port), "--max-body-mb", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"digitlab serve exited with {proc.returncode}:\n{proc.stdout.read().decode()[-3000:]}")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("digitlab serve did not answer /healthz within 120 s")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
