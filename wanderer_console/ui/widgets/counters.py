"""The counters panel: events per source, notifications per type, duplicates and errors.

Breakers and the cache have their own panels (:mod:`.breakers`, :mod:`.cache`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from wanderer_console.ui.model import total
from wanderer_console.ui.widgets.colours import coloured

__all__ = ["CountersPanel"]


def _fmt(value: Any) -> str:
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}"
    if isinstance(value, int | float):
        return str(int(value))
    return str(value)


class CountersPanel(Static):
    """Totals from the snapshot's ``counters`` (``Runtime.summary()``)."""

    DEFAULT_CSS = """
    CountersPanel {
        height: 1fr;
        overflow-y: auto;
    }
    """

    def _section(self, table: Table, title: str, values: Any) -> None:
        if isinstance(values, Mapping):
            table.add_row(Text(title, style="bold"), _fmt(total(values)))
            for label, value in sorted(values.items()):
                table.add_row(f"  {label}", _fmt(value))
        elif values is not None:
            table.add_row(Text(title, style="bold"), _fmt(values))

    def _notifications(self, table: Table, counters: Mapping[str, Any]) -> None:
        queued = counters.get("notifications_queued")
        delivered = counters.get("notifications_delivered")
        if not isinstance(queued, Mapping) or not isinstance(delivered, Mapping):
            self._section(table, "Notifications queued", queued)
            self._section(table, "Notifications delivered", delivered)
            return
        table.add_row(
            Text("Notifications delivered/queued", style="bold"),
            f"{_fmt(total(delivered))}/{_fmt(total(queued))}",
        )
        for kind in sorted(set(queued) | set(delivered)):
            table.add_row(
                f"  {kind}", f"{_fmt(delivered.get(kind, 0))}/{_fmt(queued.get(kind, 0))}"
            )

    def show(self, snapshot: Mapping[str, Any]) -> None:
        """Render the counters of ``snapshot``."""
        counters = snapshot.get("counters") or {}
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(ratio=1)
        table.add_column(justify="right")
        errors = counters.get("errors")
        if errors is not None:
            variable = "health-down" if total(errors) else "health-ok"
            table.add_row(
                Text("Errors", style="bold"), coloured(self, _fmt(total(errors)), variable)
            )
        failures = counters.get("delivery_failures")
        if failures is not None:
            variable = "health-down" if total(failures) else "health-ok"
            table.add_row(
                Text("Delivery failures", style="bold"),
                coloured(self, _fmt(total(failures)), variable),
            )
        table.add_row(Text("Queue depth", style="bold"), _fmt(snapshot.get("queue_depth", 0)))
        self._section(table, "Duplicates suppressed", counters.get("duplicates_suppressed"))
        self._section(table, "Events received", counters.get("events_received"))
        self._notifications(table, counters)
        self.update(table)
