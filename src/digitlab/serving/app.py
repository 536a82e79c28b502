"""The recognition service: `create_app(models)` -> a FastAPI app with the API and the drawing page.

Endpoints: `POST /api/predict`, `GET /api/model`, `GET /healthz`, `GET /` (the page),
`GET /openapi.json` and `GET /docs` (an offline page rendering the OpenAPI schema).
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab import __version__
from digitlab.data.registry import preprocessing_of
from digitlab.errors import DigitlabError
from digitlab.inference import MAX_IMAGE_PIXELS
from digitlab.serving.batching import MicroBatcher
from digitlab.serving.errors import APIError, error_response, install_error_handlers
from digitlab.serving.payload import Payload, image_to_model_input, parse_json, parse_top_k

STATIC_DIR = Path(__file__).parent / "static"
MAX_BODY_BYTES = 10 * 1024 * 1024  # a phone photo fits; anything bigger is refused unread
DEFAULT_TOP_K = 3
CONFIG_ENV = "DIGITLAB_SERVE_CONFIG"  # create_app's arguments as JSON, for `--workers` > 1


class PredictorLike(Protocol):
    """What the service needs of `digitlab.inference.Predictor`.

    An optional `preprocessing` attribute ("mnist" or "fashion") picks how uploaded pictures are
    preprocessed; without it, the profile of `meta["dataset"]` in the registry is used.
    """

    class_names: tuple[str, ...] | list[str]
    model_id: str
    meta: dict[str, Any]

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...


@dataclass
class ServedModel:
    """One model the service answers for, with its batcher and the metadata /api/model shows."""

    name: str
    predictor: PredictorLike
    batcher: MicroBatcher
    class_names: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    preprocessing: str = "mnist"  # preprocess_image profile for pictures sent to this model


def _run_dir_of(source: Any, predictor: PredictorLike) -> Path | None:
    run_dir = getattr(predictor, "run_dir", None)
    if run_dir is not None:
        return Path(run_dir)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        return path if path.is_dir() else path.parent
    return None


def _test_metrics(run_dir: Path | None) -> dict[str, Any] | None:
    """The summary of the run's report.json (lists of misclassified examples left out), if present."""
    if run_dir is None or not (run_dir / "report.json").is_file():
        return None
    try:
        report = json.loads((run_dir / "report.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(report, dict):
        return None
    return {k: v for k, v in report.items() if k != "misclassified"}


def _load_models(models: Mapping[str, Any], *, backend: str, num_threads: int | None,
                 max_batch: int) -> dict[str, ServedModel]:
    if not models:
        raise DigitlabError("no model to serve: give a run directory or --model NAME=PATH")
    served: dict[str, ServedModel] = {}
    for name, source in models.items():
        if not name or "/" in name:
            raise DigitlabError(f"model name {name!r} is not usable: give a non-empty name without '/'")
        if isinstance(source, (str, os.PathLike)):
            from digitlab.inference import Predictor  # torch is imported only when a path must be loaded

            predictor = Predictor.load(source, backend=backend, num_threads=num_threads)
        else:
            predictor = source
        class_names = [str(c) for c in predictor.class_names]
        meta = dict(predictor.meta or {})
        info = {
            "name": name,
            "model_id": predictor.model_id,
            "backend": getattr(predictor, "backend", None),  # "int8", "onnx" or "torch" for a Predictor
            "dataset": meta.get("dataset"),
            "num_classes": len(class_names),
            "class_names": class_names,
            "meta": meta,
            "test_metrics": _test_metrics(_run_dir_of(source, predictor)),
        }
        preprocessing = getattr(predictor, "preprocessing", None) or preprocessing_of(meta.get("dataset"))
        served[name] = ServedModel(name, predictor, MicroBatcher(predictor.predict_proba, max_batch=max_batch),
                                   class_names, info, preprocessing)
    return served


class BodyLimitMiddleware:
    """Refuses bodies over `max_body_bytes`: by Content-Length before reading, and by counting while streaming."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> APIError:
        limit_mb = self.max_body_bytes / (1024 * 1024)
        return APIError(413, "body_too_large", f"the request body is over the {limit_mb:g} MiB limit; "
                        "send a smaller image (a 28x28 digit needs only a few kB)")

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
                    await error_response(exc.status, exc.code, exc.message)(scope, receive, send)
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


def _png_data_url(x: np.ndarray) -> str:
    """uint8 (28, 28) -> `data:image/png;base64,...` for the page to show."""
    buf = io.BytesIO()
    Image.fromarray(x, mode="L").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


_PREDICT_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "description": "PNG or JPEG image"},
                           "model": {"type": "string"}, "top_k": {"type": "integer", "minimum": 1}}}},
        "application/json": {"schema": {
            "type": "object",
            "properties": {
                "image": {"type": "string", "description": "data URL or raw base64 of a PNG/JPEG; preprocessed"},
                "pixels": {"description": "784 numbers or 28 rows of 28, MNIST format (bright ink on black), NOT "
                                          "preprocessed. Integers 0..255; any non-integer makes it 0..1",
                           "type": "array", "items": {}},
                "scale": {"type": "integer", "enum": [1, 255], "description": "force 0..1 or 0..255 for pixels"},
                "model": {"type": "string"}, "top_k": {"type": "integer", "minimum": 1}}}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
    },
}


_ERROR_SCHEMA = {"type": "object", "properties": {"error": {"type": "object", "properties": {
    "code": {"type": "string"}, "message": {"type": "string"}}}}}
_PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "model, model_id, class_index, class_name, probabilities (one per class), top_k, "
                         "input {source, preprocessed}, image (PNG data URL of the 28x28 the model saw), elapsed_ms"},
    **{status: {"description": text, "content": {"application/json": {"schema": _ERROR_SCHEMA}}} for status, text in (
        (400, "invalid_json, invalid_multipart"),
        (404, "unknown_model"),
        (413, "body_too_large"),
        (415, "unsupported_media_type"),
        (422, "invalid_image, image_too_large, blank_image, invalid_shape, invalid_pixels, pixels_out_of_range, "
              "invalid_base64, missing_input, unknown_field, invalid_parameter"),
    )},
}


def create_app(
    models: Mapping[str, Any],
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
    default_top_k: int = DEFAULT_TOP_K,
    max_batch: int = 64,
    backend: str = "auto",
    num_threads: int | None = None,
) -> FastAPI:
    """The recognition service for `models` (name -> run dir / model file path, or a loaded Predictor).

    The first model is the default; a request picks another with `model`. `max_body_bytes` caps
    request bodies, `max_image_pixels` the declared size of an uploaded image, `max_batch` how many
    waiting requests share one forward pass; `backend` and `num_threads` go to `Predictor.load`
    for models given as paths. Raises DigitlabError if a model cannot be loaded.
    """
    served = _load_models(models, backend=backend, num_threads=num_threads, max_batch=max_batch)
    default_name = next(iter(served))
    model_list = {"default": default_name, "models": [m.info for m in served.values()]}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for model in served.values():
            await model.batcher.aclose()

    app = FastAPI(
        title="digitlab recognition service",
        version=__version__,
        description="Classify 28x28 digit / clothing images with the served models. "
                    "Errors answer {\"error\": {\"code\", \"message\"}}.",
        docs_url=None,  # FastAPI's Swagger UI loads from a CDN; /docs below is an offline page instead
        redoc_url=None,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC_DIR / "docs.html")

    @app.get("/healthz", summary="Liveness: the service is up and its models are loaded")
    async def healthz() -> Response:
        return Response(json.dumps({"status": "ok", "models": list(served)}), media_type="application/json")

    @app.get("/api/model", summary="Every served model: metadata, class names, test metrics from report.json")
    async def model_info() -> Response:
        return Response(json.dumps(model_list), media_type="application/json")

    async def read_payload(request: Request) -> Payload:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            try:
                form = await request.form(max_files=1, max_fields=8)
            except StarletteHTTPException as exc:
                raise APIError(400, "invalid_multipart", f"the multipart body could not be read ({exc.detail}); "
                               "send one file field named \"file\"") from None
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise APIError(422, "missing_input", "the multipart form has no file field named \"file\"; "
                               "e.g. curl -F file=@digit.png")
            data = await upload.read()
            model = form.get("model")
            return Payload("upload", image_bytes=data, model=model if isinstance(model, str) and model else None,
                           top_k=parse_top_k(form.get("top_k")))
        body = b"".join([chunk async for chunk in request.stream()])
        if content_type == "application/json" or content_type.endswith("+json"):
            # A big body is a base64 image: parse and decode it off the event loop.
            return parse_json(body) if len(body) < 65536 else await run_in_threadpool(parse_json, body)
        if content_type.startswith("image/"):
            return Payload("upload", image_bytes=body)
        raise APIError(415, "unsupported_media_type",
                       f"Content-Type {content_type or '(none)'!r} is not accepted; send multipart/form-data with a "
                       "\"file\", application/json with \"image\" or \"pixels\", or an image/png or image/jpeg body")

    @app.post("/api/predict", summary="Classify one image", openapi_extra={"requestBody": _PREDICT_BODY},
              responses=_PREDICT_RESPONSES)
    async def predict(
        request: Request,
        model: str | None = Query(None, description="served model to use (default: the first; see /api/model)"),
        top_k: int | None = Query(None, ge=1, description=f"how many best classes to list (default {default_top_k})"),
    ) -> Response:
        start = time.perf_counter()
        payload = await read_payload(request)
        name = model or payload.model or default_name
        chosen = served.get(name)
        if chosen is None:
            raise APIError(404, "unknown_model", f"no model named {name!r} is served; choose one of {list(served)}")
        k = min(top_k or payload.top_k or default_top_k, len(chosen.class_names))
        if payload.pixels is not None:
            x = payload.pixels  # already MNIST format: no preprocessing
        else:
            assert payload.image_bytes is not None
            x = await run_in_threadpool(image_to_model_input, payload.image_bytes, max_pixels=max_image_pixels,
                                        profile=chosen.preprocessing)  # the model's own dataset's procedure
        probs = np.asarray(await chosen.batcher.predict(x), dtype=np.float64)  # (C,)
        order = np.argsort(-probs, kind="stable")[:k]
        best = int(order[0])
        body = {
            "model": chosen.name,
            "model_id": chosen.predictor.model_id,
            "class_index": best,
            "class_name": chosen.class_names[best],
            "probabilities": probs.tolist(),
            "top_k": [{"index": int(i), "name": chosen.class_names[i], "probability": float(probs[i])} for i in order],
            "input": {"source": payload.source, "preprocessed": payload.pixels is None},
            "image": _png_data_url(x),
            "elapsed_ms": round((time.perf_counter() - start) * 1000.0, 3),
        }
        return Response(json.dumps(body), media_type="application/json")

    return app


def app_from_env() -> FastAPI:
    """`create_app` with arguments from $DIGITLAB_SERVE_CONFIG (JSON), for uvicorn's worker processes."""
    config = json.loads(os.environ[CONFIG_ENV])
    return create_app(config.pop("models"), **config)
