"""A DataTable that redraws only what changed between two polls.

Clearing and refilling a table every second throws away its line cache and asks for a new
layout (the tables size to their rows), which the next frame pays for; with the engine busy that
frame could delay a key press by a hundred milliseconds or more. :meth:`SyncedTable.show_rows`
leaves an unchanged table alone, updates just the cells that changed when the rows are the same,
and rebuilds only when rows come or go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.cells import cell_len, chop_cells
from rich.text import Text
from textual import events
from textual.widgets import DataTable

__all__ = [
    "MIN_ROOM",
    "FittedTable",
    "NamedRow",
    "Row",
    "SelectOnClick",
    "SyncedTable",
    "cell_width",
    "clip",
]

MIN_ROOM = 12
"""The fewest characters :meth:`FittedTable.room_for` leaves a column that gives way."""

Row = tuple[str, Sequence[Any]]
"""``(row key, cells)``; cells in column order."""
NamedRow = tuple[str, Mapping[str, Any]]
"""``(row key, cells by column name)``."""


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` terminal cells, ending in ``…`` when cut: a CJK character or
    an emoji takes two cells, and a name cut by its count of characters was up to twice as
    wide as its room (the columns after it pushed off the screen)."""
    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    return chop_cells(text, width - 1)[0] + "…"


def _as_typed(cell: Any) -> Any:
    """A str cell as plain text: a table reads a str as markup, and a name holding ``[/]``
    raised ``MarkupError`` while the table was drawn (ending the console)."""
    return Text(cell, end="") if isinstance(cell, str) else cell


def cell_width(cell: object) -> int:
    """How wide a cell's content is (plain string or Rich text)."""
    return cell.cell_len if isinstance(cell, Text) else cell_len(str(cell))


class SelectOnClick(DataTable[Any]):
    """A row table where one click on a row selects it (as Enter does), not only a second one.

    Textual's table selects on a click of the row the cursor is already on; the dashboard's rows
    open a detail view, and one click is what an operator tries.
    """

    async def _on_click(self, event: events.Click) -> None:
        before = self.cursor_coordinate
        meta = event.style.meta
        await super()._on_click(event)
        event.prevent_default()  # the table's own handler ran just now
        row = meta.get("row")
        clicked = self.cursor_type == "row" and isinstance(row, int) and row >= 0
        if clicked and self.cursor_coordinate.row == row and before.row != row:
            self.action_select_cursor()


class SyncedTable(SelectOnClick):
    """A table fed whole snapshots of rows, redrawn by difference."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: list[tuple[str, tuple[Any, ...]]] = []

    def show_rows(self, rows: Iterable[Row]) -> bool:
        """Make the table show ``rows``; returns True when anything was redrawn."""
        wanted = [(key, tuple(_as_typed(cell) for cell in cells)) for key, cells in rows]
        if wanted == self._shown:
            return False
        if [key for key, _ in wanted] == [key for key, _ in self._shown]:
            columns = list(self.columns)
            for (key, cells), (_, before) in zip(wanted, self._shown, strict=True):
                for column, value, old in zip(columns, cells, before, strict=True):
                    if value != old:
                        self.update_cell(key, column, value, update_width=True)
        else:
            self.clear()
            for key, cells in wanted:
                self.add_row(*cells, key=key)
        self._shown = wanted
        return True


class FittedTable(SyncedTable):
    """A synced table whose columns fit its width: below :attr:`NARROW_BELOW` columns it shows
    :attr:`NARROW` (the columns that matter most), else :attr:`COLUMNS`. Rows are given by column
    name, so a resize redraws them in the other set."""

    COLUMNS: tuple[str, ...] = ()
    NARROW: tuple[str, ...] = ()
    NARROW_BELOW = 0

    _named: tuple[NamedRow, ...] = ()
    _column_set: tuple[str, ...] = ()

    def columns_for(self, width: int) -> tuple[str, ...]:
        """The columns shown at ``width`` (all of them before the table has a size)."""
        narrow = self.NARROW and 0 < width < self.NARROW_BELOW
        return self.NARROW if narrow else self.COLUMNS

    def on_mount(self) -> None:
        """Row cursor, stripes, the columns for the current width."""
        self.cursor_type = "row"
        self.zebra_stripes = True
        self._fit(self.size.width)

    def _fit(self, width: int) -> bool:
        wanted = self.columns_for(width)
        if wanted == self._column_set:
            return False
        self._column_set = wanted
        self.clear(columns=True)
        self._shown = []
        self.add_columns(*wanted)
        return True

    def on_resize(self, event: events.Resize) -> None:
        """Change the column set when the width crosses :attr:`NARROW_BELOW`."""
        if self._fit(event.size.width):
            self.show_named(self._named)

    def room_for(
        self,
        column: str,
        cells: Sequence[Mapping[str, object]],
        columns: Sequence[str],
        *,
        reserve: int = 0,
    ) -> int:
        """How many characters ``column`` may take for ``columns`` (each other one as wide as its
        widest cell in ``cells``) and ``reserve`` more to fit the width without scrolling
        sideways; at least :data:`MIN_ROOM`."""
        width = self.size.width or 120
        used = reserve
        for other in columns:
            if other == column:
                continue
            values = [cell_width(row[other]) for row in cells]
            used += max([len(other), *values]) + 2 * self.cell_padding
        scrollbar = 2 if len(cells) > max(1, self.size.height - 1) else 0
        return max(MIN_ROOM, width - used - 2 * self.cell_padding - scrollbar)

    def show_named(self, rows: Iterable[NamedRow]) -> bool:
        """Show ``rows`` in the current column set."""
        self._named = tuple(rows)
        columns = self._column_set or self.COLUMNS
        return self.show_rows([(key, [cells[c] for c in columns]) for key, cells in self._named])
