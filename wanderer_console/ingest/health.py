"""Connection health: the state of each source, as the snapshot and the UI show it.

Besides the state, the record keeps a short history (events per second over the last hour,
reconnect and error times) to report events per minute and a 0–100 quality score.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ConnectionHealth", "ConnectionState", "quality_score"]

_HOUR = 3600.0
RECENT_ERRORS = 5
"""How many recent errors a record keeps (the console's detail view lists them)."""


class ConnectionState(StrEnum):
    """Life cycle of a connection."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(slots=True)
class ConnectionHealth:
    """Mutable health record owned by one source; read through :meth:`snapshot`."""

    name: str
    kind: str
    state: ConnectionState = ConnectionState.CONNECTING
    since: float = field(default_factory=time.time)
    last_event_at: float | None = None
    reconnects: int = 0
    events: int = 0
    heartbeat_rtt_ms: float | None = None
    last_error: str | None = None
    errors: int = 0
    url: str | None = None
    """Where the source connects, credentials masked (the console shows it); ``None``: unsaid."""
    error_since: float | None = None
    """When the current run of errors began: the first error since the source last connected."""
    disconnected_since: float | None = field(default_factory=time.time)
    """When the source was last connected (its creation, if never): ``None`` while connected.
    A source refused again and again changes state at each retry (``since`` with it); this
    holds how long it has been without a connection (the ``source_disconnected`` alert)."""
    clock: Callable[[], float] = field(default=time.time, repr=False)
    """Wall clock (tests pass their own)."""
    _recent: deque[tuple[float, str]] = field(
        default_factory=lambda: deque(maxlen=RECENT_ERRORS), init=False, repr=False
    )
    _buckets: deque[list[float]] = field(default_factory=deque, init=False, repr=False)
    _reconnect_times: deque[float] = field(default_factory=deque, init=False, repr=False)
    _error_times: deque[float] = field(default_factory=deque, init=False, repr=False)
    _reconnects_seen: int = field(default=0, init=False, repr=False)

    def set_state(self, state: ConnectionState, error: str | None = None) -> None:
        """Move to ``state``; ``since`` changes only when the state does."""
        self._sync_reconnects()
        if state is not self.state:
            if state is ConnectionState.CONNECTED:
                self.disconnected_since = None
            elif self.state is ConnectionState.CONNECTED:
                self.disconnected_since = time.time()
            self.state = state
            self.since = time.time()
        if error is not None:
            self.record_error()
            self.last_error = error
            self._note(error)
        elif state is ConnectionState.CONNECTED:
            self.last_error = None
            self.error_since = None

    def saw_event(self) -> None:
        """Count one event received now."""
        self.events += 1
        self.last_event_at = time.time()
        second = float(int(self.clock()))
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += 1
        else:
            self._buckets.append([second, 1.0])
            self._prune()

    def record_error(self) -> None:
        """Count one error (a refused connect, a lost stream, a bad frame …) now."""
        self.errors += 1
        now = self.clock()
        self._error_times.append(now)
        if self.error_since is None:
            self.error_since = now
        self._prune()

    def _note(self, error: str) -> None:
        self._recent.append((self.clock(), error))
        if self.error_since is None:
            self.error_since = self._recent[-1][0]

    def recent_errors(self) -> list[tuple[float, str]]:
        """The last few errors as ``(time, text)``, oldest first.

        A source that sets ``last_error`` directly (a failed initial load, a skipped event) has
        it noted here when the record is next read.
        """
        if self.last_error is not None and (
            not self._recent or self._recent[-1][1] != self.last_error
        ):
            self._note(self.last_error)
        return list(self._recent)

    def _sync_reconnects(self) -> None:
        # Sources bump ``reconnects`` directly; note the time of each new one.
        if self.reconnects > self._reconnects_seen:
            now = self.clock()
            self._reconnect_times.extend([now] * (self.reconnects - self._reconnects_seen))
            self._reconnects_seen = self.reconnects
            self._prune()

    def _prune(self) -> None:
        cutoff = self.clock() - _HOUR
        while self._buckets and self._buckets[0][0] < cutoff:
            self._buckets.popleft()
        for times in (self._reconnect_times, self._error_times):
            while times and times[0] < cutoff:
                times.popleft()

    def events_per_minute(self) -> float:
        """Events received in the last 60 seconds."""
        cutoff = self.clock() - 60.0
        return float(sum(count for second, count in self._buckets if second >= cutoff))

    def snapshot(self) -> dict[str, Any]:
        """A plain, immutable-by-copy view for the runtime snapshot."""
        self._sync_reconnects()
        self._prune()
        recent = self.recent_errors()
        events_hour = int(sum(count for _second, count in self._buckets))
        errors_hour = len(self._error_times)
        error_rate = errors_hour / max(1, events_hour + errors_hour)
        reconnects_hour = len(self._reconnect_times)
        return {
            "name": self.name,
            "kind": self.kind,
            "state": self.state.value,
            "since": self.since,
            "last_event_at": self.last_event_at,
            "reconnects": self.reconnects,
            "events": self.events,
            "heartbeat_rtt_ms": self.heartbeat_rtt_ms,
            "last_error": self.last_error,
            "events_per_minute": self.events_per_minute(),
            "reconnects_last_hour": reconnects_hour,
            "errors_last_hour": errors_hour,
            "error_rate": round(error_rate, 4),
            "quality": quality_score(
                self.state, reconnects_hour, self.heartbeat_rtt_ms, error_rate
            ),
            "url": self.url,
            "errors": self.errors,
            "error_since": self.error_since,
            "recent_errors": [{"at": at, "text": text} for at, text in recent],
        }


_STATE_PENALTY = {
    ConnectionState.CONNECTED: 0,
    ConnectionState.DEGRADED: 40,
    ConnectionState.CONNECTING: 50,
    ConnectionState.RECONNECTING: 60,
}


def quality_score(
    state: ConnectionState,
    reconnects_last_hour: int,
    heartbeat_rtt_ms: float | None,
    error_rate: float,
) -> int:
    """0–100: 100 is a connected source that has not reconnected or failed in the last hour.

    A failed or stopped source scores 0. Otherwise: the state costs up to 60 points, each
    reconnect in the last hour 5 (at most 30), a slow heartbeat up to 20 (> 100 / 250 / 1000 ms)
    and the error rate (errors over events plus errors in the last hour) up to 40.
    """
    if state in (ConnectionState.FAILED, ConnectionState.STOPPED):
        return 0
    score = 100.0 - _STATE_PENALTY.get(state, 60)
    score -= min(30, 5 * reconnects_last_hour)
    if heartbeat_rtt_ms is not None:
        if heartbeat_rtt_ms > 1000:
            score -= 20
        elif heartbeat_rtt_ms > 250:
            score -= 10
        elif heartbeat_rtt_ms > 100:
            score -= 5
    score -= 40 * min(1.0, max(0.0, error_rate))
    return int(max(0.0, min(100.0, round(score))))
