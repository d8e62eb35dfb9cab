"""The console's own alerts: every rule with its threshold and duration (edited live), what
fires now, and the alert history.

A change goes to the engine like a notification switch (``set_alert_rule``): the engine saves it
to its config file and applies it at its next evaluation, so the table shows the new value with
the next frame.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Static

from wanderer_console.console_api import AlertRecordView, AlertsView
from wanderer_console.ui.faults import clock_time
from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.printable import printable_view
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.colours import coloured
from wanderer_console.ui.widgets.keybar import KeyBar

__all__ = ["COLUMNS", "AlertsScreen"]

COLUMNS = ("rule", "state", "enabled", "threshold", "for_seconds", "unit")
"""The rules table's columns (``threshold`` and ``for_seconds`` are edited with Enter). The state
comes next to the rule: last, after the long units, it was cut to ``FI`` at 80 columns."""
_EDITABLE = ("threshold", "for_seconds")


def _figure(value: float) -> str:
    """A value as the table and the editor show it: short (``1e+12``, ``0.5``) when that is
    the same number, else every digit (``86399.75``), so opening and saving the editor without a
    change saves the value unchanged."""
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


class AlertsScreen(OnWanderer, Screen[None]):
    """Rules (Space: on/off, Enter on a threshold or duration: edit), then the history."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "flip", "On/off", id="alerts.flip"),
        Binding("escape", "back", "Back", id="alerts.back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (the rules are read from its latest snapshot)."""
        self._shown: dict[str, tuple[Any, ...]] = {}
        self._editing: tuple[str, str] | None = None
        self._firing: set[tuple[str, str]] = set()

    @property
    def alerts(self) -> AlertsView:
        """The alerts as of the latest snapshot."""
        latest = self.state.latest
        return AlertsView() if latest is None else latest.alerts

    def compose(self) -> ComposeResult:
        """Header, hint, rules, editor, history, footer."""
        yield Header()
        where = self.state.config.path if self.state.config is not None else None
        saved = f"saved to {where}" if where else "not saved (no config file)"
        yield Static(
            "The console's own alerts. Space switches a rule, Enter on a threshold or a duration"
            f" edits it: applied at the next evaluation, {saved}.",
            id="alerts-hint",
        )
        yield DataTable(id="alert-rules", cursor_type="cell", zebra_stripes=True)
        yield Input(id="alert-edit", placeholder="new value, Enter to apply, Esc to cancel")
        yield Static("History (newest first)", id="alert-history-title")
        yield DataTable(id="alert-history", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        """Fill both tables; start on the first threshold."""
        rules = self.query_one("#alert-rules", DataTable)
        for column in COLUMNS:
            rules.add_column(column.replace("_", " "), key=column)
        history = self.query_one("#alert-history", DataTable)
        for column in ("fired", "resolved", "rule", "subject", "summary"):
            history.add_column(column, key=column)
        self.query_one("#alert-edit", Input).display = False
        self._redraw()
        rules.move_cursor(row=0, column=COLUMNS.index("threshold"))
        rules.focus()
        self.load_history()

    def _row(self, name: str) -> tuple[Any, ...]:
        alerts = self.alerts
        rule = alerts.rules[name]
        firing = [a for a in alerts.firing if a.rule == name]
        if not rule.enabled:
            state: Any = coloured(self, "off", "health-down")
        elif firing:
            state = coloured(self, f"FIRING ({len(firing)})", "health-down", bold=True)
        else:
            state = coloured(self, "ok", "health-ok")
        floor = "" if rule.above else " (floor)"
        return (
            Text(name, style="bold"),
            state,
            "on" if rule.enabled else "off",
            _figure(rule.threshold),
            _figure(rule.for_seconds),
            rule.unit + floor,
        )

    def refresh_rules(self) -> None:
        """Redraw the rules that changed in the latest snapshot (called for every frame)."""
        if self.is_mounted:
            self._redraw()

    def _redraw(self) -> None:
        firing = {(a.rule, a.subject) for a in self.alerts.firing}
        if firing != self._firing:  # an alert fired or resolved: the history changed
            self._firing = firing
            self.load_history()
        table = self.query_one("#alert-rules", DataTable)
        names = list(self.alerts.rules)
        if [row.value for row in table.rows] != names:
            table.clear()
            self._shown = {}
            for name in names:
                row = self._shown[name] = self._row(name)
                table.add_row(*row, key=name)
            return
        for name in names:
            row = self._row(name)
            if [str(cell) for cell in row] != [str(cell) for cell in self._shown.get(name, ())]:
                self._shown[name] = row
                for column, cell in zip(COLUMNS, row, strict=True):
                    table.update_cell(name, column, cell)

    def load_history(self) -> None:
        """Ask the engine for the alert history (in the background)."""
        self.wanderer.operate(self._history(), "alert history")

    async def _history(self) -> None:
        records = await self.wanderer.call(
            "Could not read the alert history", self.state.backend.alert_history(100)
        )
        if records is not None and self.is_mounted:
            self.show_history(printable_view(records))

    def show_history(self, records: tuple[AlertRecordView, ...]) -> None:
        """Fill the history table."""
        table = self.query_one("#alert-history", DataTable)
        table.clear()
        for record in records:
            resolved = "firing" if record.resolved_at is None else clock_time(record.resolved_at)
            table.add_row(  # as typed: a table reads a str as markup
                clock_time(record.fired_at),
                resolved,
                Text(record.rule),
                Text(record.subject),
                Text(record.summary),
            )

    # -- editing ---------------------------------------------------------------------------------

    def _cell(self) -> tuple[str, str] | None:
        table = self.query_one("#alert-rules", DataTable)
        names = list(self.alerts.rules)
        row, column = table.cursor_coordinate.row, table.cursor_coordinate.column
        if row >= len(names) or column >= len(COLUMNS):
            return None
        return names[row], COLUMNS[column]

    def action_flip(self) -> None:
        """Switch the rule under the cursor on or off."""
        cell = self._cell()
        if cell is not None:
            rule = self.alerts.rules[cell[0]]
            self.wanderer.set_alert_rule(cell[0], "enabled", not rule.enabled)

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        """Enter on a threshold or a duration opens the editor with its value."""
        event.stop()
        if event.data_table.id != "alert-rules":
            return
        cell = self._cell()
        if cell is None:
            return
        name, column = cell
        if column == "enabled":
            self.action_flip()
            return
        if column not in _EDITABLE:
            return
        self._editing = cell
        editor = self.query_one("#alert-edit", Input)
        editor.value = _figure(getattr(self.alerts.rules[name], column))
        editor.placeholder = f"alerts.{name}.{column}: new value, Enter applies, Esc cancels"
        editor.display = True
        editor.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Send the edited value to the engine; a value that is not a number stays in the
        editor, as typed, for the operator to correct (Escape cancels)."""
        event.stop()
        editing = self._editing
        if editing is None:
            self._close_editor()
            return
        try:
            value = float(event.value.strip())
        except ValueError:
            self.notify(
                f"{event.value!r} is not a number: correct it, or Escape to cancel",
                severity="error",
            )
            return
        self._editing = None
        self._close_editor()
        self.wanderer.set_alert_rule(editing[0], editing[1], value)

    def _close_editor(self) -> None:
        editor = self.query_one("#alert-edit", Input)
        editor.display = False
        self.query_one("#alert-rules", DataTable).focus()

    def action_back(self) -> None:
        """Close the editor, or go back to the dashboard."""
        if self._editing is not None:
            self._editing = None
            self._close_editor()
            return
        self.wanderer.action_dashboard()
