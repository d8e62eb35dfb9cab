"""Safe quit (a console that would stop its engine with notifications pending asks; an attached
one never does), the activity filter on ``/``, and the small-terminal tabs."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from textual.widgets import Input, Tabs

from tests.ui.conftest import HEALTHY, NOW, PRIMARY, RALLY, AppFactory, degraded_snapshot
from tests.ui.fakes import SeededBackend, first_frame, next_frame, screen_lines
from wanderer_console.console_api import EngineIdentity
from wanderer_console.ui.screens.choice import ChoiceScreen
from wanderer_console.ui.screens.dashboard import DashboardScreen, FilterInput
from wanderer_console.ui.screens.detail import DetailScreen
from wanderer_console.ui.widgets.activity import ActivityPanel
from wanderer_console.ui.widgets.connections import ConnectionsTable

SIZE = (120, 40)
SMALL = (80, 24)


def _pending(count: int) -> dict[str, Any]:
    """``count`` notifications waiting, all for the rally webhook (four of them being sent)."""
    snapshot = copy.deepcopy(HEALTHY)
    sending = min(4, count)
    snapshot["counters"]["outbox"] = {"pending": count - sending, "sending": sending, "sent": 125}
    targets = snapshot["delivery"]["targets"]
    targets[PRIMARY]["pending"], targets[RALLY]["pending"] = 0, count
    return snapshot


async def test_quit_with_pending_notifications_asks_and_stays(make_app: AppFactory) -> None:
    app = make_app(_pending(1474))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running
        screen = app.screen
        assert isinstance(screen, ChoiceScreen)
        shown = "\n".join(screen_lines(app))
        assert "1,474 notifications are pending" in shown
        assert "delivered at the next start" in shown
        await pilot.press("s")
        await pilot.pause()
        assert app.is_running
        assert isinstance(app.screen, DashboardScreen)

        await pilot.press("q")
        await pilot.pause()
        await pilot.press("escape")  # Escape stays too
        await pilot.pause()
        assert app.is_running
        assert isinstance(app.screen, DashboardScreen)


async def test_the_quit_question_counts_what_the_delivery_panel_shows_and_follows_it(
    make_app: AppFactory,
) -> None:
    # The outbox counts (79) and the targets' queues (81, the delivery panel's Pending) are read
    # at different moments by the engine: the question gives the figure on screen, and keeps
    # giving it while the engine delivers under it.
    engine = SeededBackend(_pending(79))
    engine.data["delivery"]["targets"][RALLY]["pending"] = 81
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        assert "81 notifications are pending" in app.screen.message
        engine.data["delivery"]["targets"][RALLY]["pending"] = 40
        await next_frame(pilot, engine)
        assert isinstance(app.screen, ChoiceScreen)
        assert "40 notifications are pending" in app.screen.message
        assert "40 notifications are pending" in "\n".join(screen_lines(app))


async def test_quit_with_pending_notifications_quits_when_confirmed(make_app: AppFactory) -> None:
    app = make_app(_pending(10))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_quit_with_nothing_pending_quits_at_once(make_app: AppFactory) -> None:
    app = make_app(_pending(0))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


async def test_an_attached_console_never_asks(make_app: AppFactory) -> None:
    elsewhere = EngineIdentity(
        host="wc-prod-1", pid=1, data_dir="/var/lib/wc", version="0.1.0", started_at=NOW - 60
    )
    app = make_app(engine=SeededBackend(_pending(1474), identity=elsewhere))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert app.attached
        await pilot.press("q")
        await pilot.pause()
    assert app.return_code == 0


# -- the activity filter ---------------------------------------------------------------------------


async def test_slash_reaches_the_filter_q_types_into_it_and_escape_leaves_it(
    make_app: AppFactory,
) -> None:
    app = make_app(degraded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("slash")
        await pilot.pause()
        field = app.screen.query_one(FilterInput)
        assert field.has_focus
        await pilot.press("k", "i", "q", "l", "l")  # a q in the filter is a letter, not Quit
        await pilot.pause()
        assert app.is_running
        assert field.value == "kiqll"
        assert app.screen.query_one(ActivityPanel).texts() == []
        for _ in range(5):
            await pilot.press("backspace")
        await pilot.press(*"killstream")
        await pilot.pause()
        texts = app.screen.query_one(ActivityPanel).texts()
        assert texts
        assert all("killstream" in text for text in texts)
        await pilot.press("escape")
        await pilot.pause()
        assert not field.has_focus
        assert app.screen.query_one(ActivityPanel).has_focus
        assert field.value == "killstream"  # leaving keeps the filter
        await pilot.press("q")  # out of the filter, q is Quit again (one pending: it asks)
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)


async def test_on_a_small_terminal_slash_opens_the_activity_tab(make_app: AppFactory) -> None:
    app = make_app(degraded_snapshot())
    async with app.run_test(size=SMALL) as pilot:
        await first_frame(pilot)
        await pilot.press("slash")
        await pilot.pause()
        assert app.screen.query_one(Tabs).active == "tab-activity"
        assert app.screen.query_one(FilterInput).has_focus
        assert any("Recent activity" in line for line in screen_lines(app))


# -- layouts ---------------------------------------------------------------------------------------


async def test_a_small_terminal_gets_tabs_and_digits_switch_them(make_app: AppFactory) -> None:
    app = make_app(degraded_snapshot())
    async with app.run_test(size=SMALL) as pilot:
        await first_frame(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert screen.tabbed
        shown = "\n".join(screen_lines(app))
        for title in ("Connections", "Delivery", "Circuit breakers"):
            assert title in shown
        assert "Quality" in shown  # kept at 80 columns
        assert "Last error" in shown
        assert "socket lost: [Errno" in shown
        for key, titles in (
            ("2", ["Recent activity"]),
            ("3", ["Counters", "Cache"]),
            ("4", ["Throughput"]),
            ("1", ["Connections"]),
        ):
            await pilot.press(key)
            await pilot.pause()
            shown = "\n".join(screen_lines(app))
            for title in titles:
                assert title in shown, (key, title, shown)


async def test_switching_tabs_or_shrinking_the_terminal_keeps_a_focus(
    make_app: AppFactory,
) -> None:
    """The focused table's tab hidden (2, then back to 1; or the terminal shrunk to tabs), the
    focus went nowhere: Enter and the arrows did nothing until the operator pressed Tab."""
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        screen.query_one("#cache-panel").focus()  # a panel that has its own tab when small
        await pilot.pause()
        await pilot.resize_terminal(*SMALL)
        await pilot.pause()
        await pilot.pause()
        assert screen.tabbed
        assert isinstance(app.focused, ConnectionsTable)
        await pilot.press("2")
        await pilot.pause()
        assert isinstance(app.focused, ActivityPanel)
        await pilot.press("1")
        await pilot.pause()
        assert isinstance(app.focused, ConnectionsTable)
        await pilot.press("enter")  # the highlighted connection's detail
        await pilot.pause()
        assert isinstance(app.screen, DetailScreen)


async def test_a_large_terminal_shows_every_panel_without_tabs(make_app: AppFactory) -> None:
    app = make_app(degraded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert not screen.tabbed
        assert not screen.query_one(Tabs).display
        shown = "\n".join(screen_lines(app))
        for title in (
            "Connections",
            "Delivery",
            "Circuit breakers",
            "Counters",
            "Cache",
            "Throughput",
            "Recent activity",
        ):
            assert title in shown
        assert "zkill:zkillboard.com" in shown  # hosts whole when there is room
        await pilot.resize_terminal(*SMALL)
        await pilot.pause()
        assert screen.tabbed
        await pilot.resize_terminal(*SIZE)
        await pilot.pause()
        assert not screen.tabbed


async def test_no_lookups_is_a_dash_not_zero_percent(make_app: AppFactory) -> None:
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["cache"] = {"namespaces": {"system": {"size": 0, "maxsize": 5000}}}
    app = make_app(snapshot)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        shown = "\n".join(screen_lines(app))
        assert "0%" not in shown
        [system] = [line for line in shown.splitlines() if "system " in line and "/5000" in line]
        assert " - " in system
        assert "All -" in shown


async def test_the_filter_field_says_how_to_reach_it(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert app.screen.query_one("#activity-filter", Input).placeholder.startswith("/")


# -- the key bar at 80 columns ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "own"),
    [
        ("t", ["space Flip", "esc Back"]),
        ("g", ["1 1 h", "2 24 h", "3 7 d", "esc Back"]),
        ("e", ["esc Back", "/ Search", "m Map", "y Type", "o Outcome", "x Clear", "r Refresh"]),
        ("k", ["space On/off", "esc Back"]),
    ],
)
async def test_at_80_columns_the_key_bar_shows_the_screens_own_keys(
    make_app: AppFactory, key: str, own: list[str]
) -> None:
    """At 80×24 the app's keys (quit, the screens) filled the bar and cut each screen's own:
    the events browser's filters and the trends' ranges were never on it. A screen's own keys
    now come first when the bar cannot hold them all."""
    app = make_app(HEALTHY)
    async with app.run_test(size=SMALL) as pilot:
        await first_frame(pilot)
        await pilot.press(key)
        await pilot.pause()
        bar = screen_lines(app)[-1]
        for label in own:
            assert label in bar, (label, bar)
