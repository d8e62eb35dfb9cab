"""The dashboard: connections, delivery, counters, throughput and recent activity.

The screen owns the poll timer because it owns the widgets the poll feeds (STYLE.md pitfall 3):
once a second it takes one snapshot and renders every panel from it; never per event.
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header

from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.widgets.activity import ActivityPanel
from wanderer_console.ui.widgets.connections import ConnectionsTable
from wanderer_console.ui.widgets.counters import CountersPanel
from wanderer_console.ui.widgets.delivery import DeliveryTable
from wanderer_console.ui.widgets.throughput import ThroughputChart

__all__ = ["DashboardScreen"]

POLL_SECONDS = 1.0
"""How often the dashboard reads a snapshot."""
CHART_MIN_INTERVAL = 0.5
"""The chart is rebuilt at most twice a second (a plotext build costs 10-15 ms)."""


def _panel(widget: Any, title: str, panel_id: str) -> Vertical:
    box = Vertical(widget, id=panel_id, classes="panel")
    box.border_title = title
    return box


class DashboardScreen(Screen[None]):
    """The default screen: what the engine is doing right now."""

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (source, clock, history, activity)."""
        self._chart_drawn_at = float("-inf")

    def compose(self) -> ComposeResult:
        """Header, the five panels in a grid, footer."""
        yield Header()
        with Grid(id="dashboard"):
            yield _panel(ConnectionsTable(id="conns"), "Connections", "conns-panel")
            yield _panel(DeliveryTable(id="delivery"), "Delivery", "delivery-panel")
            yield _panel(CountersPanel(id="counters"), "Counters", "counters-panel")
            yield _panel(ThroughputChart(id="chart"), "Throughput", "chart-panel")
            yield _panel(ActivityPanel(id="activity"), "Recent activity", "activity-panel")
        yield Footer()

    def on_mount(self) -> None:
        """Render once at once, then every second."""
        self.poll()
        self.set_interval(POLL_SECONDS, self.poll)

    def poll(self) -> None:
        """Take one snapshot and render every panel from it."""
        state = self.state
        now = state.clock.now()
        try:
            snapshot = state.source.snapshot()
        except Exception as exc:  # the console must outlive a failing engine view
            state.activity.add(now, f"snapshot failed: {exc}")
            self.query_one(ActivityPanel).show(state.activity)
            return
        if state.log_buffer is not None:
            for at, text in state.log_buffer.drain():
                state.activity.add(at, text)
        state.history.observe(snapshot, now)
        state.activity.observe(snapshot, now)
        self.render_snapshot(snapshot, now)

    def render_snapshot(self, snapshot: dict[str, Any], now: float) -> None:
        """Push ``snapshot`` into the panels."""
        delivery = snapshot.get("delivery") or {}
        paused = bool(delivery.get("paused"))
        self.sub_title = (
            f"v{snapshot.get('version', '?')} · up {_uptime(snapshot.get('uptime'))} · "
            f"queue {snapshot.get('queue_depth', 0)} · "
            f"delivery {'PAUSED' if paused else 'running'}"
        )
        self.query_one(ConnectionsTable).show(snapshot.get("connections") or [], now)
        self.query_one(DeliveryTable).show(delivery.get("targets") or {})
        delivery_panel = self.query_one("#delivery-panel")
        delivery_panel.border_subtitle = "PAUSED" if paused else ""
        delivery_panel.set_class(paused, "-paused")
        self.query_one(CountersPanel).show(snapshot)
        self.query_one(ActivityPanel).show(self.state.activity)
        tick = time.monotonic()
        if tick - self._chart_drawn_at >= CHART_MIN_INTERVAL:
            self._chart_drawn_at = tick
            self.query_one(ThroughputChart).show(list(self.state.history.samples), now)


def _uptime(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    seconds = int(value)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"
