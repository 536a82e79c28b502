"""Fixtures of the service tests: a small deterministic predictor and a test client over it."""
from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from digitlab.checkpoints import ModelMeta, ModelSpec, WeightsRef
from digitlab.inference import Predictor  # noqa: E402
from digitlab.serving import create_app  # noqa: E402

MAX_BODY = 64 * 1024  # small limits keep the oversize tests cheap
MAX_PIXELS = 1_000_000


class LinearSession:
    """A stand-in for an ONNX Runtime session: a fixed random linear classifier on the model input.

    It records the batches it was given (as uint8 (N, 28, 28) pixels), so tests can check what
    the model actually saw; its logits are easy to recompute exactly.
    """

    def __init__(self, num_classes: int, seed: int) -> None:
        self.weights = np.random.default_rng(seed).normal(size=(28 * 28, num_classes))  # (784, C) float64
        self.batches: list[np.ndarray] = []

    def run(self, output_names: list[str], feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feed["input"]  # float32 (N, 1, 28, 28) = pixels / 255
        assert x.dtype == np.float32 and x.shape[1:] == (1, 28, 28), (x.dtype, x.shape)
        self.batches.append(np.rint(x[:, 0] * 255).astype(np.uint8))
        # float64 product, float32 logits: the same value whatever the batch it arrives in
        return [(x.reshape(len(x), -1).astype(np.float64) @ self.weights).astype(np.float32)]  # (N, C)


def linear_predictor(class_names: list[str], seed: int, model_id: str, dataset: str, tmp: Path) -> Predictor:
    """A real Predictor whose "ONNX session" is a LinearSession (`.session.batches` records its inputs)."""
    session = LinearSession(len(class_names), seed)
    # model_construct: `model_id` names no registry model (a stand-in needs none), so it skips that check
    meta = ModelMeta.model_construct(
        format=1, model=ModelSpec.model_construct(name=model_id, config={}), dataset=dataset,
        class_names=list(class_names), num_classes=len(class_names),
        weights=WeightsRef(sha256=hashlib.sha256(model_id.encode()).hexdigest()))
    predictor = Predictor(backend="onnx", meta=meta, run_dir=tmp, session=session)
    predictor.session = session  # type: ignore[attr-defined]
    return predictor


FASHION_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture
def digits(tmp_path: Path) -> Predictor:
    return linear_predictor([str(i) for i in range(10)], 0, "linear", "mnist", tmp_path / "digits")


@pytest.fixture
def fashion(tmp_path: Path) -> Predictor:
    return linear_predictor(FASHION_NAMES, 1, "linear2", "fashion-mnist", tmp_path / "fashion")


@pytest.fixture
def client(digits: Predictor, fashion: Predictor) -> Iterator[TestClient]:
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


# -- the drawing page's browser tests -------------------------------------------------------------

@pytest.fixture(scope="session")
def reject_all_fashion_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained Fashion-MNIST `softmax` run whose not-a-... threshold rejects every picture.

    Its energy score -logsumexp(logits) is always above -1e6, so every prediction comes back
    `rejected` with reason "not a piece of clothing": a real server answer for the page's
    rejected state, whatever the drawing."""
    from digitlab.checkpoints import save_checkpoint
    from digitlab.models import build_model

    run_dir = tmp_path_factory.mktemp("fashion_reject_all")
    save_checkpoint(run_dir, build_model("softmax"), {
        "class_names": FASHION_NAMES, "dataset": "fashion-mnist",
        "rejection": {"method": "energy", "threshold": -1e6, "temperature": 1.0}})
    return run_dir


@contextmanager
def _serve(args: list[str], log: Path) -> Iterator[str]:
    """`digitlab serve ARGS --port 0` for the `with` block: its base URL, once /healthz answers."""
    env = {**os.environ, "DIGITLAB_CACHE": str(log.parent / "cache"), "DIGITLAB_OFFLINE": "1"}
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", *args, "--port", "0"],
                                stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    try:
        banner = proc.stdout.readline()  # "digitlab: serving NAME at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        if "http://127.0.0.1:" not in banner:
            pytest.fail(f"digitlab serve did not start: {banner!r}\n{log.read_text()[-3000:]}")
        url = "http://127.0.0.1:" + banner.split("http://127.0.0.1:", 1)[1].split("/", 1)[0]
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"digitlab serve did not answer /healthz:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


@pytest.fixture(scope="module")
def page_server(reject_all_fashion_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`digitlab serve` of the bundled default model (as "mnist", the default) and of
    `reject_all_fashion_run` (as "fashion", so the page shows its model picker); yields the base URL."""
    from digitlab.pretrained import bundled_model

    log = tmp_path_factory.mktemp("page_server") / "serve.log"
    with _serve([str(bundled_model()), "--model", f"fashion={reject_all_fashion_run}"], log) as url:
        yield url


PAGE_TOKEN = "digitlab-page-test-token-0123456789"


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`digitlab serve` of the bundled default model with `--token`; yields (base URL, token)."""
    from digitlab.pretrained import bundled_model

    log = tmp_path_factory.mktemp("token_server") / "serve.log"
    with _serve([str(bundled_model()), "--token", PAGE_TOKEN], log) as url:
        yield url, PAGE_TOKEN
