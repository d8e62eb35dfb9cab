"""Each map's kill trackers with what they matched; Space or Enter switches one on or off.

The rows come from the snapshot (:attr:`~wanderer_console.console_api.EngineSnapshot.trackers`):
a map's ``default`` tracker (its ``[filters]`` and kill routes) first, then its
``[[maps.<key>.trackers]]``. A switch goes to the engine (``set_tracker``), which applies it and
saves it to its config file; the next frame shows it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from wanderer_console.console_api import TrackerView
from wanderer_console.ui.model import ConsoleState, format_ago
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.colours import coloured
from wanderer_console.ui.widgets.keybar import KeyBar

__all__ = ["TrackersScreen", "trackers_hint"]

COLUMNS = ("Map", "Tracker", "On", "1h", "Total", "Last", "Target", "Ping")


def trackers_hint(state: ConsoleState) -> str:
    """What the screen says about the trackers and where a switch goes."""
    if not _trackers(state):
        return (
            "No map has [[maps.<key>.trackers]]: each map's [filters] is its only kill feed."
            " See docs/trackers.md."
        )
    config = state.config
    where = None if config is None else config.path
    saved = f"saved to {where}" if where else "not saved: no config file"
    return f"Matches in the last hour and since start. Space switches a tracker ({saved})."


def _trackers(state: ConsoleState) -> tuple[TrackerView, ...]:
    latest = state.latest
    return () if latest is None else latest.trackers


class TrackersScreen(OnWanderer, Screen[None]):
    """A table of every map's trackers; Enter or Space switches the one under the cursor."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "flip", "On/off", id="trackers.flip"),
        Binding("escape", "app.dashboard", "Back", id="trackers.back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (the trackers are read from its latest snapshot)."""
        self._shown: tuple[TrackerView, ...] | None = None
        self._hint = ""

    def compose(self) -> ComposeResult:
        """Header, hint, trackers table, key bar."""
        yield Header()
        self._hint = trackers_hint(self.state)
        # Plain text: the hint names TOML sections ("[filters]"), which markup would swallow.
        yield Static(self._hint, id="trackers-hint", markup=False)
        yield DataTable(id="trackers", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        """Fill the table and focus it."""
        table = self.query_one("#trackers", DataTable)
        for column in COLUMNS:
            table.add_column(column, key=column.lower())
        self._redraw()
        table.focus()

    def refresh_trackers(self) -> None:
        """Redraw when the snapshot's trackers changed (called for every frame)."""
        if self.is_mounted:
            self._redraw()

    def _redraw(self) -> None:
        hint = trackers_hint(self.state)
        if hint != self._hint:
            self._hint = hint
            self.query_one("#trackers-hint", Static).update(hint)
        trackers = _trackers(self.state)
        if trackers == self._shown:
            return
        self._shown = trackers
        table = self.query_one("#trackers", DataTable)
        row = table.cursor_row
        table.clear()
        now = self.state.clock.wall()
        for tracker in trackers:
            table.add_row(*self._cells(tracker, now), key=f"{tracker.tenant}/{tracker.name}")
        if trackers:
            table.move_cursor(row=min(max(row, 0), len(trackers) - 1))

    def _cells(self, tracker: TrackerView, now: float) -> list[Any]:
        on = (
            coloured(self, "on", "health-ok", bold=True)
            if tracker.enabled
            else coloured(self, "off", "health-down", bold=True)
        )
        name = Text(tracker.name, style="italic" if tracker.default else "")
        if tracker.scope == "all":
            name.append(" (all)", style="dim")
        last = format_ago(tracker.last_match_at, now)
        return [
            Text(tracker.tenant, style="bold"),
            name,
            on,
            str(tracker.matches_last_hour),
            str(tracker.matches_total),
            last,
            Text(tracker.target or "-"),  # as configured: a table reads a str as markup
            Text(tracker.ping or "-"),
        ]

    def _selected(self, row: int) -> TrackerView | None:
        trackers = _trackers(self.state)
        return trackers[row] if 0 <= row < len(trackers) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click) on a row switches that tracker."""
        event.stop()
        tracker = self._selected(event.cursor_row)
        if tracker is not None:
            self.wanderer.flip_tracker(tracker)

    def action_flip(self) -> None:
        """Switch the tracker under the cursor."""
        tracker = self._selected(self.query_one("#trackers", DataTable).cursor_row)
        if tracker is not None:
            self.wanderer.flip_tracker(tracker)
