"""The connections panel: one row per source with its state, quality and rate coloured by health.

The columns fit the panel: a narrow one (an 80-column terminal) keeps the name, state, quality,
last event and last error; the last error always gets the room that is left, ending in ``…`` only
when it does not fit (Enter on the row shows it whole). A name too long for the panel (a map key
may have 63 characters) is cut the same way, so the state beside it stays on screen.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual import events

from wanderer_console.console_api import ConnectionView
from wanderer_console.ui.model import format_ago
from wanderer_console.ui.widgets.colours import STATE_VARIABLE, coloured
from wanderer_console.ui.widgets.synced import MIN_ROOM, FittedTable, NamedRow, clip

__all__ = ["ConnectionsTable"]

NAME_ROOM = 24
"""The characters a name keeps, when the panel has them, before the last error gets any: the
killstream names (``killstream:systems``, ``killstream:characters``) differ only at the end."""
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
        # The engine keeps the last heartbeat's RTT across a lost socket: shown only while live.
        rtt = conn.heartbeat_rtt_ms if state == "connected" else None
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
        # A long name gives way to the state and figures beside it (down to what leaves the last
        # error its minimum, but not below NAME_ROOM while the panel has that); the last error
        # takes what is left.
        fixed = [column for column in columns if column != "Last error"]
        reserve = MIN_ROOM + 2 * self.cell_padding if len(fixed) < len(columns) else 0
        room = max(
            self.room_for("Name", cells, fixed, reserve=reserve),
            min(NAME_ROOM, self.room_for("Name", cells, fixed)),
        )
        for row in cells:
            row["Name"] = clip(str(row["Name"]), room)
        room = self.room_for("Last error", cells, columns)
        rows: list[NamedRow] = []
        for conn, row in zip(self._connections, cells, strict=True):
            row["Last error"] = Text(clip(conn.last_error or "", room), no_wrap=True)
            rows.append((conn.name, row))
        self.show_named(rows)


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or float(value).is_integer() else f"{value:.1f}"
