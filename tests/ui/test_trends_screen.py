"""The trends screen over the live engine: the stored minutes drawn for 1 h, then 24 h.

A real runtime over the simulator with minutes in its store (the recorder's table), the app under
Pilot over its LocalBackend: ``g`` opens the screen on the last hour; ``2`` switches to 24 h,
which also holds a minute from three hours ago.
"""

from __future__ import annotations

import time

import pytest

from tests.support import wait_for
from tests.ui.fakes import first_frame
from wanderer_console.runtime import Runtime
from wanderer_console.store.observe import TrendMinute
from wanderer_console.ui.app import build_app
from wanderer_console.ui.screens.trends import TrendChart, TrendsScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


async def test_the_range_selector_redraws_the_charts(runtime: Runtime) -> None:
    minute = int(time.time() // 60 * 60)
    for back in range(1, 6):
        runtime.store.save_trend(
            TrendMinute(minute=minute - back * 60, instance="other", events=10, delivered=4,
                        failures=1, latency_p50=0.05, latency_p95=0.2, latency_p99=0.4)
        )  # fmt: skip
    runtime.store.save_trend(
        TrendMinute(minute=minute - 3 * 3600, instance="other", events=1000, delivered=7)
    )
    app = build_app(runtime.console, actor="tui:tester@console-host")
    async with app.run_test(size=(120, 44)) as pilot:
        await first_frame(pilot)
        await pilot.press("g")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, TrendsScreen)

        def shown(name: str) -> bool:
            return screen.shown is not None and screen.shown.range == name

        await wait_for(lambda: shown("1h"), 10, "the last hour")
        assert screen.shown is not None
        assert screen.shown.step == 60
        assert sum(p.events for p in screen.shown.points) >= 50  # the engine's own too
        assert sum(p.delivered for p in screen.shown.points) >= 20
        assert screen.query_one("#trend-throughput", TrendChart).points == len(screen.shown.points)
        summary = str(screen.query_one("#trend-summary").render())
        assert summary.startswith("Last 1h:")

        await pilot.press("2")
        await wait_for(lambda: shown("24h"), 10, "the last day")
        assert screen.shown is not None
        assert screen.shown.step == 600
        assert len(screen.shown.points) in (144, 145)
        assert sum(p.events for p in screen.shown.points) >= 1050  # three hours ago too
        await pilot.press("3")
        await wait_for(lambda: shown("7d"), 10, "the last week")
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TrendsScreen)
