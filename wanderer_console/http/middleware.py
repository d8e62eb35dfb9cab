"""The middleware chain: wrapping ``httpx.AsyncBaseTransport`` layers, outermost first.

``telemetry → retry → circuit breaker → rate limit → network``

* **telemetry** counts one logical request (retries included): status, duration, bytes in and out.
* **retry** re-sends idempotent requests (GET/HEAD/PUT/DELETE/OPTIONS, or any request carrying the
  :data:`IDEMPOTENT` extension) after connect errors, timeouts, 408, 429 and 5xx, with exponential
  backoff and full jitter, never sooner than ``Retry-After``, within a cap on attempts and time.
  Requests carrying :data:`NO_RETRY` (long-lived streams) pass straight through.
* **circuit breaker** per host: opens after N failures (5xx, transport errors) within a window,
  lets exactly one probe through after the cool-down, fails everybody else fast with
  :class:`CircuitOpenError`.
* **rate limit** per host: a token bucket (GCRA) plus pauses learned from response headers
  (Discord ``X-RateLimit-*`` buckets, ESI ``X-ESI-Error-Limit-*`` and 420).

Time comes from a :class:`~wanderer_console.domain.clock.Clock` so tests can substitute their own.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Final

import httpx

from wanderer_console.domain.clock import Clock
from wanderer_console.http.breaker import (
    BreakerEvent,
    BreakerSnapshot,
    BreakerTransport,
    CircuitBreakers,
)
from wanderer_console.http.chain_base import (
    CircuitOpenError,
    Wrapper,
    float_header,
    host_key,
    retry_after_seconds,
)
from wanderer_console.http.deadline import time_left
from wanderer_console.http.errors import ATTEMPTS, IDEMPOTENT, NO_RETRY, TransportError
from wanderer_console.http.ratelimit import RateLimiter, RateLimitTransport
from wanderer_console.http.settings import HttpServiceSettings
from wanderer_console.http.split import SplitTransport
from wanderer_console.http.telemetry import HttpMetrics
from wanderer_console.http.tls import shared_ssl_context

__all__ = [
    "IDEMPOTENT",
    "NO_RETRY",
    "BreakerEvent",
    "BreakerSnapshot",
    "CircuitBreakers",
    "CircuitOpenError",
    "RateLimiter",
    "build_chain",
    "host_key",
    "httpcore_pool",
    "network_transport",
    "retry_after_seconds",
]

log = logging.getLogger(__name__)

_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_RETRY_STATUSES: Final = frozenset({408, 429})
_RETRYABLE_ERRORS: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
_LABEL_CACHE: Final = 1024
"""(method, status) label children kept per service (statuses are few; bounded all the same)."""


# -- telemetry ---------------------------------------------------------------------------------


class _CountingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, counter: Callable[[int], None]) -> None:
        self._inner = inner
        self._count = counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._count(len(chunk))
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class TelemetryTransport(Wrapper):
    """Counts logical requests by final status; measures time to headers and bytes."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, service: str, metrics: HttpMetrics, clock: Clock
    ) -> None:
        self._inner = inner
        self._service = service
        self._m = metrics
        self._clock = clock
        # The service's label children, looked up once (not per request).
        self._bytes_out = metrics.bytes_out.labels(service)
        self._bytes_in = metrics.bytes_in.labels(service)
        self._duration = metrics.duration.labels(service)
        self._requests: dict[tuple[str, str], Any] = {}

    def _count(self, method: str, status: str) -> None:
        child = self._requests.get((method, status))
        if child is None:
            child = self._m.requests.labels(self._service, method, status)
            if len(self._requests) < _LABEL_CACHE:
                self._requests[(method, status)] = child
        child.inc()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward and record."""
        started = self._clock.monotonic()
        sent = len(request.content) if isinstance(request.stream, httpx.ByteStream) else 0
        if sent:
            self._bytes_out.inc(sent)
        status = "cancelled"  # what a BaseException (cancellation, shutdown) leaves it as
        try:
            response = await self._inner.handle_async_request(request)
        except TransportError as exc:
            status = exc.kind
            raise
        except httpx.TimeoutException:
            status = "timeout"
            raise
        except httpx.ConnectError:
            status = "connect"
            raise
        except httpx.HTTPError:
            status = "error"
            raise
        else:
            status = str(response.status_code)
            try:
                received = len(response.content)
            except httpx.ResponseNotRead:  # streamed: counted as it is read
                if isinstance(response.stream, httpx.AsyncByteStream):
                    response.stream = _CountingStream(response.stream, self._bytes_in.inc)
            else:  # read whole by the transport (h1's, aiohttp's)
                if received:
                    self._bytes_in.inc(received)
            return response
        finally:
            self._count(request.method, status)
            self._duration.observe(self._clock.monotonic() - started)


# -- retry ------------------------------------------------------------------------------------


class RetryTransport(Wrapper):
    """Retries idempotent requests with full-jitter exponential backoff."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        settings: HttpServiceSettings,
        *,
        clock: Clock,
        metrics: HttpMetrics,
        service: str,
        rng: random.Random | None = None,
    ) -> None:
        self._inner = inner
        self._s = settings
        self._clock = clock
        self._m = metrics
        self._service = service
        self._rng = rng or random.Random()

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self._s.retry_backoff_max_seconds,
            self._s.retry_backoff_base_seconds * (2 ** (attempt - 1)),
        )
        return self._rng.uniform(0.0, ceiling)

    @staticmethod
    def retryable(request: httpx.Request) -> bool:
        """Whether the chain may send ``request`` more than once."""
        if request.extensions.get(NO_RETRY):
            return False
        flag = request.extensions.get(IDEMPOTENT)
        if flag is not None:
            return bool(flag)
        return request.method.upper() in _IDEMPOTENT_METHODS

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send, and re-send while the answer is retryable and the budget allows."""
        if self._s.retry_attempts <= 1 or not self.retryable(request):
            return await self._inner.handle_async_request(request)
        started = self._clock.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._inner.handle_async_request(request)
            except CircuitOpenError:
                raise
            except _RETRYABLE_ERRORS as exc:
                delay = self._backoff(attempt)
                if not self._may_retry(attempt, started, delay):
                    raise
                self._m.retries.labels(self._service, type(exc).__name__).inc()
                await self._clock.sleep(delay)
                _fit_deadline(request)
                continue
            status = response.status_code
            if not (status in _RETRY_STATUSES or 500 <= status <= 599):
                response.extensions[ATTEMPTS] = attempt
                return response
            delay = self._backoff(attempt)
            waited = retry_after_seconds(response.headers, self._clock.wall())
            if waited is None and status == 429:
                waited = float_header(response.headers, "x-ratelimit-reset-after")
            if waited is not None:
                delay = max(delay, waited)
            if not self._may_retry(attempt, started, delay):
                response.extensions[ATTEMPTS] = attempt
                return response
            await response.aclose()
            self._m.retries.labels(self._service, str(status)).inc()
            await self._clock.sleep(delay)
            _fit_deadline(request)

    def _may_retry(self, attempt: int, started: float, delay: float) -> bool:
        if attempt >= self._s.retry_attempts:
            return False
        left = time_left()  # the caller's deadline (http/deadline.py): no retry past it
        if left is not None and delay >= left:
            return False
        elapsed = self._clock.monotonic() - started
        return elapsed + delay <= self._s.retry_max_seconds


def _fit_deadline(request: httpx.Request) -> None:
    """Cut a re-sent request's timeouts to the time left before its caller's deadline."""
    left = time_left()
    if left is None:
        return
    left = max(0.0, left)
    timeouts = request.extensions.get("timeout") or dict.fromkeys(
        ("connect", "read", "write", "pool")
    )
    request.extensions["timeout"] = {
        kind: left if value is None else min(value, left) for kind, value in timeouts.items()
    }


# -- assembly ---------------------------------------------------------------------------------


def network_transport(settings: HttpServiceSettings) -> httpx.AsyncBaseTransport:
    """The pooled network transport at the bottom of a service's chain, HTTP/1.1 connections
    kept alive per host for ``keepalive_seconds`` (at most ``max_connections``)."""
    if settings.transport == "h1":
        from wanderer_console.http.h1 import H1Transport

        return H1Transport(
            max_connections=settings.max_connections, keepalive_seconds=settings.keepalive_seconds
        )
    if settings.transport == "aiohttp":
        from wanderer_console.http.aio import AiohttpTransport

        return AiohttpTransport(
            max_connections=settings.max_connections, keepalive_seconds=settings.keepalive_seconds
        )
    # Long-lived streams in a pool of their own: httpcore's walks every connection it holds at
    # each request's start and end (see :mod:`~wanderer_console.http.split`).
    return SplitTransport(streams=httpcore_pool(settings), requests=httpcore_pool(settings))


def httpcore_pool(settings: HttpServiceSettings) -> httpx.AsyncHTTPTransport:
    """One httpcore connection pool with the service's limits (keeps 20 idle at most)."""
    limits = httpx.Limits(
        max_connections=settings.max_connections,
        max_keepalive_connections=20,
        keepalive_expiry=settings.keepalive_seconds,
    )
    return httpx.AsyncHTTPTransport(limits=limits, verify=shared_ssl_context())


