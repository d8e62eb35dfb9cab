"""The circuit-breaker panel: one row per ``service:host``: state, failures, next probe."""

from __future__ import annotations

from collections.abc import Mapping

from wanderer_console.console_api import BreakerView
from wanderer_console.ui.model import format_ago
from wanderer_console.ui.widgets.colours import STATE_VARIABLE, coloured
from wanderer_console.ui.widgets.synced import Row, SyncedTable

__all__ = ["BreakersTable", "format_in"]

_COLUMNS = ("Service:host", "State", "Fails", "Probe")
_NAME_WIDTH = 18


def format_in(ts: float | None, now: float) -> str:
    """``in 12s`` / ``in 4m`` until ``ts``; ``now`` when due; ``-`` when unknown."""
    if ts is None:
        return "-"
    if ts <= now:
        return "now"
    return f"in {format_ago(now, ts)}"


class BreakersTable(SyncedTable):
    """The snapshot's ``breakers``; states coloured ``$breaker-closed/-half-open/-open``.

    "Probe" is when an open breaker lets the next trial request through (``now`` when due).
    """

    DEFAULT_CSS = """
    BreakersTable {
        height: auto;
        max-height: 10;
    }
    """

    def on_mount(self) -> None:
        """Set up the columns."""
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*_COLUMNS)

    def show(self, breakers: Mapping[str, BreakerView], now: float) -> None:
        """Show ``breakers`` (times relative to ``now``); open ones first."""
        rows: list[Row] = []
        order = {"open": 0, "half_open": 1, "half-open": 1}
        for name, info in sorted(
            breakers.items(), key=lambda item: (order.get(item[1].state, 2), item[0])
        ):
            state = info.state
            label = name if len(name) <= _NAME_WIDTH else name[: _NAME_WIDTH - 1] + "…"
            rows.append(
                (
                    name,
                    (
                        label,
                        coloured(
                            self,
                            state.replace("_", "-"),
                            STATE_VARIABLE.get(state, "breaker-half-open"),
                            bold=True,
                        ),
                        str(info.failures),
                        format_in(info.next_probe_at, now) if state != "closed" else "-",
                    ),
                )
            )
        self.show_rows(rows)
