"""The connections panel: one row per source with its state, quality and rate coloured by health."""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text

from wanderer_console.console_api import ConnectionView
from wanderer_console.ui.model import format_ago
from wanderer_console.ui.widgets.colours import STATE_VARIABLE, coloured
from wanderer_console.ui.widgets.synced import Row, SyncedTable

__all__ = ["ConnectionsTable"]

_COLUMNS = (
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

QUALITY_OK = 80
"""A quality score at or above this is healthy (below :data:`QUALITY_DEGRADED` is down)."""
QUALITY_DEGRADED = 50
"""Below this the quality is shown in the ``down`` colour."""


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class ConnectionsTable(SyncedTable):
    """Every map stream and killstream socket, as the snapshot's ``connections`` list has them."""

    DEFAULT_CSS = """
    ConnectionsTable {
        height: auto;
        max-height: 12;
    }
    """

    def on_mount(self) -> None:
        """Set up the columns."""
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*_COLUMNS)

    def _quality(self, value: float) -> Text:
        if value >= QUALITY_OK:
            variable = "health-ok"
        elif value >= QUALITY_DEGRADED:
            variable = "health-degraded"
        else:
            variable = "health-down"
        return coloured(self, f"{value:.0f}", variable, bold=True)

    def show(self, connections: Iterable[ConnectionView], now: float) -> None:
        """Show ``connections`` (ages relative to ``now``)."""
        rows: list[Row] = []
        for conn in connections:
            state = conn.state
            rtt = conn.heartbeat_rtt_ms
            rows.append(
                (
                    conn.name,
                    (
                        conn.name,
                        coloured(
                            self, state, STATE_VARIABLE.get(state, "health-degraded"), bold=True
                        ),
                        format_ago(conn.since, now),
                        format_ago(conn.last_event_at, now),
                        "-" if rtt is None else f"{rtt:.0f} ms",
                        str(conn.reconnects),
                        _rate(conn.events_per_minute),
                        str(conn.events),
                        self._quality(conn.quality),
                        Text(_clip(conn.last_error or "", 22), no_wrap=True),
                    ),
                )
            )
        self.show_rows(rows)


def _rate(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or float(value).is_integer() else f"{value:.1f}"
