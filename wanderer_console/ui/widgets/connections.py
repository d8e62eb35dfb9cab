"""The connections panel: one row per source with its state, quality and rate coloured by health.

The columns fit the panel: a narrow one (an 80-column terminal) keeps the name, state, quality,
last event and last error; the last error always gets the room that is left, ending in ``…`` only
when it does not fit (Enter on the row shows it whole).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.text import Text
from textual import events

from wanderer_console.console_api import ConnectionView
from wanderer_console.ui.model import format_ago
from wanderer_console.ui.widgets.colours import STATE_VARIABLE, coloured
from wanderer_console.ui.widgets.synced import FittedTable, NamedRow, cell_width, clip

__all__ = ["ConnectionsTable"]

_MIN_ERROR = 12

QUALITY_OK = 80
"""A quality score at or above this is healthy (below :data:`QUALITY_DEGRADED` is down)."""
QUALITY_DEGRADED = 50
"""Below this the quality is shown in the ``down`` colour."""


class ConnectionsTable(FittedTable):
    """Every map stream and killstream socket, as the snapshot's ``connections`` list has them."""

    DEFAULT_CSS = """
    ConnectionsTable {
        height: auto;
        max-height: 12;
    }
    """

    COLUMNS = (
        "Name",
        "State",
        "Since",
        "Last ev",
        "RTT",
        "Reconn",
        "Ev/min",
        "Events",
        "Quality",
        "Last error",
    )
    NARROW = ("Name", "State", "Quality", "Last ev", "Last error")
    NARROW_BELOW = 100

    _connections: tuple[ConnectionView, ...] = ()
    _now = 0.0

    def on_resize(self, event: events.Resize) -> None:
        """Fit the columns to the new width and give the last error the room left."""
        self._fit(event.size.width)
        self.show(self._connections, self._now)

    def _quality(self, value: float) -> Text:
        if value >= QUALITY_OK:
            variable = "health-ok"
        elif value >= QUALITY_DEGRADED:
            variable = "health-degraded"
        else:
            variable = "health-down"
        return coloured(self, f"{value:.0f}", variable, bold=True)

    def _cells(self, conn: ConnectionView, now: float) -> dict[str, object]:
        state = conn.state
        rtt = conn.heartbeat_rtt_ms
        return {
            "Name": conn.name,
            "State": coloured(self, state, STATE_VARIABLE.get(state, "health-degraded"), bold=True),
            "Since": format_ago(conn.since, now),
            "Last ev": format_ago(conn.last_event_at, now),
            "RTT": "-" if rtt is None else f"{rtt:.0f} ms",
            "Reconn": str(conn.reconnects),
            "Ev/min": _rate(conn.events_per_minute),
            "Events": str(conn.events),
            "Quality": self._quality(conn.quality),
        }

    def show(self, connections: Iterable[ConnectionView], now: float) -> None:
        """Show ``connections`` (ages relative to ``now``)."""
        self._connections = tuple(connections)
        self._now = now
        columns = self._column_set or self.COLUMNS
        cells = [self._cells(conn, now) for conn in self._connections]
        room = self._error_room(columns, cells)
        rows: list[NamedRow] = []
        for conn, row in zip(self._connections, cells, strict=True):
            row["Last error"] = Text(clip(conn.last_error or "", room), no_wrap=True)
            rows.append((conn.name, row))
        self.show_named(rows)

    def _error_room(self, columns: Sequence[str], cells: Sequence[dict[str, object]]) -> int:
        """How many characters the last error may take without the table scrolling sideways."""
        width = self.size.width or 120
        used = 0
        for column in columns:
            if column == "Last error":
                continue
            values = [cell_width(row[column]) for row in cells]
            used += max([len(column), *values]) + 2 * self.cell_padding
        scrollbar = 2 if len(cells) > max(1, self.size.height - 1) else 0
        return max(_MIN_ERROR, width - used - 2 * self.cell_padding - scrollbar)


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or float(value).is_integer() else f"{value:.1f}"
