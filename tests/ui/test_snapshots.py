"""Snapshot tests of every screen (plain ``def``: snap_compare runs its own event loop).

Every app is built by the ``make_app`` fixture over the backend ``backend_factory`` makes, and
each ``run_before`` waits for the console's first frame, so the same screens come out whatever
carries the frames.

The dashboard is pinned at 80x24 (the default terminal of many SSH clients: tabs of stacked
panels), 120x40 and 200x60 (every panel in a grid); every other screen at 80x24, where it is
tightest (and the 120x40 screens of before stay pinned too).
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import TextArea

from tests.ui.conftest import (
    CONFIG_TEXT,
    HEALTHY,
    NOW,
    RALLY,
    AppFactory,
    degraded_snapshot,
    delivery_fault_snapshot,
    paused_engine,
)
from tests.ui.fakes import SeededBackend, first_frame, next_frame, settle
from wanderer_console.console_api import EngineIdentity, LinkState
from wanderer_console.ui.widgets.connections import ConnectionsTable
from wanderer_console.ui.widgets.delivery import DeliveryTable

SIZE = (120, 40)
SMALL = (80, 24)
LARGE = (200, 60)
SIZES = {"80x24": SMALL, "120x40": SIZE, "200x60": LARGE}


async def _settle(pilot: Pilot[Any]) -> None:
    await first_frame(pilot)


@pytest.mark.parametrize("size", sorted(SIZES))
def test_dashboard_healthy(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    assert snap_compare(make_app(HEALTHY), terminal_size=SIZES[size], run_before=_settle)


@pytest.mark.slow
@pytest.mark.parametrize("size", sorted(SIZES))
def test_dashboard_degraded(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    """A failed killstream, a disabled target, an open and a half-open breaker."""
    app = make_app(degraded_snapshot())
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_settle)


@pytest.mark.slow
@pytest.mark.parametrize("tab", ["2", "3", "4"])
def test_dashboard_small_tabs(snap_compare: Any, make_app: AppFactory, tab: str) -> None:
    """80x24: the activity, counters and throughput tabs (the overview is the dashboard above)."""

    async def open_tab(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press(tab)
        await pilot.pause()

    app = make_app(degraded_snapshot())
    assert snap_compare(app, terminal_size=SMALL, run_before=open_tab)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["80x24", "120x40"])
def test_toggles_screen(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    async def open_toggles(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("t")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZES[size], run_before=open_toggles)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["80x24", "120x40"])
def test_help_screen(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZES[size], run_before=open_help)


def test_dashboard_light_theme(snap_compare: Any, make_app: AppFactory) -> None:
    app = make_app(degraded_snapshot(), theme="wanderer-light")
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


async def _save_invalid(pilot: Pilot[Any]) -> None:
    await first_frame(pilot)
    await pilot.press("c")
    await settle(pilot)
    editor = pilot.app.screen.query_one("#config-text", TextArea)
    editor.move_cursor((5, 0))
    await pilot.press("end")
    editor.insert('\nsound = "loud"')
    await pilot.press("ctrl+s")
    await settle(pilot)


@pytest.mark.slow
@pytest.mark.parametrize("size", ["80x24", "120x40"])
def test_config_pane_validation_error(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    """An unknown key typed into the pane: not saved, the problem listed with line and key."""
    app = make_app(HEALTHY, config_text=CONFIG_TEXT)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_save_invalid)


@pytest.mark.slow
def test_config_pane_unsaved_edits_prompt(snap_compare: Any, make_app: AppFactory) -> None:
    """Escape with unsaved edits: save, discard or stay."""

    async def leave_edited(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("c")
        await settle(pilot)
        editor = pilot.app.screen.query_one("#config-text", TextArea)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert("\nrally = false")
        await pilot.press("escape")
        await pilot.pause()

    app = make_app(HEALTHY, config_text=CONFIG_TEXT)
    assert snap_compare(app, terminal_size=SMALL, run_before=leave_edited)


@pytest.mark.slow
def test_quit_prompt(snap_compare: Any, make_app: AppFactory) -> None:
    """q with notifications pending: how many, and that they are delivered at the next start."""

    async def press_quit(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("q")
        await pilot.pause()

    assert snap_compare(make_app(degraded_snapshot()), terminal_size=SMALL, run_before=press_quit)


@pytest.mark.slow
@pytest.mark.parametrize("row", ["connection", "target"])
def test_detail_view(snap_compare: Any, make_app: AppFactory, row: str) -> None:
    """Enter on the failed killstream / the dead webhook, at 80x24."""

    async def open_detail(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        table_type, key = (
            (ConnectionsTable, "killstream:characters")
            if row == "connection"
            else (DeliveryTable, RALLY)
        )
        table = pilot.app.screen.query_one(table_type)
        table.focus()
        table.move_cursor(row=table.get_row_index(key))
        await pilot.press("enter")
        await pilot.pause()

    app = make_app(degraded_snapshot())
    assert snap_compare(app, terminal_size=SMALL, run_before=open_detail)


@pytest.mark.parametrize("size", ["80x24", "120x40"])
def test_dashboard_delivery_faults(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    """The store cannot write, a Discord pause, a dead webhook holding 9, 2 uncertain sends."""
    app = make_app(delivery_fault_snapshot())
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_settle)


@pytest.mark.parametrize("size", ["80x24", "120x40"])
def test_dashboard_paused(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    """An operator's pause, kept across restarts: the Delivery panel says who paused and since
    when, the activity log too; the title stays "delivery PAUSED" first."""
    app = make_app(engine=paused_engine(identity=IDENTITY))
    assert snap_compare(app, terminal_size=SIZES[size], run_before=_settle)


def test_dashboard_paused_on_every_engine(snap_compare: Any, make_app: AppFactory) -> None:
    """The cluster's pause on a shared database: the Delivery panel says it holds every engine,
    within the narrow panel of an 80x24 terminal."""
    app = make_app(engine=paused_engine(identity=IDENTITY, cluster=True))
    assert snap_compare(app, terminal_size=SIZES["80x24"], run_before=_settle)


IDENTITY = EngineIdentity(
    host="wc-prod-1",
    pid=4242,
    data_dir="/var/lib/wanderer-console",
    version="0.1.0",
    started_at=NOW - 3725,
)
"""A systemd engine on another host, as an attached console sees it."""


@pytest.mark.slow
@pytest.mark.parametrize("size", ["80x24", "120x40"])
def test_dashboard_engine_lost(snap_compare: Any, make_app: AppFactory, size: str) -> None:
    """The attached engine went away: a red badge says so, the last figures are dimmed, the title
    names the engine (host, data directory, version, uptime)."""
    engine = SeededBackend(HEALTHY, identity=IDENTITY)

    async def lose_engine(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        engine.link = LinkState(state="lost", detail="connection refused", since=NOW)
        await next_frame(pilot, engine)

    app = make_app(engine=engine)
    assert snap_compare(app, terminal_size=SIZES[size], run_before=lose_engine)


def test_events_browser(snap_compare: Any, make_app: AppFactory) -> None:
    """80x24: the events browser over four seeded events (delivered, filtered, waiting)."""

    async def open_events(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("e")
        await settle(pilot)

    assert snap_compare(make_app(HEALTHY), terminal_size=SMALL, run_before=open_events)


def test_event_detail_filtered(snap_compare: Any, make_app: AppFactory) -> None:
    """80x24: a kill that notified nothing: the rule in words and the message as it would look."""

    async def open_detail(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.press("down", "enter")
        await settle(pilot)

    assert snap_compare(make_app(HEALTHY), terminal_size=SMALL, run_before=open_detail)
