"""The engine's one clock: the system clock reads real time; the frozen one moves only when told."""

from __future__ import annotations

import time

from wanderer_console.domain.clock import Clock, FrozenClock, SystemClock
from wanderer_console.ui import clock as ui_clock


async def test_the_system_clock_reads_real_time() -> None:
    clock: Clock = SystemClock()
    before_wall, before_mono = time.time(), time.monotonic()
    await clock.sleep(0)
    assert before_wall <= clock.wall() <= time.time()
    assert before_mono <= clock.monotonic() <= time.monotonic()


async def test_a_frozen_clock_moves_on_sleep_and_advance_only() -> None:
    frozen = FrozenClock(1_000.0, monotonic=5.0)
    clock: Clock = frozen
    assert (clock.wall(), clock.monotonic()) == (1_000.0, 5.0)
    started = time.monotonic()
    await clock.sleep(3_600)
    assert time.monotonic() - started < 1  # no real wait
    assert (clock.wall(), clock.monotonic()) == (4_600.0, 3_605.0)
    frozen.advance(0.5)
    await clock.sleep(-1)  # a negative sleep does not turn the clock back
    assert (clock.wall(), clock.monotonic()) == (4_600.5, 3_605.5)
    assert frozen.sleeps == [3_600, -1]


def test_the_console_uses_the_same_clock() -> None:
    assert ui_clock.FrozenClock is FrozenClock
    assert ui_clock.SystemClock is SystemClock
    assert ui_clock.Clock is Clock
