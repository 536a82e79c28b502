"""Hostile input and hostile clients: the token, security headers, HEAD, the decode pool, the deadline,
the rate limit, the last-resort 500, dropped clients and image formats outside the allowlist."""
from __future__ import annotations

import base64
import hmac
import io
import logging
import subprocess
import threading
import time

import anyio
import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from digitlab.serving import create_app
from digitlab.serving.limits import RateLimiter, client_key, parse_rate
from digitlab.serving.security import CONTENT_SECURITY_POLICY

TOKEN = "correct-horse-battery-staple-42"
PIXELS = {"pixels": np.arange(784).reshape(28, 28).astype(np.uint8).tolist()}
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
# The exact policy the page and /docs are written for (no inline script or style in static/*.html).
EXPECTED_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")


def png_of_a_seven() -> bytes:
    from PIL import ImageDraw

    image = Image.new("L", (120, 120), 0)
    ImageDraw.Draw(image).line([(30, 25), (90, 25), (55, 100)], fill=255, width=10)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def upload(data: bytes, name: str = "digit.png") -> dict:
    return {"files": {"file": (name, data, "application/octet-stream")}}


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response.json()["error"]["code"]


# --- authentication ----------------------------------------------------------------------------

@pytest.fixture
def guarded(digits):
    with TestClient(create_app({"digits": digits}, token=TOKEN)) as c:
        yield c


