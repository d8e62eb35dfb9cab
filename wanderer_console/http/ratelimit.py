"""The rate-limit layer: a token bucket per host plus pauses learned from response headers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Final

import httpx

from wanderer_console.domain.clock import Clock
from wanderer_console.http.chain_base import (
    Wrapper,
    float_header,
    host_key,
    retry_after_seconds,
)
from wanderer_console.http.errors import RATE_KEY
from wanderer_console.http.settings import HttpServiceSettings
from wanderer_console.http.telemetry import HttpMetrics

__all__ = ["LONGEST_PAUSE", "RateLimitTransport", "RateLimiter"]


# -- rate limit -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Host:
    tat: float = 0.0
    """GCRA theoretical arrival time of the next request."""
    paused_until: float = 0.0
    route_bucket: dict[str, str] = field(default_factory=dict)
    bucket_paused_until: dict[str, float] = field(default_factory=dict)
    line: asyncio.Lock = field(default_factory=asyncio.Lock)
    """The requests waiting for a token, first come first served (only the first one sleeps)."""


_MAX_ROUTES: Final = 10_000

LONGEST_PAUSE: Final = 600.0
"""The longest pause a header can ask for, in seconds (ten minutes, as for the map stream's
``Retry-After``). No real window is near it (ESI's error window is a minute, Discord's buckets
reset in seconds); a ``Retry-After: 1e9`` would otherwise stop every call to the host until a
restart. A server that still means it says so again in its next answer."""


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
        """Wait for any pause on the host or the route's bucket, then for a token.

        A token is taken only when it is granted, never reserved ahead by a waiter: a request
        abandoned while it waits (its timeout, a stop) leaves no slot behind that the requests
        after it would have to wait out. The waiters queue in arrival order and only the first
        one sleeps, until its token is due.
        """
        state = self._host(host)
        now = self._clock.monotonic()
        if self._pause_until(state, route) > now:
            await self._wait_pauses(state, route)
        rate = self._s.rate_per_second
        if rate <= 0:
            return
        if not state.line.locked() and self._take(state, rate):
            return
        async with state.line:
            while True:
                # A pause of the whole host learned while this request queued (ESI's error
                # limit, a global 429) is waited out before the token is taken: tokens taken
                # during it would all be spent the moment it ends, a burst past the rate.
                await self._wait_host_pause(state)
                if self._take(state, rate):
                    break
                await self._clock.sleep(self._due(state, rate) - self._clock.monotonic())
        # A pause may have been learned while this request waited for its slot.
        await self._wait_pauses(state, route)

    def _due(self, state: _Host, rate: float) -> float:
        """When the host's next token is due (GCRA: the burst's worth before ``tat``)."""
        return state.tat - (self._s.burst - 1) / rate

    def _take(self, state: _Host, rate: float) -> bool:
        """Take a token if one is due now."""
        now = self._clock.monotonic()
        if self._due(state, rate) > now:
            return False
        state.tat = max(state.tat, now) + 1.0 / rate
        return True

    async def _wait_host_pause(self, state: _Host) -> None:
        while (wait := state.paused_until - self._clock.monotonic()) > 0:
            await self._clock.sleep(wait)

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
        remain = float_header(headers, "x-esi-error-limit-remain")
        if response.status_code == 420 or (
            remain is not None and remain < self._s.esi_error_remain_threshold
        ):
            seconds = float_header(headers, "x-esi-error-limit-reset")
            if seconds is None:
                seconds = retry_after_seconds(headers, self._clock.wall())
            if seconds is None:
                seconds = 60.0
            state.paused_until = max(state.paused_until, now + min(seconds, LONGEST_PAUSE))
            self._pause("esi_error_limit")
        if not self._s.learn_bucket_pauses:
            return  # the caller paces by these headers itself (the Discord dispatcher)
        # Discord buckets: group routes by X-RateLimit-Bucket, pause the bucket when exhausted.
        bucket = headers.get("x-ratelimit-bucket")
        if bucket:
            if len(state.route_bucket) >= _MAX_ROUTES:
                state.route_bucket.clear()
            state.route_bucket[route] = bucket
        key = state.route_bucket.get(route, route)
        reset_after = float_header(headers, "x-ratelimit-reset-after")
        if headers.get("x-ratelimit-remaining") == "0" and reset_after is not None:
            self._pause_bucket(state, key, now + min(reset_after, LONGEST_PAUSE), now)
            self._pause("bucket_exhausted")
        if response.status_code == 429:
            seconds = retry_after_seconds(headers, self._clock.wall())
            if seconds is None:
                seconds = reset_after
            if seconds is not None:
                seconds = min(seconds, LONGEST_PAUSE)
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


class RateLimitTransport(Wrapper):
    """Applies :class:`RateLimiter` to every attempt."""

    def __init__(self, inner: httpx.AsyncBaseTransport, limiter: RateLimiter) -> None:
        self._inner = inner
        self._limiter = limiter

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Wait for a token, forward, learn from the headers."""
        host = host_key(request.url)
        key = request.extensions.get(RATE_KEY)
        if key is not None:
            host = f"{host}#{key}"
        route = request.url.path
        await self._limiter.acquire(host, route)
        response = await self._inner.handle_async_request(request)
        self._limiter.observe(host, route, response)
        return response
