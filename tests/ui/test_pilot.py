"""Interaction tests with Pilot: flag toggles, pause, palette entries, link state and the title.

The console runs over a :class:`~tests.ui.fakes.SeededBackend`: what it sends the engine is read
from the operations the backend recorded, what it shows from the screens.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from textual.binding import Binding
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Static

from tests.ui.conftest import ACTOR, HEALTHY, NOW, AppFactory, degraded_snapshot
from tests.ui.fakes import (
    Operation,
    SeededBackend,
    first_frame,
    next_frame,
    record_toasts,
    screen_lines,
    settle,
)
from wanderer_console.console_api import BackendError, EngineIdentity, LinkState
from wanderer_console.ui.app import WandererApp, binding_ids, build_app, default_actor
from wanderer_console.ui.commands import console_commands
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.screens.events import EventDetailScreen, EventsScreen, EventsTable
from wanderer_console.ui.screens.help import HelpScreen
from wanderer_console.ui.screens.toggles import TogglesScreen
from wanderer_console.ui.widgets.activity import ActivityPanel

pytestmark = pytest.mark.slow

SIZE = (120, 40)


def _cell(app: WandererApp, tenant: str, flag: str) -> str:
    return str(app.screen.query_one("#flags", DataTable).get_cell(tenant, flag))


async def test_toggle_kill_off_asks_the_engine_and_shows_the_result(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, TogglesScreen)
        await pilot.press("right", "enter")  # cursor starts on global/enabled; kill is next
        await settle(pilot)
        assert engine.operations == [Operation("set_flag", (None, "kill", False), ACTOR)]
        assert _cell(app, "", "kill") == "off"  # shown at once, not at the next frame
        assert _cell(app, "", "enabled") == "on"
        assert toasts == [
            ("global kill notifications off (not saved: no config file)", "information")
        ]


async def test_on_a_small_terminal_the_toggles_screen_says_how_to_flip(
    make_app: AppFactory,
) -> None:
    """80×24: the key bar is cut before the screen's own keys (``space Flip`` became
    ``space …``), so the hint above the table says which keys flip a flag."""
    app = make_app(HEALTHY)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await pilot.press("t")
        await pilot.pause()
        shown = " ".join(line.strip() for line in screen_lines(app))
        assert "Space or Enter flips the flag under the cursor" in shown, shown


async def test_toggle_per_map_flag(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("down", "right", "right", "right", "right", "space")  # alpha/rally
        await settle(pilot)
        assert engine.operations == [Operation("set_flag", ("alpha", "rally", False), ACTOR)]
        assert engine.settings.maps["alpha"].rally is False
        assert _cell(app, "alpha", "rally") == "off"
        assert _cell(app, "", "rally") == "on"


async def test_toggles_follow_a_flip_made_elsewhere(make_app: AppFactory) -> None:
    """Another console (or a hot reload) turns a flag off: the next frame shows it here."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("t")
        await pilot.pause()
        assert _cell(app, "bravo", "system") == "on"
        await engine.set_flag("bravo", "system", False, actor="tui:other@elsewhere")
        await next_frame(pilot, engine)
        assert _cell(app, "bravo", "system") == "off"
        assert ("info: operator: map bravo system notifications off") in [
            text for _, text in app.state.activity.entries
        ]


