"""The endpoints: `POST /api/predict`, `POST /api/read`, `GET /api/model`, `GET /healthz`, the page and docs.

Each endpoint reads the request into a `payload.Payload`, picks the served model, lets the
library do the work (`Predictor.prepare`, `Predictor.prediction`, `Predictor.read`) and answers
with a `schemas` type. The served models live on `app.state.service` (a `Service`). Image
decoding, preprocessing and large JSON bodies run in the service's `limits.DecodePool` (bounded,
503 when full); JSON pixels skip it. Every GET route answers HEAD too.
"""
from __future__ import annotations

import base64
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitlab.errors import DigitlabError
from digitlab.inference import Predictor
from digitlab.inference.rejection import Ink
from digitlab.serving.batching import MicroBatcher
from digitlab.serving.errors import APIError
from digitlab.serving.limits import DecodePool
from digitlab.serving.payload import Payload, api_error, parse_json, parse_threshold, parse_top_k
from digitlab.serving.schemas import (
    Health,
    ModelInfo,
    ModelList,
    PredictResponse,
    ReadResponse,
    error_responses,
    request_body,
)

STATIC_DIR = Path(__file__).parent / "static"
BIG_JSON = 65536  # bodies larger than this (base64 images) are parsed in the decode pool
IMAGE_ERRORS = error_responses(400, 401, 404, 413, 415, 422, 429, 503, 504)  # what an image endpoint may answer


@dataclass
class ServedModel:
    """One model the service answers for, with its batcher and the metadata /api/model shows."""

    name: str
    predictor: Predictor
    batcher: MicroBatcher
    info: ModelInfo


@dataclass
class Service:
    """Everything the endpoints need: the served models (the first is the default) and the limits."""

    models: dict[str, ServedModel]
    max_image_pixels: int
    default_top_k: int
    decodes: DecodePool  # where heavy decoding runs, bounded
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def default(self) -> str:
        return next(iter(self.models))

    def choose(self, name: str | None) -> ServedModel:
        chosen = self.models.get(name or self.default)
        if chosen is None:
            raise APIError(404, "unknown_model",
                           f"no model named {name!r} is served; choose one of {list(self.models)}")
        return chosen


router = APIRouter()


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def _png_data_url(x: np.ndarray) -> str:
    """uint8 (28, 28) -> `data:image/png;base64,...` for the page to show."""
    buf = io.BytesIO()
    Image.fromarray(x, mode="L").save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


async def read_payload(request: Request, *, allow_pixels: bool = True) -> Payload:
    """The request body -> Payload: multipart upload, JSON (image or pixels) or a raw image/* body.

    JSON bodies over BIG_JSON bytes (base64 images) are parsed in the decode pool."""
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
        model = form.get("model")
        return Payload("upload", image_bytes=await upload.read(),
                       model=model if isinstance(model, str) and model else None, top_k=parse_top_k(form.get("top_k")),
                       reject_threshold=parse_threshold(form.get("reject_threshold")))
    body = b"".join([chunk async for chunk in request.stream()])
    if content_type == "application/json" or content_type.endswith("+json"):
        if len(body) < BIG_JSON:
            return parse_json(body, allow_pixels=allow_pixels)
        return await _service(request).decodes.run(parse_json, body, allow_pixels=allow_pixels)
    if content_type.startswith("image/"):
        return Payload("upload", image_bytes=body)
    raise APIError(415, "unsupported_media_type",
                   f"Content-Type {content_type or '(none)'!r} is not accepted; send multipart/form-data with a "
                   "\"file\", application/json with \"image\"" + (" or \"pixels\"" if allow_pixels else "")
                   + ", or an image/png or image/jpeg body")


