"""HTTP errors of the recognition service: one JSON shape, `{"error": {"code", "message"}}`.

`APIError` is a request the client can fix (4xx) or a refusal under load (503/504), answered by
the handlers `install_error_handlers` registers. `LastResortMiddleware` is the net under them:
a client that leaves mid-request, or a request cancelled at shutdown, is one log line, and
anything unexpected is one logged traceback and a JSON 500, never a bare traceback page.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("digitlab.serving")

_STATUS_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class APIError(Exception):
    """A request the client can fix, or one refused under load: answered with `status`, a JSON error
    body and `headers` (e.g. Retry-After, WWW-Authenticate)."""

    def __init__(self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """The JSON error response every failure of the API uses."""
    body = json.dumps({"error": {"code": code, "message": message}})
    return Response(body, status_code=status, media_type="application/json", headers=dict(headers or {}))


def api_error_response(exc: APIError) -> Response:
    """`error_response` for an APIError."""
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return api_error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "http_error")
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.url.path}; see /openapi.json or /docs for the API"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs for the methods it takes"
    return error_response(exc.status_code, code, message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}" for err in exc.errors()
    )
    return error_response(422, "invalid_parameter", f"{problems}; see /docs for the accepted parameters")


def install_error_handlers(app: FastAPI) -> None:
    """Make every client error of `app` answer in the one JSON error shape."""
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)


class LastResortMiddleware:
    """What no handler caught: a client gone mid-request is one INFO line; any other exception is
    logged once with its traceback and answered with a JSON 500 (when no answer has started yet)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except asyncio.CancelledError:
            # uvicorn cancels a request's task only to end it: the graceful shutdown ran out of time
            # (--shutdown-timeout). Ending it here, answered, keeps the log to one line, not a traceback.
            log.info("%s %s from %s: cancelled, the server is shutting down", scope["method"], scope["path"],
                     _client(scope))
            if not started:
                await error_response(503, "shutting_down", "the service is shutting down; try again in a moment",
                                     {"Connection": "close", "Retry-After": "5"})(scope, receive, send)
        except ClientDisconnect:
            log.info("%s %s from %s: the client disconnected before the whole request arrived", scope["method"],
                     scope["path"], _client(scope))
        except Exception:
            log.exception("%s %s from %s failed inside the service", scope["method"], scope["path"], _client(scope))
            if not started:
                await error_response(500, "internal_error", "the service failed on this request (logged on the "
                                     "server); try again, and report it if it happens again")(scope, receive, send)


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "an unknown client"
