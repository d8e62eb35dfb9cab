"""Toasts show what they say: text from the operator or the engine (a typed value, a name, an
error message, a ``[section]``) is never read as Textual markup, which dropped bracketed words
and raised on ``[/]``, ending the console."""

from __future__ import annotations

import copy

import pytest
from textual.widgets import DataTable, Input

from tests.ui.conftest import HEALTHY, AppFactory
from tests.ui.fakes import SeededBackend, first_frame, screen_lines, seeded_settings, settle
from wanderer_console.ui.screens.alerts import COLUMNS, AlertsScreen

pytestmark = pytest.mark.slow


def with_a_rule() -> dict[str, object]:
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["alerts"] = {"rules": {"queue_depth": {"threshold": 500, "unit": "items"}}}
    return snapshot


async def test_a_value_typed_with_markup_characters_is_refused_and_the_console_stays_up(
    make_app: AppFactory,
) -> None:
    """``'5[/]' is not a number`` raised MarkupError while drawn: the console ended."""
    app = make_app(with_a_rule())
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await first_frame(pilot)
        await pilot.press("a")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AlertsScreen)
        rules = screen.query_one("#alert-rules", DataTable)
        rules.move_cursor(row=0, column=COLUMNS.index("threshold"))
        await pilot.press("enter")
        await pilot.pause()
        editor = screen.query_one("#alert-edit", Input)
        assert editor.has_focus
        editor.value = "5[/]"
        await pilot.press("enter")
        await pilot.pause()
        await pilot.pause()
        assert app.is_running
        assert any("'5[/]' is not a number" in line for line in screen_lines(app))
        assert app.screen is screen
        assert editor.has_focus  # kept, as typed, to be corrected


async def test_the_keymap_warning_names_its_section(make_app: AppFactory) -> None:
    """The console's own toast began with ``[keymap]``, which markup swallowed."""
    engine = SeededBackend(HEALTHY)
    engine.settings = seeded_settings().model_copy(update={"keymap": {"app.nothing": "x"}})
    app = make_app(engine=engine)
    async with app.run_test(size=(120, 30), notifications=True) as pilot:
        await first_frame(pilot)
        await pilot.pause()
        shown = "\n".join(screen_lines(app))
        assert "[keymap] names no binding: app.nothing" in shown, shown
