"""The dashboard: connections, delivery, breakers, cache, counters, throughput and activity.

Delivery faults (the store cannot write, a Discord global pause) are badges under the header;
dead targets are red in the delivery panel, with their reason and what they hold.

The screen owns the poll timer because it owns the widgets the poll feeds (STYLE.md pitfall 3):
once a second it takes one snapshot and renders every panel from it; never per event.
"""

from __future__ import annotations

import time
from typing import Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Header, Input

from wanderer_console.ui.faults import dead_targets, delivery_held
from wanderer_console.ui.model import ConsoleState, retrier_of
from wanderer_console.ui.widgets.activity import ActivityPanel
from wanderer_console.ui.widgets.badges import FaultBadges
from wanderer_console.ui.widgets.breakers import BreakersTable
from wanderer_console.ui.widgets.cache import CachePanel
from wanderer_console.ui.widgets.connections import ConnectionsTable
from wanderer_console.ui.widgets.counters import CountersPanel
from wanderer_console.ui.widgets.delivery import DeadTargetNotes, DeliveryTable
from wanderer_console.ui.widgets.keybar import KeyBar
from wanderer_console.ui.widgets.throughput import ThroughputChart

__all__ = ["DashboardScreen"]

POLL_SECONDS = 1.0
"""How often the dashboard reads a snapshot."""
CHART_MIN_INTERVAL = 0.5
"""The chart is rebuilt at most twice a second (a plotext build costs 10-15 ms)."""


def _panel(*widgets: Any, title: str, panel_id: str) -> Vertical:
    box = Vertical(*widgets, id=panel_id, classes="panel")
    box.border_title = title
    return box


class DashboardScreen(Screen[None]):
    """The default screen: what the engine is doing right now."""

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (source, clock, history, activity)."""
        self._chart_drawn_at = float("-inf")
        self._last: dict[str, Any] | None = None

    def compose(self) -> ComposeResult:
        """Header, fault badges, the panels in a grid, footer."""
        yield Header()
        yield FaultBadges(id="faults")
        with Grid(id="dashboard"):
            yield _panel(ConnectionsTable(id="conns"), title="Connections", panel_id="conns-panel")
            yield _panel(
                DeliveryTable(id="delivery"),
                DeadTargetNotes(id="dead-targets"),
                title="Delivery",
                panel_id="delivery-panel",
            )
            with Vertical(id="side"):
                yield _panel(
                    BreakersTable(id="breakers"),
                    title="Circuit breakers",
                    panel_id="breakers-panel",
                )
                yield _panel(CachePanel(id="cache"), title="Cache", panel_id="cache-panel")
            yield _panel(CountersPanel(id="counters"), title="Counters", panel_id="counters-panel")
            yield _panel(ThroughputChart(id="chart"), title="Throughput", panel_id="chart-panel")
            yield _panel(
                Input(placeholder="filter…", id="activity-filter", compact=True),
                ActivityPanel(id="activity"),
                title="Recent activity",
                panel_id="activity-panel",
            )
        yield KeyBar()

    def on_mount(self) -> None:
        """Render once at once, then every second; re-render at once when the theme changes."""
        self.poll()
        self.set_interval(POLL_SECONDS, self.poll)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, _theme: object) -> None:
        # Table cells carry colours resolved at render time; redraw them with the new theme.
        if self._last is not None:
            self._chart_drawn_at = float("-inf")
            self.render_snapshot(self._last, self.state.clock.wall())

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter the activity log as the operator types."""
        if event.input.id == "activity-filter":
            event.stop()
            self.query_one(ActivityPanel).set_filter(event.value)

    def poll(self) -> None:
        """Take one snapshot and render every panel from it."""
        state = self.state
        now = state.clock.wall()
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
        self._last = snapshot
        self.state.latest = snapshot
        delivery = snapshot.get("delivery") or {}
        paused = bool(delivery.get("paused"))
        held = delivery_held(delivery, now)
        # Only what changes rarely: a new header title costs the whole screen a new layout,
        # so the queue depth (which changes all the time) is in the counters panel instead.
        sub_title = (
            f"v{snapshot.get('version', '?')} · up {_uptime(snapshot.get('uptime'))} · "
            f"delivery {'PAUSED' if paused else 'HELD' if held else 'running'}"
        )
        if sub_title != self.sub_title:
            self.sub_title = sub_title
        self.query_one(FaultBadges).show(delivery, now)
        self.query_one(ConnectionsTable).show(snapshot.get("connections") or [], now)
        self._render_delivery(delivery, paused)
        breakers = snapshot.get("breakers") or {}
        self.query_one(BreakersTable).show(breakers, now)
        breakers_panel = self.query_one("#breakers-panel")
        open_count = sum(1 for b in breakers.values() if _breaker_state(b) != "closed")
        breakers_panel.border_subtitle = f"{open_count} not closed" if open_count else ""
        breakers_panel.set_class(bool(open_count), "-tripped")
        cache = snapshot.get("cache")
        cache_panel = self.query_one("#cache-panel")
        cache_panel.display = isinstance(cache, dict) and bool(cache)
        if isinstance(cache, dict) and cache:
            self.query_one(CachePanel).show(cache)
        self.query_one(CountersPanel).show(snapshot)
        self.query_one(ActivityPanel).show(self.state.activity)
        tick = time.monotonic()
        if tick - self._chart_drawn_at >= CHART_MIN_INTERVAL:
            self._chart_drawn_at = tick
            self.query_one(ThroughputChart).show(list(self.state.history.samples), now)

    def _render_delivery(self, delivery: dict[str, Any], paused: bool) -> None:
        self.query_one(DeliveryTable).show(delivery.get("targets") or {})
        dead = dead_targets(delivery)
        self.query_one(DeadTargetNotes).show(dead)
        notes = ["PAUSED"] if paused else []
        if dead:
            can_retry = retrier_of(self.state.source) is not None
            notes.append(
                f"{len(dead)} dead" + (" · ctrl+p: Retry dead target" if can_retry else "")
            )
        panel = self.query_one("#delivery-panel")
        panel.border_subtitle = " · ".join(notes)
        panel.set_class(paused, "-paused")
        panel.set_class(bool(dead), "-dead")


def _uptime(value: Any) -> str:
    """Uptime to the minute (the header changes at most once a minute)."""
    if not isinstance(value, int | float):
        return "-"
    hours, minutes = divmod(int(value) // 60, 60)
    return f"{hours}h{minutes:02d}m"


def _breaker_state(info: Any) -> str:
    return str(info.get("state") if isinstance(info, dict) else info)
