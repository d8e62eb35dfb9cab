"""Small and odd terminals (a phone's SSH client, a split tmux pane): 60×20 and 40×12.

What matters at 3 a.m. stays on screen or one key away: each connection's state, the delivery
targets (a dead one), a firing alert; every screen opens and closes by keyboard alone.
"""

from __future__ import annotations

import copy

import pytest

from tests.ui.conftest import HEALTHY, NOW, AppFactory, degraded_snapshot
from tests.ui.fakes import SeededBackend, first_frame, next_frame, screen_lines, settle
from tests.ui.test_snapshots import IDENTITY
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.screens.choice import ChoiceScreen
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.screens.help import HelpScreen
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


@pytest.mark.parametrize("size", [(60, 20), (40, 12)])
async def test_on_a_small_terminal_help_says_what_each_key_does(
    make_app: AppFactory, size: tuple[int, int]
) -> None:
    """The id column kept its width and the action column got none: help listed ``q  app.quit``
    with no word of what q does. Narrow, the id goes under the action instead."""
    app = make_app(degraded_snapshot())
    async with app.run_test(size=size) as pilot:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        body = screen_lines(app)[1:-1]  # the help box (the key bar under it names keys too)
        [quit_row] = [line for line in body if " q " in line]
        assert "Quit" in quit_row, "\n".join(body)
        assert any("app.quit" in line for line in body), "\n".join(body)
        await pilot.press("escape")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)


async def test_help_open_while_the_terminal_shrinks_still_says_what_each_key_does(
    make_app: AppFactory,
) -> None:
    app = make_app(degraded_snapshot())
    async with app.run_test(size=(100, 30)) as pilot:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        for size in [(80, 24), (40, 12), (60, 20), (41, 13), (40, 12)]:  # a resize storm
            await pilot.resize_terminal(*size)
            app.state.backend.tick()  # type: ignore[attr-defined]  # frames keep coming
        await settle(pilot)
        await pilot.pause()
        body = screen_lines(app)[1:-1]
        [quit_row] = [line for line in body if " q " in line]
        assert "Quit" in quit_row, "\n".join(body)


async def test_at_40x12_the_quit_question_fits_and_escape_stays(make_app: AppFactory) -> None:
    """The box was taller than the terminal: its title (the question) was off screen."""
    snapshot = degraded_snapshot()
    snapshot["counters"]["outbox"] = {"pending": 1470, "sending": 4, "sent": 125}
    app = make_app(snapshot)
    async with app.run_test(size=(40, 12)) as pilot:
        await first_frame(pilot)
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, ChoiceScreen)
        shown = _shown(app)
        assert "Quit with notifications pending?" in shown, shown
        assert "Quit (q)" in shown, shown
        assert "Stay (s)" in shown, shown
        await pilot.press("escape")  # the safe answer: stay
        await settle(pilot)
        assert app.is_running
        assert isinstance(app.screen, DashboardScreen)


async def test_a_paused_delivery_stays_in_the_title_of_an_80_column_terminal(
    make_app: AppFactory,
) -> None:
    """The dashboard's title named the engine first (host, data directory, version, uptime) and
    delivery's state last: at 80 columns (and at 100 with a longer host or path) it ended in
    ``de…``, and on the activity, counters and chart tabs nothing else said delivery was
    PAUSED. The state comes first; the engine's name is what gets clipped."""
    engine = SeededBackend(HEALTHY, identity=IDENTITY)
    app = make_app(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert engine.paused is True
        await pilot.press("2")  # the activity tab: the delivery panel is not shown
        await next_frame(pilot, engine)
        title = screen_lines(app)[0]
        assert "delivery PAUSED" in title, title
        assert "wc-prod-1" in title, title