def test_token_required_on_api(guarded):
    for method, path, body in (("GET", "/api/model", None), ("POST", "/api/predict", PIXELS),
                               ("HEAD", "/api/model", None), ("GET", "/api/nothing", None)):
        r = guarded.request(method, path, json=body)
        assert r.status_code == 401, (method, path)
        assert r.headers["www-authenticate"].startswith("Bearer")
        if method != "HEAD":
            assert error_code(r) == "unauthorized"
    wrong = guarded.get("/api/model", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and error_code(wrong) == "unauthorized"
    assert 'error="invalid_token"' in wrong.headers["www-authenticate"]
    basic = guarded.get("/api/model", headers={"Authorization": "Basic " + base64.b64encode(b"u:p").decode()})
    assert basic.status_code == 401
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert guarded.get("/api/model", headers=good).status_code == 200
    assert guarded.get("/api/model", headers={"Authorization": f"bearer  {TOKEN} "}).status_code == 200
    r = guarded.post("/api/predict", json=PIXELS, headers=good)
    assert r.status_code == 200 and r.json()["label"] in range(10)


def test_page_docs_and_health_stay_open_with_a_token(guarded):
    for path in ("/", "/healthz", "/docs", "/openapi.json", "/static/app.js", "/static/style.css"):
        assert guarded.get(path).status_code == 200, path


def test_token_compared_in_constant_time(guarded, monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert guarded.get("/api/model", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert guarded.get("/api/model", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert calls == [(b"guess", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


@pytest.mark.parametrize("bad", ["", "has space", "tab\there", "naïve-token"])
def test_unusable_tokens_refused_at_creation(digits, bad):
    from digitlab.errors import DigitlabError

    with pytest.raises(DigitlabError, match="token"):
        create_app({"digits": digits}, token=bad)


# --- security headers and HEAD -----------------------------------------------------------------

def test_policy_is_the_specified_one():
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


def test_security_headers_on_every_answer(client):
    answers = {
        "page": client.get("/"),
        "docs": client.get("/docs"),
        "static": client.get("/static/app.js"),
        "openapi": client.get("/openapi.json"),
        "health": client.get("/healthz"),
        "model": client.get("/api/model"),
        "predict": client.post("/api/predict", json=PIXELS),
        "404": client.get("/no/such/page"),
        "static 404": client.get("/static/missing.js"),
        "405": client.get("/api/predict"),
        "422": client.post("/api/predict", json={"pixels": [1, 2]}),
        "413": client.post("/api/predict", content=b"0" * 100_000, headers={"content-type": "image/png"}),
    }
    assert answers["predict"].status_code == 200 and answers["404"].status_code == 404
    assert answers["static 404"].status_code == 404
    for name, r in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert r.headers.get(header) == value, (name, header)
    for name in ("health", "model", "predict", "405", "422", "413"):
        assert answers[name].headers["cache-control"] == "no-store", name
    assert answers["413"].headers["connection"] == "close"  # the rest of the body is not read


def test_every_get_route_answers_head(client):
    """Every GET route of the app (and a static file) answers HEAD with the GET's headers and no body."""
    from digitlab.serving.routes import router

    routes = [*router.routes, *(r for r in client.app.routes if hasattr(r, "methods"))]  # the app's and its router's
    paths = sorted({r.path for r in routes if "GET" in (r.methods or ()) and "{" not in r.path})
    assert {"/", "/docs", "/openapi.json", "/healthz", "/api/model"} <= set(paths)
    for path in [*paths, "/static/app.js", "/static/style.css"]:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path


def test_static_html_has_no_inline_script_or_style():
    """The policy forbids inline code: the page and /docs must load theirs from /static."""
    import re
    from pathlib import Path

    import digitlab.serving

    for html in (Path(digitlab.serving.__file__).parent / "static").glob("*.html"):
        text = html.read_text()
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text), html.name
        assert "<style" not in text and not re.search(r"\sstyle=", text), html.name
        assert not re.search(r"\son[a-z]+=", text), html.name  # onclick= and the like are inline script


# --- the decode pool and the deadline ----------------------------------------------------------

def _blocking_prepare(monkeypatch, predictor) -> tuple[threading.Event, threading.Event]:
    """Make `predictor.preprocessed` (what an upload is decoded by) wait for `release`; `started` is set when a
    decode begins."""
    started, release = threading.Event(), threading.Event()
    real_prepare = predictor.preprocessed

    def slow_prepare(*args, **kwargs):
        started.set()
        release.wait(30)
        return real_prepare(*args, **kwargs)

    monkeypatch.setattr(predictor, "preprocessed", slow_prepare)
    return started, release


def test_full_decode_pool_answers_503_while_pixels_pass(digits, monkeypatch):
    started, release = _blocking_prepare(monkeypatch, digits)
    app = create_app({"digits": digits}, max_decodes=1, decode_queue=0)
    png = png_of_a_seven()
    answers: dict[str, httpx.Response] = {}

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            async def first() -> None:
                answers["first"] = await http.post("/api/predict", **upload(png))

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(first)
                    assert await anyio.to_thread.run_sync(started.wait, 30)  # the one decode slot is taken
                    answers["upload"] = await http.post("/api/predict", **upload(png))
                    answers["base64"] = await http.post("/api/predict",
                                                        json={"image": base64.b64encode(png).decode()})
                    answers["pixels"] = await http.post("/api/predict", json=PIXELS)
                    release.set()
            finally:
                release.set()

    anyio.run(main)
    for name in ("upload", "base64"):
        r = answers[name]
        assert r.status_code == 503 and error_code(r) == "busy", name
        assert int(r.headers["retry-after"]) >= 1
    assert answers["pixels"].status_code == 200  # pixels never wait for the pool
    assert answers["first"].status_code == 200, answers["first"].text  # the queued upload still succeeds
    assert app.state.service.decodes.pending == 0


def test_queue_waits_instead_of_refusing(digits, monkeypatch):
    """With a queue of 1, a second upload waits for the slot and succeeds; a third is refused."""
    started, release = _blocking_prepare(monkeypatch, digits)
    app = create_app({"digits": digits}, max_decodes=1, decode_queue=1, decode_wait_s=30)
    png = png_of_a_seven()
    answers: dict[str, httpx.Response] = {}

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            async def post(name: str) -> None:
                answers[name] = await http.post("/api/predict", **upload(png))

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(post, "first")
                    assert await anyio.to_thread.run_sync(started.wait, 30)
                    tg.start_soon(post, "queued")
                    while app.state.service.decodes.pending < 2:
                        await anyio.sleep(0.01)
                    await post("refused")
                    release.set()
            finally:
                release.set()

    anyio.run(main)
    assert answers["first"].status_code == answers["queued"].status_code == 200
    assert answers["refused"].status_code == 503


def test_queue_wait_is_bounded(digits, monkeypatch):
    """A request waiting for a decoder longer than decode_wait_s gives up with 503 busy."""
    started, release = _blocking_prepare(monkeypatch, digits)
    app = create_app({"digits": digits}, max_decodes=1, decode_queue=4, decode_wait_s=0.1)
    png = png_of_a_seven()
    answers: dict[str, httpx.Response] = {}

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            async def first() -> None:
                answers["first"] = await http.post("/api/predict", **upload(png))

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(first)
                    assert await anyio.to_thread.run_sync(started.wait, 30)
                    answers["waited"] = await http.post("/api/predict", **upload(png))  # queued, then gave up
                    release.set()
            finally:
                release.set()

    anyio.run(main)
    assert answers["waited"].status_code == 503 and error_code(answers["waited"]) == "busy"
    assert "within" in answers["waited"].json()["error"]["message"]
    assert answers["first"].status_code == 200
    assert app.state.service.decodes.pending == 0  # the abandoned job was dropped from the queue


def test_deadline_answers_504_and_keeps_the_cap(digits, monkeypatch):
    started, release = _blocking_prepare(monkeypatch, digits)
    app = create_app({"digits": digits}, max_decodes=1, decode_queue=0, deadline_s=0.2)
    try:
        with TestClient(app) as c:
            r = c.post("/api/predict", **upload(png_of_a_seven()))
            assert r.status_code == 504 and error_code(r) == "deadline_exceeded"
            assert r.headers["connection"] == "close"
            assert started.is_set()
            # The abandoned decode still runs on its thread and holds the one slot until it ends.
            assert app.state.service.decodes.pending == 1
            assert c.post("/api/predict", **upload(png_of_a_seven())).status_code == 503
            release.set()
            for _ in range(1000):
                if app.state.service.decodes.pending == 0:
                    break
                time.sleep(0.01)
            assert app.state.service.decodes.pending == 0
            assert c.post("/api/predict", json=PIXELS).status_code == 200
    finally:
        release.set()


def test_deadline_cuts_a_trickling_body(digits):
    """A client that sends part of its body and stalls is answered 504 at the deadline, not held forever."""
    app = create_app({"digits": digits}, deadline_s=0.2)
    stall = anyio.Event()

    async def trickle():
        yield b"\x89PNG\r\n"
        await stall.wait()  # never set: the rest of the body never comes
        yield b""

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            with anyio.fail_after(30):
                return await http.post("/api/predict", content=trickle(), headers={"content-type": "image/png"})

    r = anyio.run(main)
    assert r.status_code == 504 and error_code(r) == "deadline_exceeded"


@pytest.mark.parametrize("kwargs", [{"max_decodes": 0}, {"decode_queue": -1}, {"deadline_s": 0}, {"decode_wait_s": 0},
                                    {"deadline_s": float("nan")}, {"max_body_bytes": -1}, {"rate_limit": 0}])
def test_limits_must_be_positive(digits, kwargs):
    from digitlab.errors import DigitlabError

    with pytest.raises(DigitlabError):
        create_app({"digits": digits}, **kwargs)


# --- the rate limit ----------------------------------------------------------------------------

def test_rate_limit_answers_429_with_retry_after(digits):
    app = create_app({"digits": digits}, rate_limit=0.01)  # one request, then one per 100 s

    async def main() -> list[httpx.Response]:
        answers = []
        for client in (("192.0.2.1", 1000), ("192.0.2.1", 1001), ("192.0.2.2", 1000)):
            transport = httpx.ASGITransport(app=app, client=client)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                answers.append(await http.post("/api/predict", json=PIXELS))
                answers.append(await http.get("/healthz"))
        return answers

    first, health1, second, health2, other, health3 = anyio.run(main)
    assert first.status_code == 200
    assert second.status_code == 429 and error_code(second) == "rate_limited"  # same address, another port
    assert 90 <= int(second.headers["retry-after"]) <= 100
    assert other.status_code == 200  # another client has its own bucket
    assert health1.status_code == health2.status_code == health3.status_code == 200  # not limited


def test_token_bucket_refills_at_the_rate():
    now = [0.0]
    limiter = RateLimiter(2.0, clock=lambda: now[0])  # 2/s, bursts of 2
    assert [limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(0.5)  # the next token comes in half a second
    now[0] += 0.25
    assert limiter.acquire("a") == pytest.approx(0.25)
    now[0] += 0.25
    assert limiter.acquire("a") == 0.0
    now[0] += 100.0  # a long pause refills only up to the burst
    assert [limiter.acquire("a") for _ in range(3)][2] > 0
    assert limiter.acquire("b") == 0.0


def test_rate_limiter_memory_is_bounded():
    limiter = RateLimiter(1.0, max_clients=100, clock=lambda: 0.0)
    for i in range(1000):
        limiter.acquire(f"client-{i}")
    assert len(limiter._buckets) == 100


def test_client_keys_and_rate_parsing():
    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_key("testclient") == "testclient"
    assert parse_rate("5/s") == parse_rate("5") == 5.0 and parse_rate("0.5/s") == 0.5
    for bad in ("0/s", "-1/s", "fast", "5/min", "inf/s", ""):
        with pytest.raises(Exception, match="rate"):
            parse_rate(bad)


# --- the last resort and dropped clients -------------------------------------------------------

def test_unexpected_failure_is_a_json_500_logged_once(client, digits, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the service")

    monkeypatch.setattr(digits, "prediction", broken)
    with caplog.at_level(logging.INFO, logger="digitlab.serving"):
        r = client.post("/api/predict", json=PIXELS)
    assert r.status_code == 500 and error_code(r) == "internal_error"
    assert "a bug in the service" not in r.text  # internals stay in the server log
    assert r.headers["x-content-type-options"] == "nosniff"
    records = [rec for rec in caplog.records if rec.name == "digitlab.serving"]
    assert len(records) == 1 and records[0].levelno == logging.ERROR and records[0].exc_info is not None
    assert client.get("/healthz").status_code == 200


def test_client_disconnect_is_one_log_line(digits, caplog):
    """A client gone mid-body: one INFO line, no traceback, no answer attempted."""
    app = create_app({"digits": digits})
    messages = [{"type": "http.request", "body": b"\x89PNG" + b"0" * 100, "more_body": True},
                {"type": "http.disconnect"}]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/predict", "raw_path": b"/api/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"image/png"), (b"host", b"test")], "client": ("192.0.2.9", 4000),
             "server": ("test", 80)}
    with caplog.at_level(logging.DEBUG):
        anyio.run(app, scope, receive, send)
    assert sent == []
    records = [rec for rec in caplog.records if rec.levelno >= logging.INFO and rec.name.startswith("digitlab")]
    assert len(records) == 1 and "disconnected" in records[0].getMessage(), [r.getMessage() for r in records]
    assert records[0].exc_info is None and records[0].levelno == logging.INFO


# --- image formats outside the allowlist -------------------------------------------------------

EPS_LOOP = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n{ } loop\nshowpage\n"  # PostScript that never ends


def _pillow_file(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("L" if fmt != "ICO" else "RGB", (32, 32), 255).save(buf, format=fmt)
    return buf.getvalue()


@pytest.fixture
def no_subprocesses(monkeypatch):
    """Pretend Ghostscript is installed (Pillow would run it for EPS) and fail on any process start."""
    from PIL import EpsImagePlugin

    started: list[object] = []

    class Refused:
        def __init__(self, args, *rest, **kwargs):
            started.append(args)
            raise AssertionError(f"the service started a process: {args!r}")

    monkeypatch.setattr(EpsImagePlugin, "gs_binary", "gs")
    monkeypatch.setattr(subprocess, "Popen", Refused)
    return started


@pytest.mark.timeout(60)  # an EPS run by Ghostscript would loop forever
@pytest.mark.parametrize("fmt", ["EPS", "TGA", "PCX", "ICO"])
def test_formats_outside_the_allowlist_are_415_undecoded(client, digits, no_subprocesses, fmt):
    data = EPS_LOOP if fmt == "EPS" else _pillow_file(fmt)
    for r in (client.post("/api/predict", **upload(data, f"x.{fmt.lower()}")),
              client.post("/api/predict", json={"image": base64.b64encode(data).decode()})):
        assert r.status_code == 415 and error_code(r) == "unsupported_image_format", r.text
        assert "PNG" in r.json()["error"]["message"]  # says what is accepted
    assert no_subprocesses == []
    assert digits.session.batches == []


# --- hostile bodies never reach the last resort ------------------------------------------------

def _sample_files() -> list[bytes]:
    """A small real file of each allowlisted format, for the fuzzer to damage."""
    seven = Image.open(io.BytesIO(png_of_a_seven())).resize((40, 40))
    files = []
    for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        seven.save(buf, format=fmt)
        files.append(buf.getvalue())
    return files


SAMPLE_FILES = _sample_files()


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SAMPLE_FILES)))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(raw) - 1))
        damage = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite"]))
        if damage == "flip":
            raw[at] ^= draw(st.integers(1, 255))
        elif damage == "truncate":
            del raw[max(at, 1):]
        elif damage == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            raw[at:at + 4] = draw(st.sampled_from([b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"\x7f\xff\xff\xff"]))
    return bytes(raw)


