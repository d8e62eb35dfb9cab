"""Small and odd terminals (a phone's SSH client, a split tmux pane): 60×20 and 40×12.

What matters at 3 a.m. stays on screen or one key away: each connection's state, the delivery
targets (a dead one), a firing alert; every screen opens and closes by keyboard alone.
"""

from __future__ import annotations

import copy

import pytest

from tests.ui.conftest import NOW, AppFactory, degraded_snapshot
from tests.ui.fakes import first_frame, screen_lines, settle
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.widgets.delivery import DeliveryTable

pytestmark = pytest.mark.slow


def _shown(app: WandererApp) -> str:
    return "\n".join(screen_lines(app))


def _states_on_screen(app: WandererApp) -> list[str]:
    """The connection states the overview shows, top to bottom."""
    states = ("connected", "reconnecting", "failed", "disconnected")
    return [
        word
        for line in screen_lines(app)
        if line.startswith("│ ")
        for word in line.split()
        if word in states
    ]


@pytest.mark.parametrize("size", [(60, 20), (40, 12)])
async def test_a_small_terminal_shows_every_connection_state_and_the_dead_target(
    make_app: AppFactory, size: tuple[int, int]
) -> None:
    """At 40×12 the overview's three panels shared seven rows: the connections panel kept its
    header and no row, delivery its border only (at 60×20 too: no target, so no DEAD)."""
    snapshot = degraded_snapshot()
    snapshot["alerts"] = {
        "firing": [
            {
                "rule": "outbox_depth",
                "subject": "outbox",
                "fired_at": NOW - 30,
                "value": 1474,
                "threshold": 1000,
                "summary": "outbox holds 1474 notifications",
            }
        ]
    }
    app = make_app(copy.deepcopy(snapshot))
    async with app.run_test(size=size) as pilot:
        await first_frame(pilot)
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert screen.tabbed
        shown = _shown(app)
        assert "ALERT outbox_depth" in shown, shown  # the firing alert's banner
        assert sorted(_states_on_screen(app)) == ["connected", "failed", "reconnecting"], shown
        # The delivery table is one key away (Tab), scrolled into view with its dead target.
        while not isinstance(app.focused, DeliveryTable):
            await pilot.press("tab")
        await settle(pilot)
        shown = _shown(app)
        assert "DEAD" in shown, shown
