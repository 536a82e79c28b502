"""The recognition service: `create_app(models)` -> a FastAPI app with the API and the drawing page.

Endpoints (`serving.routes`): `POST /api/predict`, `POST /api/read`, `GET /api/model`,
`GET /healthz`, `GET /` (the page), `GET /openapi.json` and `GET /docs` (an offline page
rendering the OpenAPI schema). This module loads the models and assembles the app and its
guards, outermost first: security headers (`security`), the last-resort error net
(`errors`), the rate limit, the token, the deadline (`limits`) and the body-size limit.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab import __version__
from digitlab.errors import DigitlabError
from digitlab.inference import Predictor
from digitlab.layout import RunFiles
from digitlab.serving.batching import MicroBatcher
from digitlab.serving.errors import APIError, LastResortMiddleware, error_response, install_error_handlers
from digitlab.serving.limits import (
    DECODE_QUEUE_PER_WORKER,
    DECODE_WAIT_S,
    DEFAULT_DEADLINE_S,
    DeadlineMiddleware,
    DecodePool,
    RateLimiter,
    RateLimitMiddleware,
)
from digitlab.serving.routes import STATIC_DIR, ServedModel, Service, router
from digitlab.serving.schemas import ModelInfo
from digitlab.serving.security import SecurityHeadersMiddleware, TokenAuthMiddleware, check_token
from digitlab.vision import MAX_IMAGE_PIXELS

MAX_BODY_BYTES = 10 * 1024 * 1024  # a phone photo fits; anything bigger is refused unread
DEFAULT_TOP_K = 3
CONFIG_ENV = "DIGITLAB_SERVE_CONFIG"  # create_app's arguments as JSON, for `--workers` > 1


def _test_metrics(run_dir: Path | None) -> dict[str, Any] | None:
    """The summary of the run's report.json (lists of misclassified examples left out), if present."""
    path = RunFiles(run_dir).report if run_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    return {k: v for k, v in report.items() if k != "misclassified"}


def _serve_one(name: str, source: str | os.PathLike[str] | Predictor, *, backend: str, num_threads: int | None,
               max_batch: int) -> ServedModel:
    if not name or "/" in name:
        raise DigitlabError(f"model name {name!r} is not usable: give a non-empty name without '/'")
    predictor = source if isinstance(source, Predictor) else Predictor.load(source, backend=backend,
                                                                           num_threads=num_threads)
    info = ModelInfo(name=name, model_id=predictor.model_id, backend=predictor.backend,
                     dataset=predictor.meta.dataset, num_classes=len(predictor.class_names),
                     class_names=list(predictor.class_names), meta=predictor.meta.to_json(),
                     test_metrics=_test_metrics(predictor.run_dir))
    return ServedModel(name, predictor, MicroBatcher(predictor.predict_logits, max_batch=max_batch), info)


