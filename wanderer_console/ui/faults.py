"""What the console says about delivery faults, read from the snapshot's ``delivery`` section.

Textual-free, so the wording is unit-tested. Three faults stop notifications from going out
without the engine failing, and each must be impossible to miss on the dashboard:

* the store cannot write (disk full, read-only, I/O error): the dispatcher sends nothing until a
  write succeeds, because it could not record what Discord answered;
* a Discord global pause (a global 429, or the invalid-answer budget): every target waits;
* a dead target (Discord answered 401/403/404): its notifications are *held*, not lost, until
  its configuration changes or an operator retries it (the palette offers that).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DeadTarget",
    "clock_time",
    "dead_targets",
    "delivery_held",
    "global_pause_text",
    "store_fault_text",
]


@dataclass(frozen=True, slots=True)
class DeadTarget:
    """A target Discord refused for good, with what it holds."""

    key: str
    """The target key (``webhook:<id>``, ``channel:<id>``), as ``retry_target`` takes it."""
    reason: str
    """What Discord answered (``404 Unknown Webhook``)."""
    held: int
    """Notifications waiting for it (the snapshot's ``pending``)."""
    uncertain: int
    """Notifications sent again after a send whose outcome was unknown."""

    def describe(self) -> str:
        """``webhook:1: DEAD 404 Unknown Webhook — held: 9`` (and the uncertain count)."""
        text = f"{self.key}: DEAD {self.reason} — held: {self.held}"
        if self.uncertain > 0:
            text += f" · {self.uncertain} uncertain"
        return text


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def clock_time(ts: float) -> str:
    """``HH:MM:SS`` in UTC (EVE time), as the activity log shows times."""
    return time.strftime("%H:%M:%S", time.gmtime(ts))


def store_fault_text(delivery: Mapping[str, Any]) -> str | None:
    """The store-fault badge, or ``None`` while the store writes."""
    fault = delivery.get("store_fault")
    if not isinstance(fault, Mapping):
        return None
    text = f"STORE CANNOT WRITE: {fault.get('reason') or 'unknown error'} — delivery paused"
    since = fault.get("since")
    if isinstance(since, int | float):
        text += f" since {clock_time(since)}"
    # Most important first: a narrow terminal clips the end of the line.
    unrecorded = _count(delivery.get("unrecorded_outcomes"))
    if unrecorded:
        text += f" · {_plural(unrecorded, 'Discord answer')} unrecorded"
    failures = _count(fault.get("failures"))
    if failures:
        text += f" · {_plural(failures, 'failed write')}"
    return text


def global_pause_text(delivery: Mapping[str, Any], now: float) -> str | None:
    """The Discord-pause badge, with the seconds left, or ``None`` when no pause is active."""
    until = delivery.get("global_pause_until")
    if not isinstance(until, int | float) or until <= now:
        return None
    seconds = math.ceil(until - now)
    return f"DISCORD PAUSE until {clock_time(until)} ({seconds}s) — all delivery waits"


def delivery_held(delivery: Mapping[str, Any], now: float) -> bool:
    """Whether a store fault or a Discord pause holds every delivery right now."""
    return store_fault_text(delivery) is not None or global_pause_text(delivery, now) is not None


def dead_targets(delivery: Mapping[str, Any]) -> list[DeadTarget]:
    """The dead targets of the snapshot's ``delivery`` section, by key."""
    targets = delivery.get("targets")
    if not isinstance(targets, Mapping):
        return []
    dead: list[DeadTarget] = []
    for key, target in sorted(targets.items()):
        if not isinstance(target, Mapping) or not target.get("disabled"):
            continue
        dead.append(
            DeadTarget(
                str(key),
                str(target["disabled"]),
                _count(target.get("pending")),
                _count(target.get("uncertain")),
            )
        )
    return dead
