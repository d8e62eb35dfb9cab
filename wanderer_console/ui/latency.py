"""Key-to-frame latency of the console, measured headless (used by ``bench.ui_latency``).

The benchmark package may not import Textual, so the part that drives the app lives here. A
"press" is one :meth:`~textual.app.App.simulate_key`, timed to the expected screen becoming
active, to the last frame composed for it (what the operator sees) and to ``wait_for_refresh``.
Pilot's own ``press`` is not used for timing: it waits for the whole process to go idle, which
under load measures the load, not the console.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from textual.screen import Screen

from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.screens.toggles import TogglesScreen

__all__ = ["SWITCHES", "FrameProbe", "PressTiming", "measure_screen_switches"]

SWITCHES: tuple[tuple[str, type[Screen[Any]]], ...] = (
    ("t", TogglesScreen),
    ("escape", DashboardScreen),
)
"""The presses, in turn: open the toggles screen, then back to the dashboard."""
POLL_SECONDS = 0.001
"""How often to look whether the key took effect (the resolution of a sample)."""


@dataclass(frozen=True, slots=True)
class PressTiming:
    """One press, in milliseconds from the key."""

    key: str
    active_ms: float
    """The expected screen is the app's current screen."""
    frame_ms: float
    """The last frame composed for it before the app settled: the operator sees the change."""
    settled_ms: float
    """``wait_for_refresh`` returned (messages processed, screen refreshed; an upper bound)."""


class FrameProbe:
    """Records when the app composes a frame for the terminal.

    Textual has no public "frame drawn" hook, so this wraps the app instance's ``_display``
    (a private method; the benchmark alone uses it, never the console). Headless, ``_display``
    composes the frame and skips only the terminal write.
    """

    def __init__(self, app: WandererApp) -> None:
        self.frames: list[tuple[float, Screen[Any]]] = []
        """``(perf_counter, screen)`` per composed frame."""
        display = app._display

        def recording(screen: Screen[Any], renderable: Any) -> None:
            self.frames.append((time.perf_counter(), screen))
            display(screen, renderable)

        app._display = recording  # type: ignore[method-assign]

    def last_for(self, screen: Screen[Any], since: float) -> float | None:
        """perf_counter of the last frame for ``screen`` after ``since``, if any."""
        times = [at for at, drawn in self.frames if drawn is screen and at >= since]
        return times[-1] if times else None


async def _press(
    app: WandererApp, probe: FrameProbe, key: str, expected: type[Screen[Any]], timeout: float
) -> PressTiming:
    probe.frames.clear()
    started = time.perf_counter()
    app.simulate_key(key)
    deadline = started + timeout
    while not isinstance(app.screen, expected):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{key!r} did not show {expected.__name__} within {timeout} s")
        await asyncio.sleep(POLL_SECONDS)
    active = time.perf_counter()
    await app.wait_for_refresh()
    settled = time.perf_counter()
    frame = probe.last_for(app.screen, started) or settled
    return PressTiming(
        key,
        (active - started) * 1000.0,
        (frame - started) * 1000.0,
        (settled - started) * 1000.0,
    )


async def measure_screen_switches(
    app: WandererApp,
    presses: int,
    *,
    size: tuple[int, int] = (120, 40),
    gap: float = 0.2,
    warmup: float = 1.0,
    timeout: float = 5.0,
    on_start: Callable[[], None] | None = None,
    on_end: Callable[[], None] | None = None,
) -> list[PressTiming]:
    """Run ``app`` headless and time ``presses`` alternating screen switches.

    ``gap`` seconds separate presses so the dashboard's 1 s poll lands between and during them.
    ``on_start`` and ``on_end`` bracket the presses while the app is up (e.g. to read CPU time
    over exactly the measured window, without start-up and teardown).
    """
    probe = FrameProbe(app)
    samples: list[PressTiming] = []
    async with app.run_test(size=size):
        await asyncio.sleep(warmup)
        if on_start is not None:
            on_start()
        for i in range(presses):
            key, expected = SWITCHES[i % len(SWITCHES)]
            samples.append(await _press(app, probe, key, expected, timeout))
            await asyncio.sleep(gap)
        if on_end is not None:
            on_end()
    return samples
