"""Time for the UI: the engine's one clock, injected so snapshots and tests can freeze it
(freezegun hangs Textual). The console reads ``clock.wall()``; tests pass a
:class:`FrozenClock` at a fixed UNIX time and move it with ``advance``.
"""

from __future__ import annotations

from wanderer_console.domain.clock import Clock, FrozenClock, SystemClock

__all__ = ["Clock", "FrozenClock", "SystemClock"]
