"""HTTP API of the recognition service: every endpoint, every accepted input, every refused one."""
from __future__ import annotations

import base64
import io
import json
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from digitlab.vision import load_image, preprocess_image

MAX_BODY = 64 * 1024  # the client fixture's limit (conftest.py)
CLOSE = {"rtol": 1e-5, "atol": 1e-6}  # a float32 model, a float64 answer


def png_bytes(array: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3) -> PNG file bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def drawn_seven(size: int = 200) -> np.ndarray:
    """A white '7' on black, drawn with thick lines: uint8 (size, size)."""
    from PIL import ImageDraw

    image = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(image)
    s = size / 200
    draw.line([(50 * s, 40 * s), (150 * s, 40 * s), (90 * s, 170 * s)], fill=255, width=int(16 * s), joint="curve")
    return np.asarray(image)


def decode_seen(data_url: str) -> np.ndarray:
    """The response's `image` (a PNG data URL) -> uint8 (28, 28)."""
    assert data_url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))))


def assert_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code, error
    assert len(error["message"]) > 20  # says what was wrong and what to do
    return error["message"]


def random_digit(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(28, 28), dtype=np.uint8)


# --- the small endpoints ----------------------------------------------------------------------

def test_healthz(client):
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "models": ["digits", "fashion"]}


def test_model_lists_every_served_model(client, digits, fashion):
    body = client.get("/api/model").json()
    assert body["default"] == "digits"
    by_name = {m["name"]: m for m in body["models"]}
    assert set(by_name) == {"digits", "fashion"}
    assert by_name["fashion"]["class_names"] == list(fashion.class_names)
    assert by_name["digits"]["model_id"] == digits.model_id
    assert by_name["digits"]["num_classes"] == 10
    assert by_name["digits"]["test_metrics"] is None  # no run directory behind these predictors


def test_openapi_and_offline_docs(client):
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/model", "/healthz"} <= set(spec["paths"])
    body = spec["paths"]["/api/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json", "image/png"} <= set(body)
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/openapi.json" in docs.text
    assert "cdn" not in docs.text.lower() and "https://" not in docs.text
    assert client.get("/redoc").status_code == 404


def test_unknown_route_and_method_answer_json_errors(client):
    assert_error(client.get("/api/nothing"), 404, "not_found")
    assert_error(client.get("/api/predict"), 405, "method_not_allowed")


# --- pixels (already MNIST format, no preprocessing) ------------------------------------------

@pytest.mark.parametrize("layout", ["flat", "rows"])
def test_predict_pixels_0_255(client, digits, layout):
    x = random_digit()
    pixels = x.reshape(-1).tolist() if layout == "flat" else x.tolist()
    r = client.post("/api/predict", json={"pixels": pixels})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = digits.predict_proba(x[None])[0]  # reference: the model itself on the same input
    np.testing.assert_allclose(body["probabilities"], expected, **CLOSE)
    assert body["label"] == int(np.argmax(expected)) and body["probability"] == max(body["probabilities"])
    assert body["class_name"] == str(int(np.argmax(expected)))
    assert body["model_id"] == digits.model_id and body["rejected"] is False and body["reason"] is None
    assert set(body) == {"label", "class_name", "probability", "probabilities", "top_k", "rejected", "reason",
                         "model_id", "image", "elapsed_ms"}
    np.testing.assert_array_equal(decode_seen(body["image"]), x)
    np.testing.assert_array_equal(digits.session.batches[0][0], x)  # the model saw the pixels unchanged
    assert body["elapsed_ms"] >= 0


