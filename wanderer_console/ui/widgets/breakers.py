"""The circuit-breaker panel: one row per ``service:host``: state, failures, next probe."""

from __future__ import annotations

from collections.abc import Mapping

from wanderer_console.console_api import BreakerView
from wanderer_console.ui.model import format_ago
from wanderer_console.ui.widgets.colours import STATE_VARIABLE, coloured
from wanderer_console.ui.widgets.synced import FittedTable, NamedRow

__all__ = ["BreakersTable", "format_in"]


def format_in(ts: float | None, now: float) -> str:
    """``in 12s`` / ``in 4m`` until ``ts``; ``now`` when due; ``-`` when unknown."""
    if ts is None:
        return "-"
    if ts <= now:
        return "now"
    return f"in {format_ago(now, ts)}"


class BreakersTable(FittedTable):
    """The snapshot's ``breakers``; states coloured ``$breaker-closed/-half-open/-open``.

    "Probe" is when an open breaker lets the next trial request through (``now`` when due). Hosts
    are shown whole (the table scrolls sideways if one does not fit); Enter on a row explains it.
    """

    DEFAULT_CSS = """
    BreakersTable {
        height: auto;
        max-height: 10;
    }
    """

    COLUMNS = ("Service:host", "State", "Fails", "Probe")
    NARROW = ("Service:host", "State", "Probe")
    NARROW_BELOW = 50

    def show(self, breakers: Mapping[str, BreakerView], now: float) -> None:
        """Show ``breakers`` (times relative to ``now``); open ones first."""
        rows: list[NamedRow] = []
        order = {"open": 0, "half_open": 1, "half-open": 1}
        for name, info in sorted(
            breakers.items(), key=lambda item: (order.get(item[1].state, 2), item[0])
        ):
            state = info.state
            cells = {
                "Service:host": name,
                "State": coloured(
                    self,
                    state.replace("_", "-"),
                    STATE_VARIABLE.get(state, "breaker-half-open"),
                    bold=True,
                ),
                "Fails": str(info.failures),
                "Probe": format_in(info.next_probe_at, now) if state != "closed" else "-",
            }
            rows.append((name, cells))
        self.show_named(rows)
