"""Time for the UI, injected so snapshots and tests can freeze it (freezegun hangs Textual)."""

from __future__ import annotations

import time
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SystemClock"]


class Clock(Protocol):
    """Something that tells the wall-clock time as a UNIX timestamp."""

    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        """``time.time()``."""
        return time.time()


class FrozenClock:
    """A clock that stands still until told to move (for tests)."""

    def __init__(self, at: float) -> None:
        self.at = at
        """The time it reports."""

    def now(self) -> float:
        """The frozen time."""
        return self.at

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.at += seconds
