"""The circuit breaker layer: one breaker per host, exactly one probe when half-open."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypedDict

import httpx

from wanderer_console.domain.clock import Clock
from wanderer_console.http.chain_base import CircuitOpenError, Wrapper, host_key
from wanderer_console.http.deadline import cut_short
from wanderer_console.http.settings import HttpServiceSettings

__all__ = ["BreakerEvent", "BreakerSnapshot", "BreakerTransport", "CircuitBreakers", "State"]

log = logging.getLogger(__name__)


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
    failed_probes: int = 0
    """Probes failed since the breaker opened (each one doubles the wait before the next)."""


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

    def probe_delay(self, failed_probes: int) -> float:
        """The wait before the next probe after ``failed_probes`` failed ones: the first
        ``breaker_fast_probes`` come every ``breaker_probe_seconds``, then the wait doubles up
        to the cool-down."""
        cooldown = self._s.breaker_cooldown_seconds
        first = self._s.breaker_probe_seconds
        if first <= 0:
            return cooldown
        doublings = max(0, failed_probes + 1 - self._s.breaker_fast_probes)
        return min(cooldown, first * 2.0 ** min(doublings, 30))

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
            ready_at = breaker.opened_at + self.probe_delay(breaker.failed_probes)
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
            breaker.failed_probes = 0
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
                breaker.failed_probes += 1
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
            breaker.failed_probes = 0
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
                next_probe = opened + self.probe_delay(b.failed_probes)
            out[host] = BreakerSnapshot(
                state=b.state, failures=len(b.failures), opened_at=opened, next_probe_at=next_probe
            )
        return out


class BreakerTransport(Wrapper):
    """Applies :class:`CircuitBreakers` to every attempt."""

    def __init__(self, inner: httpx.AsyncBaseTransport, breakers: CircuitBreakers) -> None:
        self._inner = inner
        self._breakers = breakers

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Admit, forward, record the verdict."""
        host = host_key(request.url)
        probe = self._breakers.acquire(host)
        # Sent with less than half its caller's bound left (http/deadline.py), a timeout is the
        # caller's budget running out, not the host failing: no verdict.
        short = cut_short()
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException as exc:
            if short:
                self._breakers.release(host, probe)
            else:
                self._breakers.failure(host, probe, type(exc).__name__)
            raise
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
