"""Snapshot tests of every screen (plain ``def``: snap_compare runs its own event loop)."""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.ui.conftest import HEALTHY, degraded_snapshot, make_app

SIZE = (120, 40)


async def _settle(pilot: Pilot[Any]) -> None:
    await pilot.pause()


def test_dashboard_healthy(snap_compare: Any) -> None:
    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=_settle)


def test_dashboard_degraded(snap_compare: Any) -> None:
    assert snap_compare(make_app(degraded_snapshot()), terminal_size=SIZE, run_before=_settle)


def test_toggles_screen(snap_compare: Any) -> None:
    async def open_toggles(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=open_toggles)


def test_help_screen(snap_compare: Any) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()

    assert snap_compare(make_app(HEALTHY), terminal_size=SIZE, run_before=open_help)
