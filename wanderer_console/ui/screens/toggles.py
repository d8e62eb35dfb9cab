"""Notification switches, global and per map; a flip is applied and saved by the engine."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from wanderer_console.ui.flags import FLAG_NAMES, FlagRef, flag_value, scope_label, scopes
from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.colours import coloured
from wanderer_console.ui.widgets.keybar import KeyBar
from wanderer_console.ui.widgets.synced import MIN_ROOM, clip

__all__ = ["TogglesScreen", "toggles_hint"]


def toggles_hint(state: ConsoleState) -> str:
    """What the screen says about the flags and where a flip goes."""
    config = state.config
    where = None if config is None else config.path
    saved = (
        f"Changes apply at once and are saved to {where}."
        if where
        else "Changes apply at once (no config file: not saved)."
    )
    # The keys are said here: on an 80-column terminal the key bar is cut before them.
    return (
        "Space or Enter flips the flag under the cursor. Global and per-map flags are ANDed: a"
        f" map cannot turn on what global turns off. {saved}"
    )


class TogglesScreen(OnWanderer, Screen[None]):
    """A table of scopes (global, then each map) by flag; Enter or Space flips a cell.

    The cells show the flags of the latest snapshot, so a flip made elsewhere (another console, a
    hot reload) shows up with the next frame.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "flip", "Flip", id="toggles.flip"),
        Binding("escape", "app.dashboard", "Back", id="toggles.back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (the flags are read from its latest snapshot)."""
        self._shown: dict[FlagRef, bool] = {}
        self._labels_shown: list[str] = []
        self._hint = ""

    def compose(self) -> ComposeResult:
        """Header, hint, flags table, footer."""
        yield Header()
        self._hint = toggles_hint(self.state)
        yield Static(self._hint, id="toggles-hint")
        yield DataTable(id="flags", cursor_type="cell", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        """Fill the table; start on the first flag of the global row."""
        table = self.query_one("#flags", DataTable)
        table.add_column("Scope", key="scope")
        for flag in FLAG_NAMES:
            table.add_column(flag, key=flag)
        self._fill(table)
        table.move_cursor(row=0, column=1)
        table.focus()

    def on_screen_resume(self) -> None:
        """Shown again (the screen is kept between visits): the flags may have changed."""
        if self.is_mounted:
            self.refresh_flags()

    def on_resize(self) -> None:
        """Fit the scope names to the new width."""
        self.refresh_flags()

    def _labels(self) -> list[str]:
        """Each scope's name, cut with ``…`` where it would push flags off the screen.

        A map's display name is free text: at full length a long one left only the first flag
        column on an 80-column terminal. The table spans the screen less its margins.
        """
        table = self.query_one("#flags", DataTable)
        padding = 2 * table.cell_padding
        flags = sum(len(flag) + padding for flag in FLAG_NAMES)
        width = self.size.width or self.app.size.width
        room = max(MIN_ROOM, width - 4 - flags - padding - 2)  # margins, scrollbar
        settings = self.state.settings
        return [clip(scope_label(settings, tenant), room) for tenant in scopes(settings)]

    def _fill(self, table: DataTable[Any]) -> None:
        settings = self.state.settings
        self._labels_shown = self._labels()
        for tenant, label in zip(scopes(settings), self._labels_shown, strict=True):
            table.add_row(
                Text(label, style="bold"),
                *(self._cell(FlagRef(tenant, f)) for f in FLAG_NAMES),
                key=tenant or "",
            )

    def _value(self, ref: FlagRef) -> bool:
        return flag_value(self.state.settings, ref)

    def _cell(self, ref: FlagRef) -> Any:
        on = self._shown[ref] = self._value(ref)
        return (
            coloured(self, "on", "health-ok", bold=True)
            if on
            else coloured(self, "off", "health-down", bold=True)
        )

    def refresh_flags(self) -> None:
        """Redraw the cells whose flag changed in the latest snapshot (rebuild when maps came or
        went); called for every frame, so it does nothing when nothing changed."""
        if not self.is_mounted:
            return
        hint = toggles_hint(self.state)
        if hint != self._hint:
            self._hint = hint
            self.query_one("#toggles-hint", Static).update(hint)
        table = self.query_one("#flags", DataTable)
        wanted = scopes(self.state.settings)
        shown = [row.value for row in table.rows]
        keys_changed = shown != [tenant or "" for tenant in wanted]  # maps added or removed
        if keys_changed or self._labels() != self._labels_shown:  # or renamed, or resized
            cursor = table.cursor_coordinate
            table.clear()
            self._fill(table)
            table.move_cursor(row=min(cursor.row, table.row_count - 1), column=cursor.column)
            return
        for tenant in wanted:
            for flag in FLAG_NAMES:
                ref = FlagRef(tenant, flag)
                if self._shown.get(ref) != self._value(ref):  # redraw only what changed
                    table.update_cell(tenant or "", flag, self._cell(ref))

    def _ref_at(self, row: int, column: int) -> FlagRef | None:
        tenants = scopes(self.state.settings)
        if column < 1 or row >= len(tenants):
            return None
        return FlagRef(tenants[row], FLAG_NAMES[column - 1])

    def on_data_table_cell_selected(self, event: DataTable.CellSelected) -> None:
        """Enter (or a click) on a flag cell flips it."""
        event.stop()
        ref = self._ref_at(event.coordinate.row, event.coordinate.column)
        if ref is not None:
            self.wanderer.flip_flag(ref)

    def action_flip(self) -> None:
        """Flip the flag under the cursor."""
        coordinate = self.query_one("#flags", DataTable).cursor_coordinate
        ref = self._ref_at(coordinate.row, coordinate.column)
        if ref is not None:
            self.wanderer.flip_flag(ref)
