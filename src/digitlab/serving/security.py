"""Who may use the service and what browsers may do with its pages: bearer-token auth and security headers.

- `TokenAuthMiddleware`: with a token configured, every `/api/*` request needs
  `Authorization: Bearer TOKEN` (compared in constant time); without it the answer is a 401
  `{"error": {"code": "unauthorized"}}` with `WWW-Authenticate: Bearer`. `/healthz`, the page,
  `/static/*`, `/docs` and `/openapi.json` stay open: the page itself asks for the token when
  the API answers 401 `unauthorized`, then sends it on every call.
- `SecurityHeadersMiddleware`: a strict Content-Security-Policy (same-origin scripts, styles and
  connections; no plugins, no framing, no inline code), `nosniff`, `DENY` framing, no referrer,
  on every answer (errors, static files and 404s too), and `Cache-Control: no-store` on API answers.
"""
from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab.errors import DigitlabError
from digitlab.serving.errors import error_response

API_PREFIX = "/api/"
MIN_TOKEN_CHARS = 16  # shorter tokens are accepted, with a warning from `digitlab serve`

CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
                           "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
NO_STORE = (b"cache-control", b"no-store")


def check_token(token: str) -> str:
    """`token` if it can travel in an Authorization header (visible ASCII, no spaces), else DigitlabError."""
    if not token or not all("!" <= ch <= "~" for ch in token):
        raise DigitlabError("the service token must be non-empty visible ASCII without spaces (it travels in an "
                            "HTTP header); generate one with: "
                            "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    return token


def is_api(path: str) -> bool:
    """Whether `path` is under `/api/` (where the token, rate limit and deadline apply)."""
    return path.startswith(API_PREFIX)


class TokenAuthMiddleware:
    """Requires `Authorization: Bearer <token>` on `/api/*`; other paths pass untouched."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = check_token(token).encode("ascii")

    def _authorized(self, scope: Scope) -> bool | None:
        """True: the right token; False: a wrong one; None: no bearer credentials at all."""
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, credentials = value.strip().partition(b" ")
                if scheme.lower() != b"bearer":
                    return None
                return hmac.compare_digest(credentials.strip(), self._expected)  # constant time
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        verdict = self._authorized(scope)
        if verdict:
            await self.app(scope, receive, send)
            return
        challenge = 'Bearer realm="digitlab"' + ("" if verdict is None else ', error="invalid_token"')
        message = ("this service needs a token: send the header Authorization: Bearer <token> (the token was given "
                   "to `digitlab serve --token` or $DIGITLAB_TOKEN)" if verdict is None else
                   "the token in the Authorization header is not the service's token; check it and send it again")
        response = error_response(401, "unauthorized", message, {"WWW-Authenticate": challenge})
        await response(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds `SECURITY_HEADERS` to every answer, and `Cache-Control: no-store` to `/api/*` and `/healthz`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = SECURITY_HEADERS + ((NO_STORE,) if is_api(scope["path"]) or scope["path"] == "/healthz" else ())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {k.lower() for k, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
