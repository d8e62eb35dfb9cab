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

Time comes from a :class:`Clock` so tests can substitute their own.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Literal, TypedDict

import httpx

from wanderer_console.http.client import ATTEMPTS, IDEMPOTENT, NO_RETRY, TransportError
from wanderer_console.http.settings import HttpServiceSettings
from wanderer_console.http.telemetry import HttpMetrics

__all__ = [
    "IDEMPOTENT",
    "NO_RETRY",
    "BreakerEvent",
    "BreakerSnapshot",
    "CircuitBreakers",
    "CircuitOpenError",
    "Clock",
    "RateLimiter",
    "build_chain",
]

log = logging.getLogger(__name__)


_IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
_RETRY_STATUSES: Final = frozenset({408, 429})
_RETRYABLE_ERRORS: Final = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)


@dataclass(frozen=True, slots=True)
class Clock:
    """Monotonic time, wall time and sleep, injectable for tests."""

    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


class CircuitOpenError(TransportError):
    """The host's breaker is open (or a probe is already in flight): failed fast, nothing sent."""

    def __init__(self, host: str, retry_in: float | None = None) -> None:
        detail = f"{host} circuit open"
        if retry_in is not None:
            detail += f", next probe in {max(0.0, retry_in):.1f}s"
        super().__init__("circuit_open", detail)
        self.host = host


def host_key(url: httpx.URL) -> str:
    """``host`` or ``host:port`` (the unit of rate limits and breakers)."""
    return f"{url.host}:{url.port}" if url.port else url.host


def _float_header(headers: httpx.Headers, name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def retry_after_seconds(headers: httpx.Headers, now_wall: float) -> float | None:
    """``Retry-After`` as seconds (number or HTTP date), else None."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_wall)


class _Wrapper(httpx.AsyncBaseTransport):
    """A layer around ``inner``; closing it closes the inner transport."""

    _inner: httpx.AsyncBaseTransport

    async def aclose(self) -> None:
        """Close the wrapped transport (the pooled network transport at the bottom)."""
        await self._inner.aclose()


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


class TelemetryTransport(_Wrapper):
    """Counts logical requests by final status; measures time to headers and bytes."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, service: str, metrics: HttpMetrics, clock: Clock
    ) -> None:
        self._inner = inner
        self._service = service
        self._m = metrics
        self._clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Forward and record."""
        started = self._clock.monotonic()
        sent = len(request.content) if isinstance(request.stream, httpx.ByteStream) else 0
        if sent:
            self._m.bytes_out.labels(self._service).inc(sent)
        status: str
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
            counter = self._m.bytes_in.labels(self._service)
            if isinstance(response.stream, httpx.AsyncByteStream):
                response.stream = _CountingStream(response.stream, counter.inc)
            return response
        finally:
            self._m.requests.labels(self._service, request.method, status).inc()
            self._m.duration.labels(self._service).observe(self._clock.monotonic() - started)


# -- retry ------------------------------------------------------------------------------------


class RetryTransport(_Wrapper):
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
                continue
            status = response.status_code
            if not (status in _RETRY_STATUSES or 500 <= status <= 599):
                response.extensions[ATTEMPTS] = attempt
                return response
            delay = self._backoff(attempt)
            waited = retry_after_seconds(response.headers, self._clock.wall())
            if waited is None and status == 429:
                waited = _float_header(response.headers, "x-ratelimit-reset-after")
            if waited is not None:
                delay = max(delay, waited)
            if not self._may_retry(attempt, started, delay):
                response.extensions[ATTEMPTS] = attempt
                return response
            await response.aclose()
            self._m.retries.labels(self._service, str(status)).inc()
            await self._clock.sleep(delay)

    def _may_retry(self, attempt: int, started: float, delay: float) -> bool:
        if attempt >= self._s.retry_attempts:
            return False
        elapsed = self._clock.monotonic() - started
        return elapsed + delay <= self._s.retry_max_seconds


# -- circuit breaker --------------------------------------------------------------------------

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One breaker transition."""

    timestamp: float
    """Wall-clock time (epoch seconds)."""
    host: str
    from_state: State
    to_state: State
    reason: str


class BreakerSnapshot(TypedDict):
    """The state of one breaker, for the runtime snapshot (times are epoch seconds)."""

    state: State
    failures: int
    opened_at: float | None
    next_probe_at: float | None


@dataclass(slots=True)
class _Breaker:
    host: str
    state: State = "closed"
    failures: deque[float] = field(default_factory=deque)
    opened_at: float | None = None
    probe_in_flight: bool = False


