"""Snapshot tests of every screen (plain ``def``: snap_compare runs its own event loop).

Every app is built by the ``make_app`` fixture over the backend ``backend_factory`` makes, and
each ``run_before`` waits for the console's first frame, so the same screens come out whatever
carries the frames.
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
    AppFactory,
    degraded_snapshot,
    delivery_fault_snapshot,
)
from tests.ui.fakes import SeededBackend, first_frame, next_frame, settle
from wanderer_console.console_api import EngineIdentity, LinkState

SIZE = (120, 40)


async def _settle(pilot: Pilot[Any]) -> None:
    await first_frame(pilot)


def test_dashboard_healthy(snap_compare: Any, make_app: AppFactory) -> None:
    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=_settle)


@pytest.mark.slow
def test_dashboard_degraded(snap_compare: Any, make_app: AppFactory) -> None:
    """A failed killstream, a disabled target, an open and a half-open breaker."""
    assert snap_compare(make_app(degraded_snapshot()), terminal_size=SIZE, run_before=_settle)


@pytest.mark.slow
def test_toggles_screen(snap_compare: Any, make_app: AppFactory) -> None:
    async def open_toggles(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("t")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=open_toggles)


@pytest.mark.slow
def test_help_screen(snap_compare: Any, make_app: AppFactory) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=open_help)


def test_dashboard_light_theme(snap_compare: Any, make_app: AppFactory) -> None:
    app = make_app(degraded_snapshot(), theme="wanderer-light")
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


@pytest.mark.slow
def test_config_pane_validation_error(snap_compare: Any, make_app: AppFactory) -> None:
    """An unknown key typed into the pane: not saved, the problem listed with line and key."""

    async def save_invalid(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        await pilot.press("c")
        await settle(pilot)
        editor = pilot.app.screen.query_one("#config-text", TextArea)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert('\nsound = "loud"')
        await pilot.press("ctrl+s")
        await settle(pilot)

    app = make_app(HEALTHY, config_text=CONFIG_TEXT)
    assert snap_compare(app, terminal_size=SIZE, run_before=save_invalid)


def test_dashboard_delivery_faults(snap_compare: Any, make_app: AppFactory) -> None:
    """The store cannot write, a Discord pause, a dead webhook holding 9, 2 uncertain sends."""
    app = make_app(delivery_fault_snapshot())
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


IDENTITY = EngineIdentity(
    host="wc-prod-1",
    pid=4242,
    data_dir="/var/lib/wanderer-console",
    version="0.1.0",
    started_at=NOW - 3725,
)
"""A systemd engine on another host, as an attached console sees it."""


@pytest.mark.slow
def test_dashboard_engine_lost(snap_compare: Any, make_app: AppFactory) -> None:
    """The attached engine went away: a red badge says so, the last figures are dimmed, the title
    names the engine (host, data directory, version, uptime)."""
    engine = SeededBackend(HEALTHY, identity=IDENTITY)

    async def lose_engine(pilot: Pilot[Any]) -> None:
        await first_frame(pilot)
        engine.link = LinkState(state="lost", detail="connection refused", since=NOW)
        await next_frame(pilot, engine)

    app = make_app(engine=engine)
    assert snap_compare(app, terminal_size=SIZE, run_before=lose_engine)