@dataclass(slots=True)
class Chain:
    """An assembled chain and the state callers may inspect."""

    transport: httpx.AsyncBaseTransport
    breakers: CircuitBreakers
    limiter: RateLimiter


def build_chain(
    service: str,
    settings: HttpServiceSettings,
    *,
    metrics: HttpMetrics,
    clock: Clock,
    inner: httpx.AsyncBaseTransport | None = None,
    on_transition: Callable[[BreakerEvent], None] | None = None,
    rng: random.Random | None = None,
) -> Chain:
    """``telemetry → retry → breaker → rate limit → inner`` (inner: a pooled network transport)."""

    def transition(event: BreakerEvent) -> None:
        metrics.breaker_transitions.labels(service, event.to_state).inc()
        if on_transition is not None:
            on_transition(event)

    network = inner or network_transport(settings)
    limiter = RateLimiter(settings, clock=clock, metrics=metrics, service=service)
    breakers = CircuitBreakers(settings, clock=clock, on_transition=transition)
    transport: httpx.AsyncBaseTransport = RateLimitTransport(network, limiter)
    transport = BreakerTransport(transport, breakers)
    transport = RetryTransport(
        transport, settings, clock=clock, metrics=metrics, service=service, rng=rng
    )
    transport = TelemetryTransport(transport, service, metrics, clock)
    return Chain(transport, breakers, limiter)