TRUNCATED_IHDR_PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0cIHDR" + b"\x00" * 12 + b"\x00" * 4  # 12-byte IHDR


def test_damaged_png_header_is_422(client):
    """Pillow raises ValueError('Truncated IHDR chunk') from Image.open for this: a 422, not a 500."""
    r = client.post("/api/predict", **upload(TRUNCATED_IHDR_PNG))
    assert r.status_code == 422 and error_code(r) == "invalid_image", r.text


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the damage it skips (TIFF tags)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=damaged_files() | st.binary(max_size=512),
       how=st.sampled_from(["multipart", "image/png", "image/gif", "application/json", "base64", "text/plain"]))
def test_hostile_bodies_are_4xx_never_500(client, caplog, body, how):
    """Damaged PNG/JPEG/GIF/BMP/TIFF/WebP files and random bytes, sent every way the API takes."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="digitlab.serving"):
        if how == "multipart":
            r = client.post("/api/predict", **upload(body))
        elif how == "base64":
            r = client.post("/api/predict", json={"image": base64.b64encode(body).decode()})
        else:
            r = client.post("/api/predict", content=body, headers={"content-type": how})
    assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
    assert "error" in r.json() or r.status_code == 200
    assert not caplog.records, [rec.getMessage() for rec in caplog.records]
