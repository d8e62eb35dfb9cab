"""Start-up time of the console with its UI, measured headless (used by ``bench.startup``).

The benchmark package may not import Textual, so the part that drives the app lives here. The
sequence is the one :func:`~wanderer_console.ui.app.run_tui` follows: start the runtime, then run
the app; here the app runs under Textual's ``run_test`` (no terminal) and the clock stops when the
dashboard is the active screen and a frame has been composed for it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from wanderer_console.ui.app import build_app
from wanderer_console.ui.latency import FrameProbe
from wanderer_console.ui.screens.dashboard import DashboardScreen

__all__ = ["measure_tui_startup"]

POLL_SECONDS = 0.002
"""How often to look whether the dashboard has been drawn."""


async def measure_tui_startup(
    runtime: Any,
    *,
    started: float | None = None,
    size: tuple[int, int] = (120, 40),
    timeout: float = 30.0,
    connected_sources: int = 0,
) -> dict[str, float | None]:
    """Start ``runtime`` (not yet started) and the console; seconds until each milestone.

    ``started`` is the ``perf_counter`` the clock runs from (default: now). Milestones:
    ``runtime_started_s`` (``Runtime.start`` returned), ``dashboard_s`` (first frame of the
    dashboard composed) and, when ``connected_sources`` is positive, ``connected_s`` (that many
    sources report ``connected`` while the console runs; None if not within ``timeout``). The
    caller stops the runtime.
    """
    t0 = time.perf_counter() if started is None else started
    backend = runtime.console  # its LocalBackend, as the launcher runs the console on
    app = build_app(backend, theme=runtime.settings.console.theme)
    probe = FrameProbe(app)
    await runtime.start()
    runtime_started = time.perf_counter()
    dashboard: float | None = None
    connected: float | None = None
    async with app.run_test(size=size):
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            screen = app.screen
            if isinstance(screen, DashboardScreen) and probe.last_for(screen, t0) is not None:
                dashboard = time.perf_counter()
                break
            await asyncio.sleep(POLL_SECONDS)
        if connected_sources > 0:
            while time.perf_counter() < deadline:
                states = [c.state for c in (await backend.snapshot()).connections]
                if sum(state == "connected" for state in states) >= connected_sources:
                    connected = time.perf_counter()
                    break
                await asyncio.sleep(POLL_SECONDS)
    return {
        "runtime_started_s": runtime_started - t0,
        "dashboard_s": None if dashboard is None else dashboard - t0,
        "connected_s": None if connected is None else connected - t0,
    }
