"""Snapshot tests of every screen (plain ``def``: snap_compare runs its own event loop)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import TextArea

from tests.ui.conftest import HEALTHY, degraded_snapshot, delivery_fault_snapshot, make_app

SIZE = (120, 40)


async def _settle(pilot: Pilot[Any]) -> None:
    await pilot.pause()


def test_dashboard_healthy(snap_compare: Any) -> None:
    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=_settle)


@pytest.mark.slow
def test_dashboard_degraded(snap_compare: Any) -> None:
    """A failed killstream, a disabled target, an open and a half-open breaker."""
    assert snap_compare(make_app(degraded_snapshot()), terminal_size=SIZE, run_before=_settle)


@pytest.mark.slow
def test_toggles_screen(snap_compare: Any) -> None:
    async def open_toggles(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=open_toggles)


@pytest.mark.slow
def test_help_screen(snap_compare: Any) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=open_help)


def test_dashboard_light_theme(snap_compare: Any) -> None:
    app = make_app(degraded_snapshot(), theme="wanderer-light")
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


@pytest.mark.slow
def test_config_pane_validation_error(snap_compare: Any, config_file: Path) -> None:
    """An unknown key typed into the pane: not saved, the problem listed with line and key."""

    async def save_invalid(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await pilot.press("c")
        await pilot.pause()
        editor = pilot.app.screen.query_one("#config-text", TextArea)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert('\nsound = "loud"')
        await pilot.press("ctrl+s")
        await pilot.pause()

    app = make_app(HEALTHY, config_path=config_file)
    assert snap_compare(app, terminal_size=SIZE, run_before=save_invalid)


def test_dashboard_delivery_faults(snap_compare: Any) -> None:
    """The store cannot write, a Discord pause, a dead webhook holding 9, 2 uncertain sends."""
    app = make_app(delivery_fault_snapshot())
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)
