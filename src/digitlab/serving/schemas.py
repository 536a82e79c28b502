"""The HTTP request and response schemas, declared once: validation and the OpenAPI document use them.

Responses reuse the library's own types (`digitlab.prediction`), so a prediction has
the same keys over HTTP as in Python and in `digitlab predict --json`; the API adds `image`
(the 28x28 the model saw) and `elapsed_ms`.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from digitlab.prediction import Prediction, Reading


class ImageRequest(BaseModel):
    """`POST /api/predict` or `/api/read` with a JSON body: a base64 picture, or (predict only) 28x28 pixels."""

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, description="data URL or raw base64 of a PNG/JPEG/...; preprocessed like a "
                                                "photo (the model's dataset's procedure)")
    pixels: list[Any] | None = Field(None, description="784 numbers or 28 rows of 28 in MNIST format (bright ink "
                                                       "on black), NOT preprocessed. Integers 0..255; any "
                                                       "non-integer makes it 0..1. /api/predict only")
    scale: Literal[1, 255] | None = Field(None, description="force 0..1 (1) or 0..255 (255) for pixels")
    model: str | None = Field(None, description="served model to use (default: the first; see /api/model)")
    top_k: int | None = Field(None, ge=1, description="how many best classes to list")
    reject_threshold: float | None = Field(None, description="override the model's not-a-digit threshold for "
                                                             "this request")


class UploadForm(BaseModel):
    """The multipart form of `POST /api/predict` and `/api/read`."""

    file: bytes = Field(description="the image file (PNG, JPEG, GIF, BMP, TIFF or WebP)",
                        json_schema_extra={"format": "binary"})
    model: str | None = Field(None, description="served model to use")
    top_k: int | None = Field(None, ge=1, description="how many best classes to list")


class PredictResponse(Prediction):
    """`POST /api/predict`: the prediction, plus the image the model saw and the time taken."""

    image: str = Field(description="PNG data URL of the 28x28 image the model saw")
    elapsed_ms: float = Field(description="time the server spent on the request, in milliseconds")


class ReadResponse(Reading):
    """`POST /api/read`: every digit found, left to right, lines top to bottom."""

    elapsed_ms: float = Field(description="time the server spent on the request, in milliseconds")


class ModelInfo(BaseModel):
    """One served model."""

    name: str = Field(description="the name a request chooses it by")
    model_id: str
    backend: str | None = Field(description="int8, onnx or torch")
    dataset: str | None
    num_classes: int
    class_names: list[str]
    meta: dict[str, Any] = Field(description="the model.json")
    test_metrics: dict[str, Any] | None = Field(description="report.json's summary, when the run has one")


class ModelList(BaseModel):
    """`GET /api/model`: every served model; `default` answers requests that name none."""

    default: str
    models: list[ModelInfo]


class Health(BaseModel):
    """`GET /healthz`."""

    status: Literal["ok"] = "ok"
    models: list[str]


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable, e.g. invalid_image, body_too_large")
    message: str = Field(description="what was wrong and what to do")


class ErrorBody(BaseModel):
    """Every error answers this shape: 4xx for a request the client can fix, 503/504 under load."""

    error: ErrorDetail


ERROR_CODES: dict[int, str] = {
    400: "invalid_json, invalid_multipart, bad_request",
    401: "unauthorized",
    404: "unknown_model, not_found",
    413: "body_too_large",
    415: "unsupported_media_type, unsupported_image_format",
    422: "invalid_image, image_too_large, invalid_shape, invalid_pixels, pixels_out_of_range, invalid_base64, "
         "missing_input, unknown_field, invalid_parameter",
    429: "rate_limited (see Retry-After)",
    500: "internal_error (a bug: never for bad input)",
    503: "busy (see Retry-After), shutting_down",
    504: "deadline_exceeded",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entries for these error statuses."""
    return {s: {"model": ErrorBody, "description": ERROR_CODES[s]} for s in statuses}


def request_body(*, pixels: bool) -> dict[str, Any]:
    """The OpenAPI requestBody of an image endpoint: multipart, JSON or a raw image body."""
    json_schema = ImageRequest.model_json_schema()
    if not pixels:
        json_schema["properties"] = {k: v for k, v in json_schema["properties"].items() if k not in ("pixels", "scale")}
    binary = {"type": "string", "format": "binary"}
    return {"requestBody": {"required": True, "content": {
        "multipart/form-data": {"schema": UploadForm.model_json_schema()},
        "application/json": {"schema": json_schema},
        **{f"image/{kind}": {"schema": binary} for kind in ("png", "jpeg", "gif", "bmp", "tiff", "webp")},
    }}}
