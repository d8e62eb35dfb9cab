"""Text the engine passes on from elsewhere (a map, a killmail, a Discord answer, an error
message) is shown as it is: never read as Textual/Rich markup, never written raw to the terminal.

A name holding ``[/]`` is invalid markup: read as markup it raised ``MarkupError`` while the
table or title was drawn and ended the console. An escape sequence (``ESC ] 0 ; … BEL`` sets the
terminal's title, others move the cursor or write the clipboard) reached the operator's terminal
as it came: it is shown as a visible control picture (``␛``) instead.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.ui.conftest import HEALTHY, NOW, AppFactory
from tests.ui.fakes import SeededBackend, first_frame, next_frame, screen_lines, settle
from wanderer_console.console_api import AlertRecordView
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.screens.alerts import AlertsScreen
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.screens.detail import DetailScreen
from wanderer_console.ui.screens.trackers import TrackersScreen

pytestmark = pytest.mark.slow

SIZE = (160, 50)
MARKUP = "[bold]loud[/] [link=https://evil.example]click[/link] [/]"
"""Markup, and a stray closing tag that is invalid markup."""
INJECTION = "\x1b]0;pwned\x07\x1b[2J\x9b31m"
"""Sets the terminal's title (OSC), clears the screen (CSI), and a C1 CSI."""


def _connection_named(name: str, error: str | None = None) -> dict[str, Any]:
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["connections"][0].update(name=name, state="failed", last_error=error)
    return snapshot


def _shown(app: WandererApp) -> str:
    return "\n".join(screen_lines(app))


def _raw_controls(app: WandererApp) -> list[str]:
    """The control characters in what the terminal is sent (tab and newline aside)."""
    svg = app.export_screenshot()
    return sorted({repr(ch) for ch in svg if (ord(ch) < 32 and ch not in "\t\n") or ch == "\x9b"})


async def test_a_connection_named_with_markup_opens_its_detail_view(
    make_app: AppFactory,
) -> None:
    app = make_app(_connection_named(f"map:{MARKUP}", error=MARKUP))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("enter")  # the first connection's detail
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        shown = _shown(app)
        assert "[bold]loud[/]" in shown, shown
        assert "[link=https://evil.example]click[/link]" in shown


async def test_markup_in_names_is_shown_as_typed_and_a_stray_tag_ends_nothing(
    make_app: AppFactory,
) -> None:
    snapshot = _connection_named(f"map:{MARKUP}")
    snapshot["breakers"][f"esi:{MARKUP}"] = {"state": "open", "failures": 2}
    snapshot["counters"]["events_received"] = {MARKUP: 3}
    engine = SeededBackend(snapshot)
    engine.link = engine.link.model_copy(update={"detail": MARKUP})
    app = make_app(engine=engine)
    async with app.run_test(size=(160, 80)) as pilot:  # tall enough for every counter
        await first_frame(pilot)
        await next_frame(pilot, engine)
        assert isinstance(app.screen, DashboardScreen)
        shown = _shown(app)
        assert "map:[bold]loud[/]" in shown, shown
        assert "esi:[bold]loud[/]" in shown, shown
        assert "  [bold]loud[/]" in shown, shown  # the counters' events received by source


async def test_a_tracker_and_an_alert_with_markup_show_it_as_typed(
    make_app: AppFactory,
) -> None:
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["trackers"] = [
        {"tenant": "alpha", "name": "wh", "target": f"#{MARKUP}", "ping": "[/]"}
    ]
    record = AlertRecordView(
        rule="queue_depth",
        subject=MARKUP,
        fired_at=NOW - 60,
        value=900,
        threshold=500,
        summary=f"queue of {MARKUP}",
    )

    class WithHistory(SeededBackend):
        async def alert_history(self, limit: int = 100) -> tuple[AlertRecordView, ...]:
            return (record,)

    app = make_app(engine=WithHistory(snapshot))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("k")
        await settle(pilot)
        assert isinstance(app.screen, TrackersScreen)
        assert "#[bold]loud[/]" in _shown(app)
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, AlertsScreen)
        shown = _shown(app)
        assert "queue of [bold]loud[/]" in shown, shown


async def test_an_escape_sequence_from_the_engine_never_reaches_the_terminal(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend(_connection_named(f"map:a{INJECTION}b", error=f"lost {INJECTION}"))
    engine.log(f"kill by {INJECTION}pilot", level="warning")
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await next_frame(pilot, engine)
        assert _raw_controls(app) == []
        shown = _shown(app)
        assert "map:a␛]0;pwned␇␛[2J" in shown, shown  # visible, as control pictures
        assert "kill by ␛]0;pwned" in shown
        await pilot.press("enter")  # the connection's detail: its name and whole error
        await settle(pilot)
        assert isinstance(app.screen, DetailScreen)
        assert _raw_controls(app) == []
        assert "lost ␛]0;pwned␇" in _shown(app)


async def test_a_name_of_wide_characters_leaves_the_columns_after_it_on_screen(
    make_app: AppFactory,
) -> None:
    """A map named in CJK or emoji takes two cells a character: clipped by its count of
    characters, the name was twice as wide as the room it was given and pushed the quality,
    the last event and the last error off an 80-column screen (an ASCII name as long is
    clipped and leaves them)."""
    wide = "ワームホール偵察隊" * 12 + "🚀" * 20
    app = make_app(_connection_named(f"map:{wide}", error="HTTP 401"))
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        shown = _shown(app)
        header = next(line for line in shown.splitlines() if "Name" in line and "State" in line)
        assert "Quality" in header, shown
        assert "Last error" in header, shown
        row = next(line for line in shown.splitlines() if "map:ワ" in line)
        assert "…" in row, shown
        assert "HTTP 401" in row, shown
