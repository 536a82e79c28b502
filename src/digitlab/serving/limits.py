"""Bounded work per request and per client: the decode pool, the request deadline and the rate limit.

- `DecodePool`: image decoding and preprocessing (uploads, base64 images, large JSON bodies) run
  on at most `workers` threads of their own; `queue` more requests may wait for one, each at most
  `wait_s`; beyond that the answer is a 503 `busy` with `Retry-After`. JSON pixels never enter it,
  so they are answered while uploads queue. By default a queued request waits as long as its
  deadline allows (reading a page takes a second or two; a short wait would refuse readers the
  service could still answer in time).
- `DeadlineMiddleware`: an `/api/*` request still running after `deadline_s` (reading a slow body,
  waiting for the pool, decoding) is cancelled and answered 504 `deadline_exceeded`, with
  `Connection: close` so a half-sent body does not keep the connection.
- `RateLimiter` / `RateLimitMiddleware`: a token bucket per client address (IPv6 clients by their
  /64), `rate` requests per second on average, bursts up to `burst`; beyond that 429
  `rate_limited` with `Retry-After`.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from digitlab.errors import DigitlabError
from digitlab.serving.errors import APIError, error_response
from digitlab.serving.security import is_api

T = TypeVar("T")
log = logging.getLogger("digitlab.serving")

DEFAULT_DEADLINE_S = 10.0  # a digit photo decodes in milliseconds; ten seconds is a stuck or trickling client
DECODE_QUEUE_PER_WORKER = 16  # default queue: bursts of uploads wait (briefly) instead of being refused
DECODE_WAIT_S = DEFAULT_DEADLINE_S  # a queued request waits for a decoder as long as its deadline allows: eight
# clients reading pages at once on two cores all get their answers, in turn (a 1 s wait turned six of them away)
MAX_CLIENTS = 10_000  # rate-limit buckets kept (least recently seen dropped first): bounded memory


class DecodePool:
    """Runs heavy decodes on at most `workers` threads. Up to `queue` more wait for a thread, each at most
    `wait_s` seconds; a request beyond the queue, or one that waited too long, gets APIError 503 busy."""

    def __init__(self, workers: int, queue: int, wait_s: float = DECODE_WAIT_S) -> None:
        if workers < 1 or queue < 0 or not 0 < wait_s < math.inf:
            raise DigitlabError(f"decode pool: workers must be >= 1, queue >= 0 and wait_s > 0, got {workers}, "
                                f"{queue} and {wait_s}")
        self.workers, self.queue, self.wait_s = workers, queue, wait_s
        self._lock = threading.Lock()
        self._pending = 0  # submitted and not finished (running or queued)
        self._executor: ThreadPoolExecutor | None = None

    @property
    def pending(self) -> int:
        """Decodes running or waiting right now."""
        return self._pending

    def _done(self, _: Future[Any]) -> None:
        with self._lock:
            self._pending -= 1

    def _busy(self, why: str) -> APIError:
        return APIError(503, "busy", f"the service is busy decoding images ({why}); try again in a moment",
                        headers={"Retry-After": "1"})

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """`fn(*args, **kwargs)` on a pool thread; APIError 503 `busy` (Retry-After: 1) when the pool is full.

        Cancelling the caller (deadline, client gone) drops a queued job; a running one finishes
        on its thread and keeps its slot until then, so at most `workers` decodes ever run.
        """
        with self._lock:
            if self._pending >= self.workers + self.queue:
                raise self._busy(f"{self.workers} running, {self.queue} waiting")
            self._pending += 1
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="digitlab-decode")
            executor = self._executor
        started = threading.Event()

        def job() -> T:
            started.set()
            return fn(*args, **kwargs)

        try:
            future = executor.submit(job)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        future.add_done_callback(self._done)
        waiting = asyncio.wrap_future(future)  # cancelling this cancels the job if it has not started
        if not started.is_set():
            try:
                await asyncio.wait({waiting}, timeout=self.wait_s)
            except asyncio.CancelledError:
                future.cancel()
                raise
            if not waiting.done() and future.cancel():  # still queued after wait_s: give up on it
                raise self._busy(f"no decoder was free within {self.wait_s:g} s")
        return await waiting

    def close(self) -> None:
        """Drop queued jobs and let the threads end (server shutdown); a later `run` starts new threads."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)


class DeadlineMiddleware:
    """Cancels an `/api/*` request after `deadline_s` seconds and answers 504 `deadline_exceeded`."""

    def __init__(self, app: ASGIApp, deadline_s: float) -> None:
        self.app = app
        self.deadline_s = deadline_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_api(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        with anyio.move_on_after(self.deadline_s) as cancel_scope:
            await self.app(scope, receive, tracking_send)
        if cancel_scope.cancelled_caught:
            log.info("%s %s: cancelled after the %g s deadline", scope["method"], scope["path"], self.deadline_s)
            if not started:
                response = error_response(504, "deadline_exceeded", f"the request took longer than the "
                                          f"{self.deadline_s:g} s deadline (a slow upload or a busy service); "
                                          "try again", {"Connection": "close"})
                await response(scope, receive, send)


_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:/\s*s)?\s*$")


def parse_rate(text: str) -> float:
    """`"N/s"` (or a bare `N`) -> N requests per second, N > 0; DigitlabError otherwise."""
    match = _RATE.match(text)
    rate = float(match.group(1)) if match else 0.0
    if not match or not 0 < rate < math.inf:
        raise DigitlabError(f"rate limit {text!r}: write it as requests per second, e.g. 5/s or 0.5/s")
    return rate


def client_key(host: str) -> str:
    """The bucket a client address belongs to: itself, or its /64 network for IPv6 (one subscriber's block)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if not address.is_loopback:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RateLimiter:
    """Token buckets per client: `rate` requests per second on average, bursts of up to `burst`.

    `burst` defaults to max(1, rate): one second's worth. `clock` is injectable for tests.
    """

    def __init__(self, rate: float, *, burst: float | None = None, max_clients: int = MAX_CLIENTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < rate < math.inf:
            raise DigitlabError(f"rate limit: {rate!r} requests per second must be a positive number")
        self.rate = float(rate)
        self.burst = float(burst) if burst is not None else max(1.0, self.rate)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, last seen)

    def acquire(self, client: str) -> float:
        """Take a token for `client`: 0.0 when the request may go ahead, else the seconds until one is back."""
        now = self._clock()
        tokens, last = self._buckets.pop(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
        self._buckets[client] = (tokens - 1.0 if wait == 0.0 else tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)  # the least recently seen client
        return wait


class RateLimitMiddleware:
    """Answers 429 `rate_limited` with Retry-After to an `/api/*` request whose client is over its rate."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_api(scope["path"]):
            client = scope.get("client")
            wait = self.limiter.acquire(client_key(client[0]) if client else "?")
            if wait > 0:
                retry = max(1, math.ceil(wait))
                response = error_response(429, "rate_limited", f"too many requests from this address (limit "
                                          f"{self.limiter.rate:g}/s); try again in {retry} s",
                                          {"Retry-After": str(retry)})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
