"""Textual-free state behind the console: what it knows of its engine, throughput and activity.

The UI never reads the engine directly: it talks to a
:class:`~wanderer_console.console_api.ConsoleBackend`. The dashboard consumes the backend's
frames; :meth:`ConsoleState.accept` takes each one in: its snapshot becomes :attr:`latest`, its
log lines go to the :class:`ActivityLog`, and, while the link to the engine is live, the snapshot
feeds :class:`ThroughputHistory` (rates between successive snapshots) and
:meth:`ActivityLog.observe` (what changed since the last one). Then the screens render.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from wanderer_console.console_api import (
    ConfigState,
    ConsoleBackend,
    ConsoleSettingsView,
    EngineIdentity,
    EngineSnapshot,
    Frame,
    LinkState,
    LogLine,
)
from wanderer_console.domain.clock import Clock
from wanderer_console.ui.faults import clock_time, pause_origin, pause_phrase
from wanderer_console.ui.printable import printable_view

__all__ = [
    "HISTORY_SECONDS",
    "ActivityLog",
    "ConsoleState",
    "FrameChange",
    "RateSample",
    "ThroughputHistory",
    "engine_label",
    "format_ago",
    "format_uptime",
    "total",
]

HISTORY_SECONDS = 600.0
"""How much throughput history the chart shows."""
LOG_MEMORY = 500
"""How many engine log lines are remembered to recognise a backlog sent again."""


def total(value: Mapping[str, int | float] | int | float) -> float:
    """Sum a counter that is either a number or a mapping of label → number."""
    if isinstance(value, Mapping):
        return float(sum(value.values()))
    return float(value)


def format_ago(ts: float | None, now: float) -> str:
    """``12s``, ``4m``, ``3h`` or ``2d`` before ``now``; ``-`` when unknown.

    Whole units elapsed, rounded down as :func:`format_uptime` does: rounded, 59m40s read
    ``60m`` (and 23h50m ``24h``) rather than rolling over, and 1m59s read ``2m`` beside a
    title's ``up 0h01m``.
    """
    elapsed = None if ts is None else max(0.0, now - ts)
    if elapsed is None or not math.isfinite(elapsed):
        return "-"
    seconds = int(elapsed)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"


def format_uptime(seconds: float) -> str:
    """Uptime to the minute, ``1h02m`` (a title built from it changes at most once a minute)."""
    hours, minutes = divmod(int(max(0.0, seconds)) // 60, 60)
    return f"{hours}h{minutes:02d}m"


def engine_label(identity: EngineIdentity | None, snapshot: EngineSnapshot | None) -> str:
    """Which engine the console shows: ``host · /var/lib/wc · v0.5.0 · up 3h02m``.

    Without an identity (an engine that has not said who it is) only the version and uptime, or
    ``""`` before the first snapshot.
    """
    parts: list[str] = []
    if identity is not None:
        parts += [identity.host, identity.data_dir]
    version = identity.version if identity is not None else None
    if snapshot is not None:
        version = version or snapshot.version or "?"
        parts += [f"v{version}", f"up {format_uptime(snapshot.uptime)}"]
    elif version:
        parts.append(f"v{version}")
    return " · ".join(parts)


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

    def observe(self, snapshot: EngineSnapshot, at: float) -> None:
        """Record one snapshot taken at ``at``; a rate needs two snapshots and time passing.

        ``at`` is wall time. When it goes back (NTP stepped the clock, a VM resumed) the history
        starts again from this snapshot: waiting for the clock to pass the last one again froze
        the chart for as long as the step, and samples stamped before it would sit in the future.
        """
        events = total(snapshot.counters.events_received)
        notifications = total(snapshot.counters.notifications_delivered)
        if self._last is not None:
            then, last_events, last_notifications = self._last
            elapsed = at - then
            if elapsed < 0:
                self.samples.clear()
                self._last = (at, events, notifications)
                return
            if elapsed == 0:
                return
            self.add(
                RateSample(
                    at,
                    max(0.0, events - last_events) / elapsed,
                    max(0.0, notifications - last_notifications) / elapsed,
                )
            )
        self._last = (at, events, notifications)

    def forget_engine(self) -> None:
        """A new engine process: its counters start from zero, so no rate spans the two."""
        self._last = None

    def add(self, sample: RateSample) -> None:
        """Append a sample and forget the ones older than the window."""
        self.samples.append(sample)
        while self.samples and sample.at - self.samples[0].at > self.window:
            self.samples.popleft()


class ActivityLog:
    """Recent happenings, newest last: state changes seen between snapshots and engine log lines."""

    def __init__(self, size: int = 200) -> None:
        self.entries: deque[tuple[float, str]] = deque(maxlen=size)
        """``(time, text)`` pairs."""
        self._states: dict[str, str] = {}
        self._disabled: dict[str, str | None] = {}
        self._paused: bool | None = None
        self._store_fault: str | None = None
        self._global_pause = False
        self._restart: tuple[str, ...] = ()
        self._new_engine = False
        """The next snapshot is a restarted engine's first (its pause was kept if it has one)."""
        self.added = 0
        """How many lines were ever added (lets a view append only the new ones)."""

    def forget_engine(self) -> None:
        """A new engine process: the next snapshot is its first, not a change from the last."""
        self._states.clear()
        self._disabled.clear()
        self._paused = None
        self._store_fault = None
        self._global_pause = False
        self._restart = ()
        self._new_engine = True

    def add(self, at: float, text: str) -> None:
        """Record one line."""
        self.entries.append((at, text))
        self.added += 1

    def observe(self, snapshot: EngineSnapshot, at: float) -> None:
        """Add a line for each connection, target, pause or store change since the last one."""
        for conn in snapshot.connections:
            previous = self._states.get(conn.name)
            if previous != conn.state:
                error = conn.last_error
                suffix = f": {error}" if error and conn.state != "connected" else ""
                self.add(at, f"{conn.name} {previous or 'new'} → {conn.state}{suffix}")
                self._states[conn.name] = conn.state
        delivery = snapshot.delivery
        for key, target in delivery.targets.items():
            if target.disabled and target.disabled != self._disabled.get(key):
                name = f"{target.label} ({key})" if target.label else key
                self.add(at, f"target {name} disabled: {target.disabled}")
            self._disabled[key] = target.disabled
        self._observe_pause(snapshot, at)
        self._new_engine = False
        self._observe_faults(snapshot, at)
        restart = () if snapshot.config is None else snapshot.config.restart_required
        if restart != self._restart:
            if restart:
                self.add(at, f"restart needed for {', '.join(restart)} (saved, not yet in effect)")
            self._restart = restart

    def _observe_pause(self, snapshot: EngineSnapshot, at: float) -> None:
        """A pause or resume, and an engine first seen paused, each with who paused and since
        when: the line stays in the log after the engine's own line about it scrolled away."""
        delivery = snapshot.delivery
        origin = pause_origin(delivery)
        paused = f"delivery {pause_phrase(delivery)}"
        if self._paused is not None and delivery.paused != self._paused:
            self.add(at, paused if delivery.paused else "delivery resumed")
        elif self._paused is None and self._new_engine and delivery.paused:
            kept = "delivery still paused: the operator's pause outlived the restart"
            self.add(at, f"{kept} ({pause_phrase(delivery)})" if origin else kept)
        elif self._paused is None and delivery.paused:
            self.add(at, paused)
        self._paused = delivery.paused

    def _observe_faults(self, snapshot: EngineSnapshot, at: float) -> None:
        delivery = snapshot.delivery
        reason = None if delivery.store_fault is None else delivery.store_fault.reason
        if reason != self._store_fault:
            if reason is not None:
                self.add(at, f"store cannot write: {reason}; delivery paused")
            else:
                self.add(at, "store writes again; delivery resumes")
            self._store_fault = reason
        until = delivery.global_pause_until
        left = until - at if until is not None else 0.0
        pause = left > 0
        if pause and not self._global_pause:
            self.add(at, f"Discord pause: all delivery waits {left:.0f}s")
        elif self._global_pause and not pause:
            self.add(at, "Discord pause over")
        self._global_pause = pause