async def test_a_refused_flip_is_an_error_toast_and_the_console_stays_up(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend(HEALTHY)
    engine.refuse["set_flag"] = BackendError("engine lost: connection refused")
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("right", "enter")
        await settle(pilot)
        assert app.is_running
        assert toasts == [
            (
                "Could not switch global kill notifications: engine lost: connection refused",
                "error",
            )
        ]
        assert _cell(app, "", "kill") == "on"


async def test_pause_key_pauses_and_resumes(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert engine.paused is True
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        assert screen.sub_title.startswith("delivery PAUSED · ")
        await pilot.press("p")  # the refreshed snapshot says paused: this resumes
        await settle(pilot)
        assert engine.paused is False
    assert [op.args for op in engine.operations] == [(True,), (False,)]
    assert {op.actor for op in engine.operations} == {ACTOR}


async def test_pause_refused_is_an_error_toast(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    engine.refuse["set_paused"] = BackendError("the engine refused: read-only console")
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        await pilot.press("p")
        await settle(pilot)
        assert app.is_running
        assert toasts == [
            ("Could not pause delivery: the engine refused: read-only console", "error")
        ]


async def test_palette_lists_toggle_commands(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"toggle global kill")
        await pilot.pause(0.5)
        prompts = [str(option.prompt) for option in app.screen.query_one(CommandList).options]
        assert any("Toggle global kill notifications" in p for p in prompts), prompts
        titles = [command.title for command in console_commands(app)]
    assert "Toggle map alpha rally notifications" in titles
    assert "Pause delivery" in titles


async def test_the_counters_panel_groups_thousands_as_the_events_browser_does(
    make_app: AppFactory,
) -> None:
    snapshot = copy.deepcopy(HEALTHY)
    counters = snapshot["counters"]
    counters["events_received"] = {"map": 5000, "killstream": 12345}
    counters["notifications_queued"] = {"kill": 1500}
    counters["notifications_delivered"] = {"kill": 1234}
    app = make_app(snapshot)
    async with app.run_test(size=(200, 60)) as pilot:
        await first_frame(pilot)
        shown = "\n".join(screen_lines(app))
    assert re.search(r"Events received +17,345", shown), shown
    assert re.search(r"  map +5,000", shown), shown
    assert re.search(r"  kill +1,234/1,500", shown), shown


async def test_help_and_dashboard_keys(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert len(app.screen_stack) == 1


async def test_help_lists_every_binding_a_keymap_may_name(make_app: AppFactory) -> None:
    """The keymap's toast says "see ? for the ids": every screen's keys are listed there
    (the alerts, trends and priority screens and the delivery table too)."""
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        listed = {
            binding.id
            for _title, bindings in app.screen.groups
            for binding in bindings
            if isinstance(binding, Binding)
        }
    assert binding_ids() - listed == set()


def _tab_keys_heading(app: WandererApp) -> str:
    """The title of the help group that lists the dashboard's tab keys 1-4."""
    assert isinstance(app.screen, HelpScreen)
    (title,) = [
        title
        for title, bindings in app.screen.groups
        if any(isinstance(b, Binding) and b.action.startswith("tab(") for b in bindings)
    ]
    return title


async def test_help_at_a_grid_size_does_not_offer_the_tab_keys_as_working(
    make_app: AppFactory,
) -> None:
    """At 120x40 every panel is on screen and 1-4 do nothing: help listed them with the
    dashboard's keys as if they worked. They stay listed (a [keymap] may name them), said to be
    for small terminals, and not at this size."""
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("2")  # does nothing here
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        title = _tab_keys_heading(app)
        assert "below 100 columns or 30 rows" in title
        assert "not at this size" in title
        assert "not at this size" in "\n".join(screen_lines(app))
    small = make_app(HEALTHY)
    async with small.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        title = _tab_keys_heading(small)
        assert "below 100 columns or 30 rows" in title
        assert "not at this size" not in title


async def test_on_a_small_terminal_help_shows_every_binding_id_whole(
    make_app: AppFactory,
) -> None:
    """80×24: the ids a ``[keymap]`` entry names were folded over two lines in a narrow column
    (``dashboard.dis`` / ``miss``, ``events.leave_`` / ``search``), inviting a wrong key."""
    app = make_app(HEALTHY)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        seen: set[str] = set()
        for _ in range(20):  # page through the whole list
            for line in screen_lines(app):
                seen.update(re.findall(r"[a-z_]+\.[a-z0-9_]+", line))
            await pilot.press("pagedown")
            await pilot.pause()
    assert binding_ids() - seen == set()


async def test_an_event_detail_the_engine_could_not_read_is_not_called_pruned(
    make_app: AppFactory,
) -> None:
    """Enter on an event while the engine does not answer: the toast says why, and no second
    toast claims the event was pruned (it is still there)."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("e")
        await settle(pilot)
        assert isinstance(app.screen, EventsScreen)
        assert app.screen.query_one(EventsTable).row_count > 0
        toasts = record_toasts(app)
        engine.refuse["event_detail"] = BackendError("engine lost: connection refused")
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, EventsScreen)
    assert toasts == [("Could not read the event: engine lost: connection refused", "error")]


async def test_an_events_page_the_engine_could_not_send_is_not_left_loading(
    make_app: AppFactory,
) -> None:
    """A filter changed while the engine does not answer: once the error toast is gone, the
    filters line must not still say ``loading…`` over the old page."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("e")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        engine.refuse["events"] = BackendError("engine lost: connection refused")
        await pilot.press("o")  # the next outcome filter: a new page is asked for
        await settle(pilot)
        line = str(screen.query_one("#events-filters", Static).content)
    assert "loading" not in line, line
    assert "not loaded" in line, line


async def test_activity_filter_hides_other_lines(make_app: AppFactory) -> None:
    from textual.widgets import Input

    app = make_app(degraded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        panel = app.screen.query_one(ActivityPanel)
        everything = len(panel.texts())
        app.screen.query_one("#activity-filter", Input).value = "KILLSTREAM"
        await pilot.pause()
        texts = panel.texts()
        assert 0 < len(texts) < everything
        assert all("killstream" in text for text in texts), texts


async def test_engine_log_lines_reach_the_activity_panel(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        engine.log("map alpha: SSE reconnected after 2 s", level="warning")
        await next_frame(pilot, engine)
        texts = app.screen.query_one(ActivityPanel).texts()
        assert any("warning: map alpha: SSE reconnected after 2 s" in t for t in texts), texts


IDENTITY = EngineIdentity(
    host="wc-prod-1",
    pid=4242,
    data_dir="/var/lib/wanderer-console",
    version="0.5.0",
    started_at=NOW - 3 * 3600,
)


async def test_a_lost_engine_is_unmistakable_and_clears_when_frames_are_live(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend({**HEALTHY, "uptime": 3 * 3600.0}, identity=IDENTITY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        dashboard = app.screen
        assert isinstance(dashboard, DashboardScreen)
        label = "wc-prod-1 · /var/lib/wanderer-console · v0.5.0 · up 3h00m"
        assert dashboard.sub_title == f"delivery running · {label}"
        assert app.sub_title == label  # the other screens' title bar
        badge = dashboard.query_one("#link-badge")
        grid = dashboard.query_one("#dashboard")
        assert not badge.display
        toasts = record_toasts(app)

        engine.link = LinkState(state="lost", detail="connection refused", since=NOW)
        await next_frame(pilot, engine)
        assert badge.display
        assert str(badge.render()).startswith(
            "ENGINE LOST: connection refused — reconnecting… · figures below are stale"
        )
        assert grid.has_class("-stale")
        assert app.sub_title == f"ENGINE LOST · {label}"
        assert toasts[-1][1] == "error"

        engine.link = LinkState()
        await next_frame(pilot, engine)
        assert not badge.display
        assert not grid.has_class("-stale")
        assert app.sub_title == label
        assert toasts[-1] == ("Engine back: the figures are live again.", "information")
        texts = [text for _, text in app.state.activity.entries]
        assert "engine lost: connection refused" in texts
        assert texts[-1] == "engine link live again"


async def test_frames_are_asked_at_the_engines_refresh_interval(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    engine.settings = engine.settings.model_copy(update={"refresh_seconds": 0.25})
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await next_frame(pilot)  # the stream is asked again at the new interval
    assert engine.intervals[:2] == [1.0, 0.25]


async def test_a_failing_frame_stream_is_reported_and_asked_again(make_app: AppFactory) -> None:
    class Flaky(SeededBackend):
        failures = 1

        async def frames(self, interval: float) -> Any:
            if self.failures:
                self.failures -= 1
                raise BackendError("stream broke")
            async for frame in super().frames(interval):
                yield frame

    engine = Flaky(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert app.is_running
        texts = [text for _, text in app.state.activity.entries]
        assert "the engine's frame stream failed: stream broke; asking again" in texts


def test_default_actor_names_user_and_host() -> None:
    actor = default_actor()
    assert actor.startswith("tui:")
    assert "@" in actor


async def test_build_app_defaults_to_the_engines_theme() -> None:
    engine = SeededBackend(HEALTHY)
    engine.settings = engine.settings.model_copy(update={"theme": "wanderer-light"})
    app = build_app(engine, actor=ACTOR)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert app.theme == "wanderer-light"


async def test_events_with_square_brackets_in_their_names_are_shown_as_sent(
    make_app: AppFactory,
) -> None:
    """A system's name comes from the map server (a pilot may rename a system ``[home] base``, or
    ``[/]``): the events browser shows it as it is, never reads it as markup (``[/]`` raised a
    MarkupError that took the whole console down)."""
    engine = SeededBackend(HEALTHY)
    page = engine.event_page
    odd = [
        row.model_copy(update={"system": name, "type": kind})
        for row, name, kind in zip(
            page.events[:3],
            ("[/]", "[home] base", "[bold]J1[/bold]"),
            ("[/x]", "add_system", "[b]"),
            strict=True,
        )
    ]
    engine.event_page = page.model_copy(update={"events": (*odd, *page.events[3:])})
    first = engine.event_details[odd[0].id]
    engine.event_details[odd[0].id] = first.model_copy(update={"event": odd[0]})
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("e")
        await settle(pilot)
        await pilot.pause()
        assert app.is_running
        shown = "\n".join(screen_lines(app))
        for name in ("[/]", "[home] base", "[bold]J1[/bold]", "[/x]"):
            assert name in shown, shown
        await pilot.press("enter")  # the first event in full
        await settle(pilot)
        await pilot.pause()
        assert app.is_running
        assert isinstance(app.screen, EventDetailScreen)
        detail = "\n".join(screen_lines(app))
    assert "[/x] kill:128000001" in detail, detail  # the title
    assert re.search(r"System +\[/\]", detail), detail


async def test_a_tab_activated_while_the_screen_is_torn_down_does_not_crash(
    make_app: AppFactory,
) -> None:
    """A stop (SIGTERM) during the console's start exits the app while the dashboard is still
    being built or already taken down: the tab bar's activation message then found no panel to
    show and ended the console with a traceback and exit code 1 (``NoMatches: #conns-panel``).
    A panel that is not there is nothing to show or hide."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await screen.query_one("#conns-panel").remove()
        await pilot.pause()
        screen.action_tab("activity")  # what the tab bar's message does: no NoMatches
        await pilot.pause()
        assert screen.current_tab == "activity"
    assert app.return_code in (0, None)


async def test_a_stop_during_the_start_waits_for_the_first_screen_and_exits_cleanly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM a second after ``wanderer-console demo`` started (seen in tmux): the stop ended
    the app while the dashboard was being built, whose widgets then raised on the way out
    (``NoMatches: ConnectionsTable``): a traceback and exit code 1 instead of a clean stop.
    Here the stop is set before the app starts, the app run headless (no terminal in a test)."""
    import asyncio
    import functools

    from textual.app import App

    from tests.ui.fakes import SeededBackend
    from wanderer_console.ui.app import run_app

    monkeypatch.setattr(App, "run_async", functools.partialmethod(App.run_async, headless=True))
    stop = asyncio.Event()
    stop.set()
    assert await run_app(SeededBackend(HEALTHY), stop, settle_gc=False) == 0
