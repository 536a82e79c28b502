"""The service on a real trained model: same answers as the Predictor, real process, real HTTP."""
from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from digitlab.inference import Predictor
from digitlab.serving import create_app
from digitlab.vision import load_image, preprocess_image


@pytest.fixture(scope="module")
def predictor(trained_run: Path) -> Predictor:
    return Predictor.load(trained_run)


@pytest.fixture(scope="module")
def real_client(trained_run: Path):
    with TestClient(create_app({"mnist": trained_run, "again": str(trained_run)})) as c:
        yield c


def png_of(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format="PNG")
    return buf.getvalue()


def test_model_endpoint_reports_metadata_and_test_metrics(real_client, predictor, trained_run):
    body = real_client.get("/api/model").json()
    assert body["default"] == "mnist" and [m["name"] for m in body["models"]] == ["mnist", "again"]
    info = body["models"][0]
    assert info["model_id"] == predictor.model_id
    assert info["backend"] == predictor.backend and info["backend"] in ("int8", "onnx", "torch")
    assert info["class_names"] == list(predictor.class_names)
    assert info["meta"]["model"] == predictor.meta.model.model_dump(mode="json")
    report = json.loads((trained_run / "report.json").read_text())  # `train` writes it
    assert info["test_metrics"]["accuracy"] == report["accuracy"]


def test_pixels_answers_match_the_predictor(real_client, predictor, mnist):
    x, y = mnist.x_test[:64], mnist.y_test[:64]
    expected = predictor.predict_proba(x)  # reference: the Predictor called directly, batch of 64
    got = np.array([real_client.post("/api/predict", json={"pixels": xi.tolist()}).json()["probabilities"]
                    for xi in x])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert (got.argmax(1) == y).mean() >= 0.9


def test_png_upload_is_preprocessed_like_digitlab_predict(real_client, predictor, mnist):
    # An MNIST digit enlarged and drawn dark on white, as a scanned or photographed digit would be.
    big = np.asarray(Image.fromarray(255 - mnist.x_test[0]).resize((140, 140), Image.Resampling.BILINEAR))
    data = png_of(big)
    r = real_client.post("/api/predict?model=again", files={"file": ("digit.png", data, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    x = preprocess_image(load_image(data))
    seen = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"].split(",", 1)[1]))))
    np.testing.assert_array_equal(seen, x)
    np.testing.assert_allclose(body["probabilities"], predictor.predict_proba(x[None])[0], atol=1e-5)
    assert body["label"] == int(mnist.y_test[0])
    assert body["model_id"] == predictor.model_id


def test_live_server_over_real_http(live_server, predictor, mnist):
    """The CLI-started uvicorn process: endpoints, a prediction, the body limit, errors as JSON."""
    with httpx.Client(base_url=live_server, timeout=30) as http:
        assert http.get("/healthz").json()["status"] == "ok"
        models = http.get("/api/model").json()["models"]
        assert [m["model_id"] for m in models] == [predictor.model_id] * 2
        assert http.get("/").headers["content-type"].startswith("text/html")
        assert http.get("/openapi.json").status_code == 200
        x = mnist.x_test[1]
        body = http.post("/api/predict", json={"pixels": x.tolist(), "top_k": 2}).json()
        np.testing.assert_allclose(body["probabilities"], predictor.predict_proba(x[None])[0], atol=1e-5)
        assert len(body["top_k"]) == 2
        r = http.post("/api/predict", content=b"\0" * (1024 * 1024 + 1), headers={"content-type": "image/png"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"

        def chunks():
            for _ in range(300):
                yield b"\0" * 4096

        r = http.post("/api/predict", content=chunks(), headers={"content-type": "image/png"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
        r = http.post("/api/predict", json={"pixels": [0] * 10})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_shape"
        assert http.get("/healthz").status_code == 200  # still serving after the refusals


def test_cli_api_and_python_agree_key_for_key(real_client, trained_run, tmp_path, mnist, capsys):
    """One image file through `digitlab predict --json`, the HTTP API and `Predictor.predict_image`:
    the same keys and the same values (the CLI adds `file`, the API `image` and `elapsed_ms`)."""
    from digitlab.cli import main
    from digitlab.inference import Predictor

    photo = np.asarray(Image.fromarray(255 - mnist.x_test[7]).resize((120, 120), Image.Resampling.BICUBIC))
    path = tmp_path / "digit.png"
    Image.fromarray(photo).save(path)
    assert main(["predict", str(trained_run), str(path), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    api = real_client.post("/api/predict", files={"file": ("digit.png", path.read_bytes(), "image/png")}).json()
    python = Predictor.load(trained_run).predict_image(path).model_dump()
    assert cli.pop("file") == str(path)
    assert api.pop("image").startswith("data:image/png;base64,") and api.pop("elapsed_ms") >= 0
    assert set(cli) == set(api) == set(python) == {"label", "class_name", "probability", "probabilities", "top_k",
                                                   "rejected", "reason", "model_id"}
    for key in python:
        if key in ("probability", "probabilities", "top_k"):
            continue
        assert cli[key] == api[key] == python[key], key
    np.testing.assert_allclose(api["probabilities"], python["probabilities"], atol=1e-6)
    np.testing.assert_allclose(cli["probabilities"], python["probabilities"], atol=1e-6)
    labels = [[t["label"] for t in answer["top_k"]] for answer in (cli, api, python)]
    assert labels[0] == labels[1] == labels[2]