def _prepare(predictor: Predictor, data: bytes, max_pixels: int) -> tuple[np.ndarray, Ink]:
    """An uploaded file -> (the uint8 (28, 28) the model sees, its ink facts); APIError 422 when the library
    refuses the file. A blank picture is no error: its prediction is rejected with reason "blank"."""
    try:
        done = predictor.preprocessed(data, name="uploaded image", max_pixels=max_pixels)
    except DigitlabError as exc:
        raise api_error(exc) from None
    return done.image, Ink.of(done)


@router.post("/api/predict", summary="Classify one image", response_model=PredictResponse,
             openapi_extra=request_body(pixels=True), responses=IMAGE_ERRORS)
async def predict(
    request: Request,
    model: str | None = Query(None, description="served model to use (default: the first; see /api/model)"),
    top_k: int | None = Query(None, ge=1, description="how many best classes to list (default 3)"),
    reject_threshold: float | None = Query(None, description="override the model's not-a-digit threshold "
                                                             "(its energy score; see /api/model's meta.rejection)"),
) -> Response:
    start = time.perf_counter()
    service = _service(request)
    payload = await read_payload(request)
    chosen = service.choose(model or payload.model)
    k = top_k or payload.top_k or service.default_top_k
    if payload.pixels is not None:
        x = payload.pixels  # already MNIST format: no preprocessing
        ink = Ink.of_images(x[None])[0]
    else:
        assert payload.image_bytes is not None
        x, ink = await service.decodes.run(_prepare, chosen.predictor, payload.image_bytes, service.max_image_pixels)
    logits = await chosen.batcher.predict(x)  # (C,), batched with concurrent requests
    threshold = reject_threshold if reject_threshold is not None else payload.reject_threshold
    if threshold is not None and not math.isfinite(threshold):
        raise APIError(422, "invalid_parameter", f"reject_threshold must be a finite number, got {threshold!r}")
    prediction = chosen.predictor.prediction(logits, top_k=k, ink=ink, reject_threshold=threshold)
    body = PredictResponse(**prediction.model_dump(), image=_png_data_url(x),
                           elapsed_ms=round((time.perf_counter() - start) * 1000.0, 3))
    return Response(body.model_dump_json(), media_type="application/json")


@router.post("/api/read", summary="Read every digit in an image (a whole number)", response_model=ReadResponse,
             openapi_extra=request_body(pixels=False), responses=IMAGE_ERRORS)
async def read(
    request: Request,
    model: str | None = Query(None, description="served model to use (default: the first; see /api/model)"),
) -> Response:
    start = time.perf_counter()
    service = _service(request)
    payload = await read_payload(request, allow_pixels=False)
    chosen = service.choose(model or payload.model)
    data = payload.image_bytes
    assert data is not None

    def work() -> Any:
        try:
            return chosen.predictor.read(data, name="uploaded image",
                                         max_pixels=service.max_image_pixels)
        except DigitlabError as exc:
            raise api_error(exc) from None

    reading = await service.decodes.run(work)
    body = ReadResponse(**reading.model_dump(), elapsed_ms=round((time.perf_counter() - start) * 1000.0, 3))
    return Response(body.model_dump_json(), media_type="application/json")


@router.head("/api/model", include_in_schema=False)
@router.get("/api/model", response_model=ModelList, responses=error_responses(401, 429),
            summary="Every served model: metadata, class names, test metrics from report.json")
async def model_info(request: Request) -> Response:
    service = _service(request)
    body = ModelList(default=service.default, models=[m.info for m in service.models.values()])
    return Response(body.model_dump_json(), media_type="application/json")


@router.head("/healthz", include_in_schema=False)
@router.get("/healthz", response_model=Health, summary="Liveness: the service is up and its models are loaded")
async def healthz(request: Request) -> Response:
    return Response(Health(models=list(_service(request).models)).model_dump_json(), media_type="application/json")


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html")


@router.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
async def docs() -> FileResponse:
    return FileResponse(STATIC_DIR / "docs.html")


@router.api_route("/openapi.json", methods=["GET", "HEAD"], include_in_schema=False)
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())
