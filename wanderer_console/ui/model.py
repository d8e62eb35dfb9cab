"""Textual-free state behind the console: the snapshot source, throughput history and activity.

The UI never reads the engine directly. Once a second the dashboard calls
:meth:`SnapshotSource.snapshot`, feeds the result to :class:`ThroughputHistory` (rates between
successive snapshots) and :class:`ActivityLog` (what changed since the last one), then renders.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "HISTORY_SECONDS",
    "ActivityLog",
    "ConsoleState",
    "LogRecordBuffer",
    "Pausable",
    "RateSample",
    "Retrier",
    "SnapshotSource",
    "ThroughputHistory",
    "dispatcher_of",
    "format_ago",
    "retrier_of",
    "total",
]

HISTORY_SECONDS = 600.0
"""How much throughput history the chart shows."""


class SnapshotSource(Protocol):
    """Anything that can describe the engine as a plain dict (the :class:`Runtime` does)."""

    def snapshot(self) -> dict[str, Any]:
        """The current state; see ``Runtime.snapshot`` for the keys."""
        ...


@runtime_checkable
class Pausable(Protocol):
    """A delivery dispatcher that can be paused."""

    paused: bool


def dispatcher_of(source: object) -> Pausable | None:
    """The source's ``dispatcher`` when it has a ``paused`` flag, else ``None``."""
    dispatcher = getattr(source, "dispatcher", None)
    return dispatcher if isinstance(dispatcher, Pausable) else None


@runtime_checkable
class Retrier(Protocol):
    """A delivery dispatcher that can revive a dead target."""

    def retry_target(self, target_key: str) -> int:
        """Revive ``target_key`` and re-queue its failed notifications; return how many."""
        ...


def retrier_of(source: object) -> Retrier | None:
    """The source's ``dispatcher`` when it can retry a dead target, else ``None``."""
    dispatcher = getattr(source, "dispatcher", None)
    return dispatcher if isinstance(dispatcher, Retrier) else None


def total(value: Any) -> float:
    """Sum a counter that is either a number or a mapping of label → number."""
    if isinstance(value, Mapping):
        return float(sum(v for v in value.values() if isinstance(v, int | float)))
    if isinstance(value, int | float):
        return float(value)
    return 0.0


def format_ago(ts: float | None, now: float) -> str:
    """``12s``, ``4m``, ``3h`` or ``2d`` before ``now``; ``-`` when unknown."""
    if ts is None:
        return "-"
    seconds = max(0.0, now - ts)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.0f}h"
    return f"{seconds / 86400:.0f}d"


@dataclass(frozen=True, slots=True)
class RateSample:
    """Rates between two successive snapshots, stamped with the later one's time."""

    at: float
    events_per_second: float
    notifications_per_second: float


class ThroughputHistory:
    """Events/s and notifications/s over the last ten minutes, from successive snapshots."""

    def __init__(self, window: float = HISTORY_SECONDS) -> None:
        self.window = window
        """Seconds of history kept."""
        self.samples: deque[RateSample] = deque()
        """Rate samples, oldest first."""
        self._last: tuple[float, float, float] | None = None

    def observe(self, snapshot: Mapping[str, Any], at: float) -> None:
        """Record one snapshot taken at ``at``; a rate needs two snapshots and time passing."""
        counters = snapshot.get("counters") or {}
        events = total(counters.get("events_received"))
        notifications = total(counters.get("notifications_delivered"))
        if self._last is not None:
            then, last_events, last_notifications = self._last
            elapsed = at - then
            if elapsed > 0:
                self.add(
                    RateSample(
                        at,
                        max(0.0, events - last_events) / elapsed,
                        max(0.0, notifications - last_notifications) / elapsed,
                    )
                )
            if elapsed <= 0:
                return
        self._last = (at, events, notifications)

    def add(self, sample: RateSample) -> None:
        """Append a sample and forget the ones older than the window."""
        self.samples.append(sample)
        while self.samples and sample.at - self.samples[0].at > self.window:
            self.samples.popleft()


