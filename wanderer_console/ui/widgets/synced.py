"""A DataTable that redraws only what changed between two polls.

Clearing and refilling a table every second throws away its line cache and asks for a new
layout (the tables size to their rows), which the next frame pays for; with the engine busy that
frame could delay a key press by a hundred milliseconds or more. :meth:`SyncedTable.show_rows`
leaves an unchanged table alone, updates just the cells that changed when the rows are the same,
and rebuilds only when rows come or go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from textual.widgets import DataTable

__all__ = ["Row", "SyncedTable"]

Row = tuple[str, Sequence[Any]]
"""``(row key, cells)``; cells in column order."""


class SyncedTable(DataTable[Any]):
    """A table fed whole snapshots of rows, redrawn by difference."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._shown: list[tuple[str, tuple[Any, ...]]] = []

    def show_rows(self, rows: Iterable[Row]) -> bool:
        """Make the table show ``rows``; returns True when anything was redrawn."""
        wanted = [(key, tuple(cells)) for key, cells in rows]
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
