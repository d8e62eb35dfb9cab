"""The trackers screen (issue 22): every map's trackers with their matches; Space switches one
through the backend (``set_tracker``), and the next frame shows it."""

from __future__ import annotations

import copy
from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.ui.conftest import ACTOR, HEALTHY, NOW, AppFactory
from tests.ui.fakes import Operation, SeededBackend, first_frame, next_frame, settle
from wanderer_console.ui.screens.trackers import TrackersScreen

TRACKERS: list[dict[str, Any]] = [
    {
        "tenant": "alpha",
        "name": "default",
        "default": True,
        "target": "routes",
        "matches_last_hour": 12,
        "matches_total": 340,
        "last_match_at": NOW - 40,
    },
    {
        "tenant": "alpha",
        "name": "caps",
        "scope": "all",
        "target": "webhook:1200000002538501131",
        "ping": "@here <@&300000000000000001>",
        "matches_last_hour": 1,
        "matches_total": 3,
        "last_match_at": NOW - 1500,
    },
    {
        "tenant": "alpha",
        "name": "losses",
        "enabled": False,
        "target": "webhook:1200000002538501129",
        "ping": "@everyone",
    },
    {
        "tenant": "bravo",
        "name": "default",
        "default": True,
        "target": "routes",
        "matches_last_hour": 4,
        "matches_total": 57,
        "last_match_at": NOW - 300,
    },
]


def with_trackers() -> dict[str, Any]:
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["trackers"] = copy.deepcopy(TRACKERS)
    return snapshot


async def open_trackers(pilot: Pilot[Any]) -> None:
    await first_frame(pilot)
    await pilot.press("k")
    await pilot.pause()


def test_trackers_screen(snap_compare: Any, make_app: AppFactory) -> None:
    assert snap_compare(make_app(with_trackers()), terminal_size=(80, 24), run_before=open_trackers)


async def test_space_switches_the_tracker_under_the_cursor(make_app: AppFactory) -> None:
    engine = SeededBackend(with_trackers())
    app = make_app(engine=engine)
    async with app.run_test(size=(120, 40)) as pilot:
        await open_trackers(pilot)
        screen = app.screen
        assert isinstance(screen, TrackersScreen)
        table = screen.query_one("#trackers", DataTable)
        assert table.row_count == 4
        await pilot.press("down", "down")  # alpha/losses, off
        await pilot.press("space")
        await settle(pilot)
        assert engine.operations[-1] == Operation("set_tracker", ("alpha", "losses", True), ACTOR)
        await next_frame(pilot, engine)
        assert str(table.get_cell("alpha/losses", "on")) == "on"


async def test_without_trackers_the_screen_says_where_they_come_from(
    make_app: AppFactory,
) -> None:
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_trackers(pilot)
        assert app.screen.query_one("#trackers", DataTable).row_count == 0
        hint = str(app.screen.query_one("#trackers-hint").render())
        assert "No map has [[maps.<key>.trackers]]" in hint
        # Shown as written: read as markup, "[filters]" vanished ("each map's  is its only").
        assert "each map's [filters] is its only kill feed" in hint
