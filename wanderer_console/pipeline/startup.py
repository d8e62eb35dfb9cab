"""Start-up suppression that mutes history only, and the killstream watermark it reads.

Start-up suppression (``console.startup_suppression_seconds``) exists to keep a restart from
re-announcing the past: the killstream preloads up to five kills per system on every join, the
map stream replays what it buffered, and a REST backfill returns whole hours. It must never
mute something that happened while the console was not watching, nor something that happens
after it started. So, during the window and only then, an event is muted when it is *history*:

- **a kill** whose ``kill_time`` is before the *kill resume point*. The resume point is the last
  moment the previous run saw the killstream alive (the ``killstream:seen`` watermark, see
  :data:`SEEN_CURSOR`) minus ``killstream.backfill_overlap_seconds`` (kills are published late,
  and a crash loses what was read but not yet stored); on a first run, with no watermark, it is
  the process start (to the whole second: kill times have no fraction). It is never later than
  the process start. A kill without a time counts as history.
- **a map event** whose own time (the ULID of its id, else its ``timestamp``) is before the
  *map resume point*: the time of the map's stream cursor (the last event the previous run
  stored; for a map that sent none, a point just before its stream's ``connected`` frame), or
  the process start when there is none. An event without a time counts as history.

Everything after a resume point happened during the gap (or after the start) and arrives for
the first time; everything the console did see is already stored and is dropped by its id
(``UNIQUE(tenant_id, event_id)``). What is left to mute is history the console never watched:
the preload of a newly tracked system, or kills from before the very first run. Kills still
pass the max-age gate (``console.max_killmail_age_seconds``) as always; rallies and posted
events are never suppressed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from wanderer_console.domain.map_events import MapEnvelope
from wanderer_console.domain.ulid import is_ulid, ulid_at, ulid_seconds

__all__ = [
    "SEEN_CURSOR",
    "StartupWindow",
    "decode_seen",
    "encode_seen",
    "envelope_seconds",
    "is_ulid",
    "ulid_at",
    "ulid_seconds",
]

SEEN_CURSOR: Final = "killstream:seen"
"""Stream cursor holding the killstream watermark: the last wall time the console saw the
systems socket joined with no gap left to backfill. Written a few times a minute while it is
up; read once at start as the previous run's resume point."""


def encode_seen(at: float) -> str:
    """A watermark as a cursor value: fixed width, so the store's ``max()`` on text keeps the
    latest (cursors only move forward)."""
    return f"{at:020.6f}"


def decode_seen(value: str | None) -> float | None:
    """The wall time in a watermark cursor value; ``None`` when absent or unreadable."""
    if value is None:
        return None
    try:
        at = float(value)
    except ValueError:
        return None
    return at if math.isfinite(at) and at > 0 else None


def envelope_seconds(envelope: MapEnvelope) -> float | None:
    """When a map event happened: its ULID's time, else its ``timestamp``, else ``None``."""
    at = ulid_seconds(envelope.id)
    if at is not None:
        return at
    return envelope.timestamp.timestamp() if envelope.timestamp is not None else None


class StartupWindow:
    """What start-up suppression mutes in this run (the module docstring has the rule)."""

    def __init__(
        self,
        started: float,
        *,
        kill_seen: float | None = None,
        map_cursors: Mapping[str, float] | None = None,
    ) -> None:
        self.started = started
        """Wall time the process started."""
        self.kill_seen = kill_seen
        """The previous run's killstream watermark (``None`` on a first run)."""
        self._map_cursors = dict(map_cursors or {})

    def active(self, now: float, window: float) -> bool:
        """True during the first ``window`` seconds after the start."""
        return now - self.started < window

    def kill_resume_point(self, overlap: float) -> float:
        """Kills before this time are history (see the module docstring)."""
        # Kill times are whole seconds: a kill in the start's own second is not older.
        start = float(math.floor(self.started))
        if self.kill_seen is None:
            return start
        return min(start, self.kill_seen - overlap)

    def kill_is_history(self, kill_time: datetime | None, overlap: float) -> bool:
        """True when a kill happened before the kill resume point (or has no time)."""
        if kill_time is None:
            return True
        return kill_time.timestamp() < self.kill_resume_point(overlap)

    def map_resume_point(self, tenant: str) -> float:
        """A map's events before this time are history: its cursor's time, else the start."""
        cursor = self._map_cursors.get(tenant)
        return self.started if cursor is None else min(self.started, cursor)

    def map_event_is_history(self, tenant: str, at: float | None) -> bool:
        """True when a map event happened before its map's resume point (or has no time)."""
        return at is None or at < self.map_resume_point(tenant)