@dataclass(frozen=True, slots=True)
class FrameChange:
    """What :meth:`ConsoleState.accept` found new in a frame (the app reacts to these)."""

    link_changed: bool
    """The link state (``live``, ``connecting``, ``lost``) differs from the previous frame's."""
    settings_changed: bool
    """The console settings (theme, keymap, flags, refresh) differ from the previous snapshot's."""


@dataclass(slots=True)
class ConsoleState:
    """Everything the screens share: the backend, who operates, and what has been seen so far."""

    backend: ConsoleBackend
    """The engine, in this process or attached over its control endpoint (or a test fake)."""
    actor: str
    """Who operates this console (``tui:alice@host``), sent with every operation."""
    clock: Clock
    """The console's clock (frozen in tests)."""
    history: ThroughputHistory
    """Rates for the chart."""
    activity: ActivityLog
    """Recent happenings for the log panel."""
    latest: EngineSnapshot | None = None
    """The snapshot the dashboard last rendered (the palette and the toggles read it)."""
    link: LinkState = field(default_factory=LinkState)
    """How the console is connected to its engine, as the last frame said."""
    identity: EngineIdentity | None = None
    """Which engine this is, once known."""
    frames: int = 0
    """Frames accepted so far (tests wait on it)."""
    live_at: float | None = None
    """When the last frame of a live link came: what a stale dashboard shows."""
    dropped: int = 0
    """Frames or log lines the backend said this console missed, in total."""
    dismissed_config: tuple[str, ...] = ()
    """The problems of a rejected config change the operator dismissed (its badge stays hidden
    until the engine rejects something else)."""
    attached: bool = False
    """The engine runs in another process: quitting this console stops nothing."""
    _seen_logs: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_MEMORY))
    """The last log lines taken in: a reopened frame stream starts with a backlog of lines
    already shown, which are not shown twice."""

    @property
    def settings(self) -> ConsoleSettingsView:
        """The engine's console settings as of the latest snapshot (defaults before the first)."""
        return ConsoleSettingsView() if self.latest is None else self.latest.settings

    @property
    def config(self) -> ConfigState | None:
        """The engine's config file state as of the latest snapshot."""
        return None if self.latest is None else self.latest.config

    @property
    def live(self) -> bool:
        """The link to the engine is live (a stale snapshot is shown otherwise)."""
        return self.link.state == "live"

    def accept(self, frame: Frame, now: float) -> FrameChange:
        """Take ``frame`` in (at ``now``); returns what changed for the screens to react to.

        Its text is made :func:`~wanderer_console.ui.printable.printable` first: what the screens
        read from :attr:`latest` holds no control character to reach the terminal raw.
        """
        frame = printable_view(frame)
        previous = self.latest
        link_changed = frame.link.state != self.link.state
        self._note_link(frame.link, now)
        self.link = frame.link
        if frame.identity is not None:
            self._note_engine(frame.identity, now)
            self.identity = frame.identity
        elif self.identity is None:
            self.identity = self.backend.identity
        for line in frame.logs:
            if line in self._seen_logs:
                continue
            self._seen_logs.append(line)
            self.activity.add(line.at, f"{line.level.lower()}: {line.text}")
        if frame.dropped > 0:
            self.dropped += frame.dropped
            self.activity.add(
                now, f"console missed {frame.dropped} frame(s) or log line(s): it read too slowly"
            )
        snapshot = frame.snapshot
        self.latest = snapshot
        self.frames += 1
        if frame.link.state == "live":
            self.live_at = now
            self.history.observe(snapshot, now)
            self.activity.observe(snapshot, now)
        settings_changed = previous is None or previous.settings != snapshot.settings
        return FrameChange(link_changed, settings_changed)

    def _note_engine(self, identity: EngineIdentity, now: float) -> None:
        """Another engine process than the last frames': said, and what was seen of the old one
        (a pause, a state, the counters) is not compared with it as if it had changed."""
        old = self.identity
        if old is None or (old.pid, old.started_at) == (identity.pid, identity.started_at):
            return
        self.activity.add(
            now,
            f"engine restarted: pid {old.pid} → {identity.pid}, started"
            f" {clock_time(identity.started_at)}; its figures start again from zero",
        )
        self.activity.forget_engine()
        self.history.forget_engine()

    def _note_link(self, link: LinkState, now: float) -> None:
        if link.state == self.link.state:
            return
        if link.state == "live":
            if self.frames:
                self.activity.add(now, "engine link live again")
            return
        detail = f": {link.detail}" if link.detail else ""
        word = {"lost": "lost", "refused": "refused this console"}.get(link.state, "connecting")
        self.activity.add(now, f"engine {word}{detail}")