class ActivityLog:
    """Recent happenings, newest last: state changes seen between snapshots and log lines."""

    def __init__(self, size: int = 200) -> None:
        self.entries: deque[tuple[float, str]] = deque(maxlen=size)
        """``(time, text)`` pairs."""
        self._states: dict[str, str] = {}
        self._disabled: dict[str, str | None] = {}
        self._paused: bool | None = None
        self._store_fault: str | None = None
        self._global_pause = False
        self.added = 0
        """How many lines were ever added (lets a view append only the new ones)."""

    def add(self, at: float, text: str) -> None:
        """Record one line."""
        self.entries.append((at, text))
        self.added += 1

    def observe(self, snapshot: Mapping[str, Any], at: float) -> None:
        """Add a line for each connection, target, pause or store change since the last one."""
        for conn in snapshot.get("connections") or []:
            name, state = str(conn.get("name")), str(conn.get("state"))
            previous = self._states.get(name)
            if previous != state:
                error = conn.get("last_error")
                suffix = f": {error}" if error and state != "connected" else ""
                self.add(at, f"{name} {previous or 'new'} → {state}{suffix}")
                self._states[name] = state
        delivery = snapshot.get("delivery") or {}
        for key, target in (delivery.get("targets") or {}).items():
            disabled = target.get("disabled")
            if disabled and disabled != self._disabled.get(key):
                self.add(at, f"target {key} disabled: {disabled}")
            self._disabled[key] = disabled
        paused = bool(delivery.get("paused"))
        if self._paused is not None and paused != self._paused:
            self.add(at, "delivery paused" if paused else "delivery resumed")
        self._paused = paused
        self._observe_faults(delivery, at)

    def _observe_faults(self, delivery: Mapping[str, Any], at: float) -> None:
        fault = delivery.get("store_fault")
        reason = str(fault.get("reason")) if isinstance(fault, Mapping) else None
        if reason != self._store_fault:
            if reason is not None:
                self.add(at, f"store cannot write: {reason}; delivery paused")
            else:
                self.add(at, "store writes again; delivery resumes")
            self._store_fault = reason
        until = delivery.get("global_pause_until")
        left = float(until) - at if isinstance(until, int | float) else 0.0
        pause = left > 0
        if pause and not self._global_pause:
            self.add(at, f"Discord pause: all delivery waits {left:.0f}s")
        elif self._global_pause and not pause:
            self.add(at, "Discord pause over")
        self._global_pause = pause


class LogRecordBuffer(logging.Handler):
    """A logging handler that keeps recent records for the activity log (instead of stdout)."""

    def __init__(self, size: int = 200) -> None:
        super().__init__(logging.INFO)
        self.records: deque[tuple[float, str]] = deque(maxlen=size)
        """``(time, "LEVEL message")`` pairs, drained by the dashboard."""

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the record's time, level and message."""
        try:
            text = f"{record.levelname.lower()}: {record.getMessage()}"
        except Exception:  # a bad format string must not break logging
            text = f"{record.levelname.lower()}: {record.msg!r}"
        self.records.append((record.created, text))

    def drain(self) -> list[tuple[float, str]]:
        """Every record since the last call."""
        out = list(self.records)
        self.records.clear()
        return out


@dataclass(slots=True)
class ConsoleState:
    """Everything the screens share: where snapshots come from and what has been seen so far."""

    source: SnapshotSource
    """The engine (or a fake)."""
    settings: Any
    """The live :class:`~wanderer_console.config.model.Settings` the engine also reads."""
    config_path: Any
    """The TOML file flag changes are written to, or ``None`` to change them in memory only."""
    clock: Any
    """A :class:`~wanderer_console.ui.clock.Clock`."""
    history: ThroughputHistory
    """Rates for the chart."""
    activity: ActivityLog
    """Recent happenings for the log panel."""
    log_buffer: LogRecordBuffer | None = None
    """Engine log records captured while the TUI owns the terminal."""
    latest: Mapping[str, Any] | None = None
    """The snapshot the dashboard last rendered (the palette offers commands from it)."""
