"""The engine's one clock: monotonic time, wall time and sleep, injected so tests can freeze it.

Everything that reads time for behaviour (the HTTP chain, the task supervisor, the dispatcher,
the console, the simulator's Discord) takes a :class:`Clock`; :class:`SystemClock` is the real
one, :class:`FrozenClock` one that stands still until a test (or a ``sleep``) moves it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

__all__ = ["Clock", "FrozenClock", "SystemClock"]


class Clock(Protocol):
    """Monotonic time (for intervals), wall time (UNIX seconds) and sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (UNIX time)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock: ``time.monotonic``, ``time.time`` and ``asyncio.sleep``."""

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    def wall(self) -> float:
        """``time.time()``."""
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep(seconds)``."""
        await asyncio.sleep(seconds)


class FrozenClock:
    """A clock that stands still until told to move (for tests).

    :meth:`advance` moves both readings; :meth:`sleep` advances by the seconds asked (recorded in
    :attr:`sleeps`) and only yields to the event loop, so a test never waits in real time.
    """

    def __init__(self, at: float = 1_700_000_000.0, *, monotonic: float = 0.0) -> None:
        self.at = at
        """The wall time it reports (UNIX seconds)."""
        self.mono = monotonic
        """The monotonic time it reports."""
        self.sleeps: list[float] = []
        """Every :meth:`sleep`'s seconds, in order."""

    def monotonic(self) -> float:
        """The frozen monotonic time."""
        return self.mono

    def wall(self) -> float:
        """The frozen wall time."""
        return self.at

    def advance(self, seconds: float) -> None:
        """Move the clock forward (both readings)."""
        self.at += seconds
        self.mono += seconds

    async def sleep(self, seconds: float) -> None:
        """Advance by ``seconds`` (none when not positive) and let other tasks run once."""
        self.sleeps.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)


def iso_utc(stamp: float | None) -> str | None:
    """``2026-12-03T10:00:00.123456Z`` for a UNIX time (``None`` stays ``None``): how every
    JSON output of the command line writes a moment."""
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")