def test_predict_pixels_floats_0_1(client, digits):
    x = random_digit(4)
    r = client.post("/api/predict", json={"pixels": (x / 255.0).tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(digits.session.batches[-1][0], x)  # x/255*255 rounds back to x


def test_scale_forces_interpretation(client, digits):
    ones = np.zeros((28, 28), dtype=int)
    ones[10:18, 12:16] = 1
    assert client.post("/api/predict", json={"pixels": ones.tolist(), "scale": 1}).status_code == 200
    np.testing.assert_array_equal(digits.session.batches[-1][0], ones * 255)
    assert client.post("/api/predict", json={"pixels": ones.tolist()}).status_code == 200
    np.testing.assert_array_equal(digits.session.batches[-1][0], ones)  # integers default to 0..255


def test_top_k_and_probabilities_sum_to_one(client):
    body = client.post("/api/predict", params={"top_k": 5}, json={"pixels": random_digit().tolist()}).json()
    probs = np.array(body["probabilities"])
    assert probs.shape == (10,) and abs(probs.sum() - 1) < 1e-9
    top = body["top_k"]
    assert [t["label"] for t in top] == list(np.argsort(-probs, kind="stable")[:5])
    assert [t["probability"] for t in top] == sorted((t["probability"] for t in top), reverse=True)
    assert top[0]["label"] == body["label"] and top[0]["class_name"] == body["class_name"]
    assert len(client.post("/api/predict", json={"pixels": random_digit().tolist(), "top_k": 2}).json()["top_k"]) == 2
    # more than there are classes: all of them
    assert len(client.post("/api/predict?top_k=50", json={"pixels": random_digit().tolist()}).json()["top_k"]) == 10


def test_model_chosen_per_request(client, fashion):
    x = random_digit()
    for r in (client.post("/api/predict", params={"model": "fashion"}, json={"pixels": x.tolist()}),
              client.post("/api/predict", json={"pixels": x.tolist(), "model": "fashion"})):
        body = r.json()
        assert body["model_id"] == fashion.model_id
        expected = fashion.predict_proba(x[None])[0]
        np.testing.assert_allclose(body["probabilities"], expected, **CLOSE)
        assert body["class_name"] == fashion.class_names[int(np.argmax(expected))]
        assert {t["class_name"] for t in body["top_k"]} <= set(fashion.class_names)


def test_concurrent_requests_share_batches_and_get_their_own_answers(digits, fashion):
    import anyio
    import httpx

    from digitlab.serving import create_app

    app = create_app({"digits": digits})
    images = [random_digit(seed) for seed in range(40)]
    answers: dict[int, list[float]] = {}

    async def main() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            async def one(i: int) -> None:
                r = await http.post("/api/predict", json={"pixels": images[i].tolist()})
                answers[i] = r.json()["probabilities"]
            async with anyio.create_task_group() as tg:
                for i in range(len(images)):
                    tg.start_soon(one, i)

    anyio.run(main)
    for i, x in enumerate(images):
        np.testing.assert_allclose(answers[i], digits.predict_proba(x[None])[0], **CLOSE)
    sizes = [len(b) for b in digits.session.batches[: -len(images)]]
    assert sum(sizes) == len(images) and max(sizes) > 1  # several requests went through one forward pass


# --- image files (preprocessed by digitlab.inference.preprocess_image) -----------------------

def reference_input(data: bytes) -> np.ndarray:
    """What the service must give the model for an image file: the one preprocessing, called here directly."""
    return preprocess_image(load_image(data))


def test_predict_png_upload_uses_the_one_preprocessing(client, digits):
    data = png_bytes(255 - drawn_seven())  # dark ink on white: preprocessing must invert it
    r = client.post("/api/predict", files={"file": ("seven.png", data, "image/png")}, data={"top_k": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected_x = reference_input(data)
    np.testing.assert_array_equal(decode_seen(body["image"]), expected_x)
    np.testing.assert_array_equal(digits.session.batches[-1][0], expected_x)
    np.testing.assert_allclose(body["probabilities"], digits.predict_proba(expected_x[None])[0], **CLOSE)
    assert len(body["top_k"]) == 4


def test_predict_jpeg_upload_with_model_form_field(client, fashion):
    buf = io.BytesIO()
    Image.fromarray(drawn_seven()).convert("RGB").save(buf, format="JPEG", quality=90)
    r = client.post("/api/predict", files={"file": ("seven.jpg", buf.getvalue(), "image/jpeg")},
                    data={"model": "fashion"})
    assert r.status_code == 200, r.text
    assert r.json()["model_id"] == fashion.model_id  # fashion-mnist's own preprocessing
    np.testing.assert_array_equal(decode_seen(r.json()["image"]),
                                  preprocess_image(load_image(buf.getvalue()), profile="fashion"))


def test_each_model_gets_its_own_datasets_preprocessing(digits, fashion):
    from fastapi.testclient import TestClient

    from digitlab.serving import create_app

    data = png_bytes(255 - drawn_seven())
    app = create_app({"digits": digits, "clothes": fashion})  # fashion's model.json names fashion-mnist
    with TestClient(app) as c:
        for name, profile in (("digits", "mnist"), ("clothes", "fashion")):
            r = c.post("/api/predict", files={"file": ("seven.png", data, "image/png")}, data={"model": name})
            assert r.status_code == 200, r.text
            want = preprocess_image(load_image(data), profile=profile)
            np.testing.assert_array_equal(decode_seen(r.json()["image"]), want)
    assert not np.array_equal(preprocess_image(load_image(data), profile="fashion"), reference_input(data))


def test_predict_raw_png_body(client):
    data = png_bytes(drawn_seven())
    r = client.post("/api/predict", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(decode_seen(r.json()["image"]), reference_input(data))


@pytest.mark.parametrize("form", ["data_url", "raw"])
def test_predict_base64_json(client, form):
    data = png_bytes(drawn_seven())
    b64 = base64.b64encode(data).decode()
    image = f"data:image/png;base64,{b64}" if form == "data_url" else b64
    r = client.post("/api/predict", json={"image": image})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(decode_seen(r.json()["image"]), reference_input(data))


# --- refused input: always a 4xx JSON error, never a 500 -------------------------------------

def test_body_over_limit_by_content_length(client):
    big = b"0" * (MAX_BODY + 1)
    message = assert_error(client.post("/api/predict", content=big, headers={"content-type": "image/png"}),
                           413, "body_too_large")
    assert "MiB" in message


def test_body_over_limit_while_streaming(client, digits):
    def chunks():  # no Content-Length: chunked transfer, counted as it arrives
        for _ in range(MAX_BODY // 4096 + 2):
            yield b"\x00" * 4096

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}
    assert_error(r, 413, "body_too_large")
    big_upload = client.post("/api/predict", files={"file": ("big.png", b"\x89PNG" + b"0" * MAX_BODY, "image/png")})
    assert_error(big_upload, 413, "body_too_large")
    assert digits.session.batches == []


def test_not_an_image(client):
    assert_error(client.post("/api/predict", files={"file": ("x.png", b"this is not a png", "image/png")}),
                 422, "invalid_image")
    assert_error(client.post("/api/predict", content=b"GIF89a-garbage", headers={"content-type": "image/gif"}),
                 422, "invalid_image")
    truncated = png_bytes(drawn_seven())[:200]
    assert_error(client.post("/api/predict", files={"file": ("t.png", truncated, "image/png")}), 422, "invalid_image")


def bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG file whose header declares width x height pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * (width + 1) * 4, 9)  # a few rows of zeros, compressed to almost nothing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_decompression_bomb_refused_from_the_header(client, digits):
    data = bomb_png(30000, 30000)  # 900 megapixels declared, a few kB sent
    assert len(data) < MAX_BODY
    message = assert_error(client.post("/api/predict", files={"file": ("bomb.png", data, "image/png")}),
                           422, "image_too_large")
    assert "pixel" in message
    b64 = base64.b64encode(data).decode()
    assert_error(client.post("/api/predict", json={"image": b64}), 422, "image_too_large")
    assert digits.session.batches == []


@pytest.mark.parametrize("pixels", [
    list(range(100)),                      # wrong length
    np.zeros((28, 27), dtype=int).tolist(),  # wrong shape
    np.zeros((2, 28, 28), dtype=int).tolist(),  # a batch: one image per request
])
def test_wrong_pixel_shape(client, pixels):
    message = assert_error(client.post("/api/predict", json={"pixels": pixels}), 422, "invalid_shape")
    assert "784" in message


def test_ragged_or_non_numeric_pixels(client):
    ragged = [[0] * 28] * 27 + [[0] * 5]
    assert_error(client.post("/api/predict", json={"pixels": ragged}), 422, "invalid_pixels")
    assert_error(client.post("/api/predict", json={"pixels": ["a"] * 784}), 422, "invalid_pixels")
    assert_error(client.post("/api/predict", json={"pixels": [True] * 784}), 422, "invalid_pixels")
    assert_error(client.post("/api/predict", json={"pixels": [None] * 784}), 422, "invalid_pixels")
    nan = json.dumps({"pixels": [0.5] * 783 + [float("nan")]})  # Python's json writes NaN; refuse it
    assert_error(client.post("/api/predict", content=nan, headers={"content-type": "application/json"}),
                 422, "invalid_pixels")


@pytest.mark.parametrize("payload", [
    {"pixels": [0] * 783 + [256]},
    {"pixels": [0] * 783 + [-1]},
    {"pixels": [0.0] * 783 + [1.5]},
    {"pixels": [0] * 783 + [2], "scale": 1},
    {"pixels": [0] * 783 + [10 ** 30]},
])
def test_pixels_out_of_range(client, payload):
    assert_error(client.post("/api/predict", json=payload), 422, "pixels_out_of_range")


def test_unknown_model(client):
    x = random_digit().tolist()
    message = assert_error(client.post("/api/predict?model=nope", json={"pixels": x}), 404, "unknown_model")
    assert "digits" in message and "fashion" in message
    assert_error(client.post("/api/predict", json={"pixels": x, "model": "nope"}), 404, "unknown_model")


def test_bad_json(client):
    assert_error(client.post("/api/predict", content=b"{not json", headers={"content-type": "application/json"}),
                 400, "invalid_json")
    assert_error(client.post("/api/predict", json=[1, 2, 3]), 422, "invalid_json")
    assert_error(client.post("/api/predict", json={}), 422, "missing_input")
    both = {"pixels": [0] * 784, "image": "aGVsbG8="}
    assert_error(client.post("/api/predict", json=both), 422, "missing_input")
    assert_error(client.post("/api/predict", json={"pixel": [0] * 784}), 422, "unknown_field")
    assert_error(client.post("/api/predict", json={"pixels": [0] * 784, "scale": 7}), 422, "invalid_parameter")
    assert_error(client.post("/api/predict", json={"pixels": [0] * 784, "scale": True}), 422, "invalid_parameter")
    assert_error(client.post("/api/predict", json={"pixels": [0] * 784, "model": 3}), 422, "invalid_parameter")
    deep = b"[" * 20_000 + b"]" * 20_000  # deeper than Python's recursion limit, under the body limit
    assert_error(client.post("/api/predict", content=deep, headers={"content-type": "application/json"}),
                 400, "invalid_json")
    deep_pixels = b'{"pixels": ' + b"[" * 900 + b"]" * 900 + b"}"
    r = client.post("/api/predict", content=deep_pixels, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422) and "error" in r.json()


def test_bad_base64(client):
    assert_error(client.post("/api/predict", json={"image": "not base64 at all!"}), 422, "invalid_base64")
    assert_error(client.post("/api/predict", json={"image": "data:image/png,rawdata"}), 422, "invalid_base64")
    assert_error(client.post("/api/predict", json={"image": ""}), 422, "invalid_base64")
    assert_error(client.post("/api/predict", json={"image": 12}), 422, "invalid_base64")


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_bad_top_k(client, bad):
    x = random_digit().tolist()
    assert_error(client.post("/api/predict", params={"top_k": bad}, json={"pixels": x}), 422, "invalid_parameter")
    assert_error(client.post("/api/predict", json={"pixels": x, "top_k": bad}), 422, "invalid_parameter")


def test_bad_content_type_and_multipart(client):
    assert_error(client.post("/api/predict", content=b"hello", headers={"content-type": "text/plain"}),
                 415, "unsupported_media_type")
    assert_error(client.post("/api/predict", content=b"hello"), 415, "unsupported_media_type")
    assert_error(client.post("/api/predict", data={"model": "digits"}, files={"other": ("a.png", b"x")}),
                 422, "missing_input")
    broken = client.post("/api/predict", content=b"--xyz\r\nbroken",
                         headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert 400 <= broken.status_code < 500 and "error" in broken.json()


def test_blank_image_is_a_rejected_prediction(client, digits):
    blank = png_bytes(np.full((100, 100), 255, dtype=np.uint8))  # white paper, no ink
    r = client.post("/api/predict", files={"file": ("blank.png", blank, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rejected"] is True and body["reason"] == "blank"
    np.testing.assert_array_equal(decode_seen(body["image"]), np.zeros((28, 28), np.uint8))


def test_reject_threshold_per_request(client):
    x = random_digit().tolist()
    assert client.post("/api/predict", json={"pixels": x}).json()["rejected"] is False  # no threshold: never
    everything = client.post("/api/predict", params={"reject_threshold": -1e9}, json={"pixels": x}).json()
    assert everything["rejected"] is True and everything["reason"] == "not a digit"
    assert client.post("/api/predict", json={"pixels": x, "reject_threshold": -1e9}).json()["rejected"] is True
    assert_error(client.post("/api/predict", params={"reject_threshold": "nan"}, json={"pixels": x}),
                 422, "invalid_parameter")
    upload = {"file": ("seven.png", png_bytes(255 - drawn_seven()), "image/png")}  # a form field, as curl -F sends it
    assert client.post("/api/predict", files=upload).json()["rejected"] is False
    assert client.post("/api/predict", files=upload, data={"reject_threshold": "-1e9"}).json()["rejected"] is True
    assert_error(client.post("/api/predict", files=upload, data={"reject_threshold": "low"}), 422, "invalid_parameter")
    assert_error(client.post("/api/predict", files=upload, data={"reject_threshold": "inf"}), 422, "invalid_parameter")


def test_model_endpoint_reads_the_run_report(tmp_path, digits):
    from fastapi.testclient import TestClient

    from digitlab.serving import create_app

    report = {"accuracy": 0.9871, "n": 10000, "macro": {"f1": 0.987}, "misclassified": {"indices": list(range(129))}}
    (tmp_path / "report.json").write_text(json.dumps(report))
    digits.run_dir = tmp_path  # as Predictor.run_dir
    with TestClient(create_app({"digits": digits})) as c:
        metrics = c.get("/api/model").json()["models"][0]["test_metrics"]
    assert metrics == {k: v for k, v in report.items() if k != "misclassified"}


def test_large_base64_json_is_parsed_off_the_event_loop_path_too(digits):
    from fastapi.testclient import TestClient

    from digitlab.serving import create_app

    rng = np.random.default_rng(0)
    photo = drawn_seven(400).astype(np.int16)[..., None] + rng.integers(0, 40, size=(400, 400, 3))  # noisy RGB
    data = png_bytes(np.clip(photo, 0, 255).astype(np.uint8))
    body = json.dumps({"image": base64.b64encode(data).decode()})
    assert len(body) > 65536  # the size the service parses in the thread pool
    with TestClient(create_app({"digits": digits}, max_body_bytes=4 * 1024 * 1024)) as c:
        r = c.post("/api/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(decode_seen(r.json()["image"]), reference_input(data))
