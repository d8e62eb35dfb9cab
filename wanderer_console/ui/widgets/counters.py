"""The counters panel: events per source, notifications per type, duplicates and errors.

Breakers and the cache have their own panels (:mod:`.breakers`, :mod:`.cache`).
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from wanderer_console.console_api import CountersView
from wanderer_console.ui.model import total
from wanderer_console.ui.widgets.colours import coloured

__all__ = ["CountersPanel"]


def _fmt(value: float) -> str:
    """Thousands grouped (``12,345``), as the events browser and the quit question write them."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return f"{int(value):,}"


class CountersPanel(Static):
    """Totals from the snapshot's ``counters`` and its queue depth."""

    DEFAULT_CSS = """
    CountersPanel {
        height: 1fr;
        overflow-y: auto;
    }
    """

    _shown: tuple[CountersView, int] | None = None
    """What the panel shows now (the same figures are not drawn again)."""

    def _section(self, table: Table, title: str, values: Mapping[str, int]) -> None:
        table.add_row(Text(title, style="bold"), _fmt(total(values)))
        for label, value in sorted(values.items()):
            table.add_row(Text(f"  {label}"), _fmt(value))  # as named, not read as markup

    def _notifications(self, table: Table, counters: CountersView) -> None:
        queued = counters.notifications_queued
        delivered = counters.notifications_delivered
        table.add_row(
            Text("Notifications delivered/queued", style="bold"),
            f"{_fmt(total(delivered))}/{_fmt(total(queued))}",
        )
        for kind in sorted(set(queued) | set(delivered)):
            table.add_row(
                Text(f"  {kind}"), f"{_fmt(delivered.get(kind, 0))}/{_fmt(queued.get(kind, 0))}"
            )

    def show(self, counters: CountersView, queue_depth: int, *, force: bool = False) -> None:
        """Render ``counters`` and the queue depth; nothing is drawn when neither changed
        (``force``: draw anyway, e.g. in a new theme's colours)."""
        if not force and self._shown == (counters, queue_depth):
            return
        self._shown = (counters, queue_depth)
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(ratio=1)
        table.add_column(justify="right")
        variable = "health-down" if counters.errors else "health-ok"
        table.add_row(Text("Errors", style="bold"), coloured(self, _fmt(counters.errors), variable))
        failures = total(counters.delivery_failures)
        variable = "health-down" if failures else "health-ok"
        table.add_row(
            Text("Delivery failures", style="bold"), coloured(self, _fmt(failures), variable)
        )
        table.add_row(Text("Queue depth", style="bold"), _fmt(queue_depth))
        self._section(table, "Duplicates suppressed", counters.duplicates_suppressed)
        self._section(table, "Events received", counters.events_received)
        self._notifications(table, counters)
        self.update(table)