class BodyLimitMiddleware:
    """Refuses bodies over `max_body_bytes`: by Content-Length before reading, and by counting while streaming."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> APIError:
        limit_mb = self.max_body_bytes / (1024 * 1024)
        return APIError(413, "body_too_large", f"the request body is over the {limit_mb:g} MiB limit; "
                        "send a smaller image (a 28x28 digit needs only a few kB)",
                        headers={"Connection": "close"})  # the rest of the body is never read

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope["headers"]:
            if key == b"content-length":
                if not value.isdigit():
                    await error_response(400, "bad_request", "Content-Length is not a number")(scope, receive, send)
                    return
                if int(value) > self.max_body_bytes:
                    exc = self._too_large()
                    await error_response(exc.status, exc.code, exc.message, exc.headers)(scope, receive, send)
                    return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise self._too_large()  # inside the endpoint: answered by the APIError handler
            return message

        await self.app(scope, counting_receive, send)


def _check_limits(max_body_bytes: int, max_image_pixels: int, default_top_k: int, max_batch: int,
                  max_decodes: int, decode_queue: int, deadline_s: float, decode_wait_s: float) -> None:
    """DigitlabError naming the first `create_app` limit that is not a positive number."""
    for name, value in (("max_body_bytes", max_body_bytes), ("max_image_pixels", max_image_pixels),
                        ("default_top_k", default_top_k), ("max_batch", max_batch), ("max_decodes", max_decodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise DigitlabError(f"create_app: {name}={value!r} must be a whole number >= 1")
    if isinstance(decode_queue, bool) or not isinstance(decode_queue, int) or decode_queue < 0:
        raise DigitlabError(f"create_app: decode_queue={decode_queue!r} must be a whole number >= 0")
    for name, seconds in (("deadline_s", deadline_s), ("decode_wait_s", decode_wait_s)):
        if not 0 < seconds < float("inf"):
            raise DigitlabError(f"create_app: {name}={seconds!r} must be a positive number of seconds")


def create_app(
    models: Mapping[str, str | os.PathLike[str] | Predictor],
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    default_top_k: int = DEFAULT_TOP_K,
    max_batch: int = 64,
    backend: str = "auto",
    num_threads: int | None = None,
    token: str | None = None,
    rate_limit: float | None = None,
    max_decodes: int | None = None,
    decode_queue: int | None = None,
    decode_wait_s: float = DECODE_WAIT_S,
    deadline_s: float = DEFAULT_DEADLINE_S,
) -> FastAPI:
    """The recognition service for `models` (name -> run dir / model file path, or a loaded Predictor).

    The first model is the default; a request picks another with `model`. `max_body_bytes` caps
    request bodies, `max_image_pixels` the declared size of an uploaded image, `max_batch` how many
    waiting requests share one forward pass; `backend` and `num_threads` go to `Predictor.load`
    for models given as paths. Guards (docs/security.md): `token` requires
    `Authorization: Bearer <token>` on /api/*; `rate_limit` allows each client that many /api/
    requests per second (bursts of max(1, rate_limit)); at most `max_decodes` image decodes run at
    once (default: the CPU count) with `decode_queue` more waiting (default: 16 per decoder), each
    at most `decode_wait_s` (default: as long as the deadline), the rest 503; an /api/ request still
    running after `deadline_s` seconds is answered 504.
    Raises DigitlabError if a model cannot be loaded or a limit is not positive.
    """
    max_decodes = max_decodes if max_decodes is not None else (os.cpu_count() or 1)
    decode_queue = decode_queue if decode_queue is not None else DECODE_QUEUE_PER_WORKER * max_decodes
    _check_limits(max_body_bytes, max_image_pixels, default_top_k, max_batch, max_decodes, decode_queue, deadline_s,
                  decode_wait_s)
    limiter = RateLimiter(rate_limit) if rate_limit is not None else None
    if token is not None:
        check_token(token)
    if not models:
        raise DigitlabError("no model to serve: give a run directory or --model NAME=PATH")
    served = {name: _serve_one(name, source, backend=backend, num_threads=num_threads, max_batch=max_batch)
              for name, source in models.items()}
    decodes = DecodePool(max_decodes, decode_queue, decode_wait_s)
    app = _fastapi(served, decodes)
    app.state.service = Service(served, max_image_pixels=max_image_pixels, default_top_k=default_top_k,
                                decodes=decodes)
    install_error_handlers(app)
    _add_guards(app, max_body_bytes=max_body_bytes, deadline_s=deadline_s, token=token, limiter=limiter)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    return app


def _fastapi(served: Mapping[str, ServedModel], decodes: DecodePool) -> FastAPI:
    """The bare FastAPI app, whose shutdown closes the models' batchers and the decode pool."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for model in served.values():
            await model.batcher.aclose()
        decodes.close()

    return FastAPI(
        title="digitlab recognition service",
        version=__version__,
        description="Classify 28x28 digit / clothing images and read whole numbers with the served models. "
                    "Errors answer {\"error\": {\"code\", \"message\"}}. With a token, /api/* needs "
                    "Authorization: Bearer <token>.",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN; /docs is an offline page instead
        redoc_url=None,
        openapi_url=None,  # served by routes.openapi, which answers HEAD too
        lifespan=lifespan,
    )


def _add_guards(app: FastAPI, *, max_body_bytes: int, deadline_s: float, token: str | None,
                limiter: RateLimiter | None) -> None:
    """The guards, innermost first: body limit, deadline, token, rate limit, error net, security headers."""
    # add_middleware puts each one outside the previous, so they are added innermost first.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    app.add_middleware(DeadlineMiddleware, deadline_s=deadline_s)
    if token is not None:
        app.add_middleware(TokenAuthMiddleware, token=token)
    if limiter is not None:
        app.add_middleware(RateLimitMiddleware, limiter=limiter)  # outside the token: guesses are limited too
    app.add_middleware(LastResortMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)


def app_from_env() -> FastAPI:
    """`create_app` with arguments from $DIGITLAB_SERVE_CONFIG (JSON), for uvicorn's worker processes."""
    config = json.loads(os.environ[CONFIG_ENV])
    return create_app(config.pop("models"), **config)