class CircuitBreakers:
    """One breaker per host with a bounded log of transitions."""

    def __init__(
        self,
        settings: HttpServiceSettings,
        *,
        clock: Clock,
        on_transition: Callable[[BreakerEvent], None] | None = None,
        history: int = 200,
    ) -> None:
        self._s = settings
        self._clock = clock
        self._on_transition = on_transition
        self._breakers: dict[str, _Breaker] = {}
        self.events: deque[BreakerEvent] = deque(maxlen=history)

    def _get(self, host: str) -> _Breaker:
        breaker = self._breakers.get(host)
        if breaker is None:
            breaker = self._breakers[host] = _Breaker(host)
        return breaker

    def _move(self, breaker: _Breaker, to: State, reason: str) -> None:
        event = BreakerEvent(self._clock.wall(), breaker.host, breaker.state, to, reason)
        breaker.state = to
        self.events.append(event)
        log.warning(
            "http circuit breaker %s -> %s",
            event.from_state,
            to,
            extra={"ctx": {"host": breaker.host, "reason": reason}},
        )
        if self._on_transition is not None:
            try:
                self._on_transition(event)
            except Exception:
                log.exception("breaker transition callback failed")

    def acquire(self, host: str) -> bool:
        """Admit a request to ``host``; True when it is the half-open probe.

        Raises :class:`CircuitOpenError` when the breaker is open or a probe is in flight.
        """
        breaker = self._get(host)
        if breaker.state == "closed":
            return False
        now = self._clock.monotonic()
        if breaker.state == "open":
            assert breaker.opened_at is not None
            ready_at = breaker.opened_at + self._s.breaker_cooldown_seconds
            if now < ready_at:
                raise CircuitOpenError(host, ready_at - now)
            self._move(breaker, "half_open", "cool-down elapsed")
        if breaker.probe_in_flight:
            raise CircuitOpenError(host)
        breaker.probe_in_flight = True
        return True

    def release(self, host: str, probe: bool) -> None:
        """The request ended without a verdict (cancelled): free the probe slot."""
        if probe:
            self._get(host).probe_in_flight = False

    def success(self, host: str, probe: bool) -> None:
        """The host answered (any status below 500)."""
        breaker = self._get(host)
        if probe:
            breaker.probe_in_flight = False
        if breaker.state == "half_open" and probe:
            breaker.failures.clear()
            breaker.opened_at = None
            self._move(breaker, "closed", "probe succeeded")

    def failure(self, host: str, probe: bool, reason: str) -> None:
        """The host failed (5xx or no answer)."""
        breaker = self._get(host)
        now = self._clock.monotonic()
        if probe:
            breaker.probe_in_flight = False
        if breaker.state == "half_open":
            if probe:
                breaker.opened_at = now
                self._move(breaker, "open", f"probe failed: {reason}")
            return
        if breaker.state == "open":
            return
        breaker.failures.append(now)
        horizon = now - self._s.breaker_window_seconds
        while breaker.failures and breaker.failures[0] < horizon:
            breaker.failures.popleft()
        if len(breaker.failures) >= self._s.breaker_failures:
            breaker.opened_at = now
            self._move(
                breaker,
                "open",
                f"{len(breaker.failures)} failures in {self._s.breaker_window_seconds:g}s, "
                f"last: {reason}",
            )

    def snapshot(self) -> dict[str, BreakerSnapshot]:
        """Every breaker's state."""
        mono, wall = self._clock.monotonic(), self._clock.wall()
        out: dict[str, BreakerSnapshot] = {}
        for host, b in self._breakers.items():
            opened = None if b.opened_at is None else wall - (mono - b.opened_at)
            next_probe = None
            if b.state == "open" and opened is not None:
                next_probe = opened + self._s.breaker_cooldown_seconds
            out[host] = BreakerSnapshot(
                state=b.state, failures=len(b.failures), opened_at=opened, next_probe_at=next_probe
            )
        return out


class BreakerTransport(_Wrapper):
    """Applies :class:`CircuitBreakers` to every attempt."""

    def __init__(self, inner: httpx.AsyncBaseTransport, breakers: CircuitBreakers) -> None:
        self._inner = inner
        self._breakers = breakers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Admit, forward, record the verdict."""
        host = host_key(request.url)
        probe = self._breakers.acquire(host)
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.HTTPError as exc:
            self._breakers.failure(host, probe, type(exc).__name__)
            raise
        except BaseException:
            self._breakers.release(host, probe)
            raise
        if response.status_code >= 500:
            self._breakers.failure(host, probe, f"status {response.status_code}")
        else:
            self._breakers.success(host, probe)
        return response


# -- rate limit -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Host:
    tat: float = 0.0
    """GCRA theoretical arrival time of the next request."""
    paused_until: float = 0.0
    route_bucket: dict[str, str] = field(default_factory=dict)
    bucket_paused_until: dict[str, float] = field(default_factory=dict)


_MAX_ROUTES: Final = 10_000


class RateLimiter:
    """Token bucket per host plus pauses learned from Discord and ESI headers."""

    def __init__(
        self,
        settings: HttpServiceSettings,
        *,
        clock: Clock,
        metrics: HttpMetrics | None = None,
        service: str = "",
    ) -> None:
        self._s = settings
        self._clock = clock
        self._m = metrics
        self._service = service
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        state = self._hosts.get(host)
        if state is None:
            state = self._hosts[host] = _Host()
        return state

    def _pause_until(self, state: _Host, route: str) -> float:
        bucket = state.route_bucket.get(route, route)
        return max(state.paused_until, state.bucket_paused_until.get(bucket, 0.0))

    async def acquire(self, host: str, route: str) -> None:
        """Wait for any pause on the host or the route's bucket, then for a token."""
        state = self._host(host)
        await self._wait_pauses(state, route)
        rate = self._s.rate_per_second
        if rate <= 0:
            return
        interval = 1.0 / rate
        now = self._clock.monotonic()
        tat = max(state.tat, now)
        allowed_at = tat - (self._s.burst - 1) * interval
        state.tat = tat + interval
        if allowed_at > now:
            await self._clock.sleep(allowed_at - now)
            # A pause may have been learned while this request waited for its slot.
            await self._wait_pauses(state, route)

    async def _wait_pauses(self, state: _Host, route: str) -> None:
        while True:
            wait = self._pause_until(state, route) - self._clock.monotonic()
            if wait <= 0:
                return
            await self._clock.sleep(wait)

    def _pause(self, reason: str) -> None:
        if self._m is not None:
            self._m.rate_limit_pauses.labels(self._service, reason).inc()

    def observe(self, host: str, route: str, response: httpx.Response) -> None:
        """Learn pauses from a response's headers and status."""
        headers = response.headers
        state = self._host(host)
        now = self._clock.monotonic()
        # ESI error limit: stop every call to the host until the window resets.
        reset = _float_header(headers, "x-esi-error-limit-reset")
        remain = _float_header(headers, "x-esi-error-limit-remain")
        if response.status_code == 420 or (
            remain is not None and remain < self._s.esi_error_remain_threshold
        ):
            seconds = reset
            if seconds is None:
                seconds = retry_after_seconds(headers, self._clock.wall())
            if seconds is None:
                seconds = 60.0
            state.paused_until = max(state.paused_until, now + seconds)
            self._pause("esi_error_limit")
        # Discord buckets: group routes by X-RateLimit-Bucket, pause the bucket when exhausted.
        bucket = headers.get("x-ratelimit-bucket")
        if bucket:
            if len(state.route_bucket) >= _MAX_ROUTES:
                state.route_bucket.clear()
            state.route_bucket[route] = bucket
        key = state.route_bucket.get(route, route)
        reset_after = _float_header(headers, "x-ratelimit-reset-after")
        if headers.get("x-ratelimit-remaining") == "0" and reset_after is not None:
            self._pause_bucket(state, key, now + reset_after, now)
            self._pause("bucket_exhausted")
        if response.status_code == 429:
            seconds = retry_after_seconds(headers, self._clock.wall())
            if seconds is None:
                seconds = reset_after
            if seconds is not None:
                if headers.get("x-ratelimit-global", "").lower() == "true":
                    state.paused_until = max(state.paused_until, now + seconds)
                    self._pause("global_429")
                else:
                    self._pause_bucket(state, key, now + seconds, now)
                    self._pause("429")

    @staticmethod
    def _pause_bucket(state: _Host, key: str, until: float, now: float) -> None:
        paused = state.bucket_paused_until
        if len(paused) >= _MAX_ROUTES:
            for stale in [k for k, v in paused.items() if v <= now]:
                del paused[stale]
        paused[key] = max(paused.get(key, 0.0), until)


class RateLimitTransport(_Wrapper):
    """Applies :class:`RateLimiter` to every attempt."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limiter: RateLimiter) -> None:
        self._inner = inner
        self._limiter = limiter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Wait for a token, forward, learn from the headers."""
        host = host_key(request.url)
        route = request.url.path
        await self._limiter.acquire(host, route)
        response = await self._inner.handle_async_request(request)
        self._limiter.observe(host, route, response)
        return response


# -- assembly ---------------------------------------------------------------------------------


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

    network = inner or httpx.AsyncHTTPTransport()
    limiter = RateLimiter(settings, clock=clock, metrics=metrics, service=service)
    breakers = CircuitBreakers(settings, clock=clock, on_transition=transition)
    transport: httpx.AsyncBaseTransport = RateLimitTransport(network, limiter)
    transport = BreakerTransport(transport, breakers)
    transport = RetryTransport(
        transport, settings, clock=clock, metrics=metrics, service=service, rng=rng
    )
    transport = TelemetryTransport(transport, service, metrics, clock)
    return Chain(transport, breakers, limiter)
