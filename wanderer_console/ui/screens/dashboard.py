"""The dashboard: connections, delivery, breakers, cache, counters, throughput and activity.

Delivery faults (the store cannot write, a Discord global pause) are badges under the header;
dead targets are red in the delivery panel, with their reason and what they hold. While the link
to an attached engine is down, a badge says so and the panels are dimmed: they show the last
snapshot the engine sent.

Every row (a connection, a target, a breaker, an activity line) and every badge opens a detail
view (Enter or a click): the full error, where, since when, how often, and the runbook's advice.

Below 100 columns or 30 rows the panels are grouped in tabs (``1``-``4`` or a click on a tab) and
stacked in each; above, they share a grid. Either way every panel scrolls.

The screen follows the backend's frames (:meth:`ConsoleBackend.frames
<wanderer_console.console_api.ConsoleBackend.frames>`, every ``console.refresh_seconds``) in a
worker, because it owns the widgets they feed (STYLE.md pitfall 3): each frame is taken in by
:meth:`~wanderer_console.ui.model.ConsoleState.accept` and every panel is rendered from its
snapshot; never per event. Panels redraw only what changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Header, Input, Tab, Tabs

from wanderer_console.console_api import EngineSnapshot, Frame
from wanderer_console.ui.details import (
    Detail,
    activity_detail,
    breaker_detail,
    config_detail,
    connection_detail,
    discord_pause_detail,
    store_fault_detail,
    target_detail,
)
from wanderer_console.ui.faults import dead_targets, delivery_held, rejected_config
from wanderer_console.ui.model import ConsoleState, engine_label, format_uptime
from wanderer_console.ui.screens.detail import DetailScreen
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.activity import ActivityPanel
from wanderer_console.ui.widgets.badges import BadgeClicked, FaultBadges
from wanderer_console.ui.widgets.breakers import BreakersTable
from wanderer_console.ui.widgets.cache import CachePanel
from wanderer_console.ui.widgets.connections import ConnectionsTable
from wanderer_console.ui.widgets.counters import CountersPanel
from wanderer_console.ui.widgets.delivery import DeadTargetNotes, DeliveryTable, PauseNote
from wanderer_console.ui.widgets.keybar import KeyBar
from wanderer_console.ui.widgets.throughput import ThroughputChart

__all__ = ["FRAMES_TASK", "TABS", "DashboardScreen", "FilterInput", "dashboard_title"]

FIRST_INTERVAL = 1.0
"""Seconds between frames until the first snapshot says ``console.refresh_seconds``."""
MIN_INTERVAL = 0.1
"""The shortest refresh interval asked of the backend, whatever the settings say."""
RETRY_SECONDS = 1.0
"""After the frames stream failed (a bug, not a lost engine: that comes as link frames), how long
the screen waits before asking for it again."""
CHART_MIN_INTERVAL = 0.5
"""The chart is rebuilt at most twice a second (a plotext build costs 10-15 ms)."""
TINY_BELOW = 24
"""Below this many rows the overview's panels take the rows they need, one under the other, and
scroll (Tab brings the next table into view): shared out, at 40×12 the connections panel kept
its header and no row, and delivery its border alone."""
FRAMES_TASK = "console frames"
"""The name of the task that follows the frames (the UI latency benchmark counts it as UI)."""


TABS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("overview", "1 Overview", ("conns-panel", "delivery-panel", "breakers-panel")),
    ("activity", "2 Activity", ("activity-panel",)),
    ("counters", "3 Counters", ("counters-panel", "cache-panel")),
    ("chart", "4 Throughput", ("chart-panel",)),
)
"""The small-terminal layout's tabs: ``(name, label, panels)``; the label's digit is its key."""


def _panel(*widgets: Widget, title: str, panel_id: str, scroll: bool = False) -> Widget:
    box: Widget = (
        VerticalScroll(*widgets, id=panel_id, classes="panel")
        if scroll
        else Vertical(*widgets, id=panel_id, classes="panel")
    )
    box.border_title = title
    tab = next(name for name, _label, panels in TABS if panel_id in panels)
    box.add_class(f"-tab-{tab}")
    return box


class FilterInput(Input):
    """The activity filter: Escape (or Enter) leaves it for the activity lines, keeping the
    filter; while it has focus every key types into it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "leave", "Leave filter", id="filter.leave"),
    ]

    def action_leave(self) -> None:
        """Hand the focus to the activity lines."""
        self.screen.query_one(ActivityPanel).focus()

    async def action_submit(self) -> None:
        """Enter: the filter is already applied as typed; go to the lines."""
        self.action_leave()


def dashboard_title(state: ConsoleState, snapshot: EngineSnapshot, now: float) -> str:
    """The dashboard's header: delivery's state, then the engine (when known) and its uptime.

    Delivery's state comes first: a narrow terminal (or a long host name or data directory)
    clips the end of the title, and on the small terminal's other tabs the title is all that
    says delivery is PAUSED. A lost engine is said by the badge under it (the other screens'
    titles say it instead). Only what changes rarely: a new header title costs the whole screen a
    new layout, so the queue depth (which changes all the time) is in the counters panel instead.
    """
    delivery = snapshot.delivery
    held = delivery_held(delivery, now)
    word = "PAUSED" if delivery.paused else "HELD" if held else "running"
    if state.identity is not None:
        engine = engine_label(state.identity, snapshot)
    else:
        engine = f"v{snapshot.version or '?'} · up {format_uptime(snapshot.uptime)}"
    parts = [f"delivery {word}"]
    cluster = snapshot.cluster
    if cluster is not None:
        # Several engines share the database: the maps this one works, and how many are alive.
        here = ", ".join(cluster.maps) if cluster.maps else "no map"
        alive = len(cluster.instances)
        parts.append(f"{here} here, {alive} engine{'s' * (alive != 1)} alive")
    return " · ".join([*parts, engine] if engine else parts)


class DashboardScreen(OnWanderer, Screen[None]):
    """The default screen: what the engine is doing right now."""

    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 (Textual's)
    VERTICAL_BREAKPOINTS = [(0, "-tiny"), (TINY_BELOW, "-short"), (30, "-tall")]  # noqa: RUF012

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="dashboard.filter"),
        Binding("x", "dismiss_config", "Dismiss config badge", id="dashboard.dismiss"),
        Binding("1", "tab('overview')", "Overview", show=False, id="dashboard.tab1"),
        Binding("2", "tab('activity')", "Activity", show=False, id="dashboard.tab2"),
        Binding("3", "tab('counters')", "Counters", show=False, id="dashboard.tab3"),
        Binding("4", "tab('chart')", "Throughput", show=False, id="dashboard.tab4"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (backend, clock, history, activity)."""
        self._chart_drawn_at = float("-inf")
        self._last: EngineSnapshot | None = None
        self.interval = FIRST_INTERVAL
        """Seconds between the frames asked of the backend now."""

    def compose(self) -> ComposeResult:
        """Header, fault badges, the panels in a grid, footer."""
        yield Header()
        yield FaultBadges(id="faults")
        tabs = Tabs(*(Tab(label, id=f"tab-{name}") for name, label, _ in TABS), id="dashboard-tabs")
        tabs.can_focus = False  # 1-4 or a click switch tabs; Tab moves between the tables
        yield tabs
        with Container(id="dashboard"):
            yield _panel(ConnectionsTable(id="conns"), title="Connections", panel_id="conns-panel")
            yield _panel(
                DeliveryTable(id="delivery"),
                PauseNote(id="pause-note"),
                DeadTargetNotes(id="dead-targets"),
                title="Delivery",
                panel_id="delivery-panel",
            )
            yield _panel(
                BreakersTable(id="breakers"), title="Circuit breakers", panel_id="breakers-panel"
            )
            yield _panel(
                CountersPanel(id="counters"),
                title="Counters",
                panel_id="counters-panel",
                scroll=True,
            )
            yield _panel(CachePanel(id="cache"), title="Cache", panel_id="cache-panel", scroll=True)
            yield _panel(ThroughputChart(id="chart"), title="Throughput", panel_id="chart-panel")
            yield _panel(
                FilterInput(placeholder="/ filter…", id="activity-filter", compact=True),
                ActivityPanel(id="activity"),
                title="Recent activity",
                panel_id="activity-panel",
            )
        yield KeyBar()

    def on_mount(self) -> None:
        """Follow the backend's frames; re-render at once when the theme changes."""
        self._show_tab("overview")
        self.query_one(ConnectionsTable).focus()
        self.run_worker(self.follow_frames(), name=FRAMES_TASK, group="frames", exclusive=True)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

    # -- layout ----------------------------------------------------------------------------------

    @property
    def tabbed(self) -> bool:
        """The small-terminal layout (tabs) is in use."""
        return self.has_class("-narrow") or self.has_class("-short") or self.has_class("-tiny")

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        """Show the panels of the tab chosen."""
        event.stop()
        if event.tab is not None and event.tab.id is not None:
            self._show_tab(event.tab.id.removeprefix("tab-"))

    def _show_tab(self, name: str) -> None:
        self.current_tab = name
        for tab, _label, panels in TABS:
            for panel_id in panels:
                # query, not query_one: while the app starts or exits (a stop during the start)
                # a panel may not be there, and there is then nothing to show or hide.
                self.query(f"#{panel_id}").set_class(tab != name, "-off-tab")
        self.call_after_refresh(self._keep_focus)

    def on_resize(self) -> None:
        """A terminal resized into (or out of) the tabs may hide the focused panel."""
        self.call_after_refresh(self._keep_focus)

    def _keep_focus(self) -> None:
        """Focus the first panel on screen when the focused one was hidden (its tab left, the
        terminal shrunk to tabs): with the focus nowhere, Enter and the arrows did nothing
        until Tab. Textual may also have handed the focus to a hidden neighbour (the activity
        filter, which then took every key unseen). The filter is never chosen here."""
        if not self.is_current:
            return
        chain = self.focus_chain
        if self.focused is not None and self.focused in chain:
            return
        first = next((w for w in chain if not isinstance(w, Input)), None)
        if first is not None:
            first.focus()
        else:
            self.set_focus(None)

    current_tab = "overview"
    """The tab shown in the small-terminal layout."""

    def action_tab(self, name: str) -> None:
        """Show tab ``name`` (small terminals; in the grid every panel shows anyway)."""
        for tabs in self.query(Tabs):
            tabs.active = f"tab-{name}"
        self._show_tab(name)

    def action_filter(self) -> None:
        """Focus the activity filter (its tab first, on a small terminal)."""
        if self.tabbed:
            self.action_tab("activity")
        self.query_one(FilterInput).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Dismissing is offered while a rejected config change is shown; tabs need tabs."""
        if action == "dismiss_config":
            config = rejected_config(self.state.config, self.state.dismissed_config)
            return config is not None
        if action == "tab":
            return self.tabbed
        return True

    def action_dismiss_config(self) -> None:
        """Hide the rejected-config badge until the engine rejects something else."""
        config = self.state.config
        if config is not None and config.errors:
            self.state.dismissed_config = config.errors
            if self._last is not None:
                self.render_snapshot(self._last, self.state.clock.wall())
            self.refresh_bindings()

    # -- details ---------------------------------------------------------------------------------

    def open_detail(self, build: Callable[[], Detail | None]) -> None:
        """Show a detail view that follows the frames (nothing when ``build`` has nothing)."""
        if build() is not None:
            self.app.push_screen(DetailScreen(build))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter (or a click) on a row: its detail view."""
        event.stop()
        key = event.row_key.value
        if key is None:
            return
        table = event.data_table
        state = self.state
        if isinstance(table, ConnectionsTable):

            def build() -> Detail | None:
                latest = state.latest
                conns = {c.name: c for c in latest.connections} if latest is not None else {}
                conn = conns.get(key)
                return None if conn is None else connection_detail(conn, state.clock.wall())

        elif isinstance(table, DeliveryTable):

            def build() -> Detail | None:
                latest = state.latest
                target = None if latest is None else latest.delivery.targets.get(key)
                return None if target is None else target_detail(key, target, state.clock.wall())

        elif isinstance(table, BreakersTable):

            def build() -> Detail | None:
                latest = state.latest
                breaker = None if latest is None else latest.breakers.get(key)
                if breaker is None:
                    return None
                return breaker_detail(key, breaker, state.clock.wall())

        elif isinstance(table, ActivityPanel):
            line = table.line_at(key)
            if line is None:
                return
            at, text = line

            def build() -> Detail | None:
                return activity_detail(at, text, list(state.activity.entries))

        else:
            return
        self.open_detail(build)

    def on_badge_clicked(self, event: BadgeClicked) -> None:
        """A click on a fault badge: what it is about and what to do."""
        event.stop()
        if event.badge == "alert-badge":
            self.wanderer.action_alerts()
            return
        state = self.state

        def build() -> Detail | None:
            latest = state.latest
            if latest is None:
                return None
            now = state.clock.wall()
            if event.badge == "config-badge":
                return None if latest.config is None else config_detail(latest.config)
            if event.badge == "store-fault-badge":
                return store_fault_detail(latest.delivery, now)
            if event.badge == "discord-pause-badge":
                return discord_pause_detail(latest.delivery, now)
            return None

        self.open_detail(build)

    def _theme_changed(self, _theme: object) -> None:
        # Table cells carry colours resolved at render time; redraw them with the new theme.
        if self._last is not None:
            self._chart_drawn_at = float("-inf")
            self.render_snapshot(self._last, self.state.clock.wall(), force=True)

    def on_input_changed(self, event: Input.Changed) -> None:
        """Filter the activity log as the operator types."""
        if event.input.id == "activity-filter":
            event.stop()
            self.query_one(ActivityPanel).set_filter(event.value)

    # -- frames ----------------------------------------------------------------------------------

    async def follow_frames(self) -> None:
        """Show every frame of the backend, at the interval the engine's settings ask for.

        A backend never ends its stream for a lost engine (it sends link frames instead); if the
        stream fails or ends anyway, that is said in the activity panel and it is asked again.
        """
        task = asyncio.current_task()
        if task is not None:
            task.set_name(FRAMES_TASK)
        while True:
            stream = self.state.backend.frames(self.interval)
            try:
                async for frame in stream:
                    self.show_frame(frame)
                    wanted = max(MIN_INTERVAL, frame.snapshot.settings.refresh_seconds)
                    if wanted != self.interval:
                        self.interval = wanted
                        break  # ask again at the new interval
                else:
                    self._stream_trouble("the engine's frame stream ended")
                    await asyncio.sleep(RETRY_SECONDS)
            except Exception as exc:  # the console must outlive a failing backend
                self._stream_trouble(f"the engine's frame stream failed: {exc}")
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                close = getattr(stream, "aclose", None)
                if close is not None:
                    await close()

    def _stream_trouble(self, text: str) -> None:
        self.state.activity.add(self.state.clock.wall(), f"{text}; asking again")
        for panel in self.query(ActivityPanel):  # none while the screen is taken down
            panel.show(self.state.activity)

    def show_frame(self, frame: Frame) -> None:
        """Take ``frame`` in, render every panel from it, and let the app follow it."""
        if not self.is_attached or not self.children:
            return  # being taken down (the app quits): nothing to draw on
        now = self.state.clock.wall()
        change = self.state.accept(frame, now)
        snapshot = self.state.latest
        assert snapshot is not None  # just accepted (made printable)
        self.render_snapshot(snapshot, now)
        self.wanderer.frame_shown(change)

    def render_snapshot(self, snapshot: EngineSnapshot, now: float, *, force: bool = False) -> None:
        """Push ``snapshot`` into the panels (``force``: redraw even what did not change)."""
        self._last = snapshot
        state = self.state
        delivery = snapshot.delivery
        sub_title = dashboard_title(state, snapshot, now)
        if sub_title != self.sub_title:
            self.sub_title = sub_title
        self.query_one(FaultBadges).show(
            delivery,
            now,
            state.link,
            state.live_at,
            snapshot.config,
            state.dismissed_config,
            snapshot.alerts,
        )
        self.query_one("#dashboard").set_class(not state.live, "-stale")
        self.query_one(ConnectionsTable).show(snapshot.connections, now)
        self._render_delivery(snapshot, now)
        breakers = snapshot.breakers
        self.query_one(BreakersTable).show(breakers, now)
        breakers_panel = self.query_one("#breakers-panel")
        open_count = sum(1 for b in breakers.values() if b.state != "closed")
        breakers_panel.border_subtitle = f"{open_count} not closed" if open_count else ""
        breakers_panel.set_class(bool(open_count), "-tripped")
        self.query_one(CachePanel).show(snapshot.cache, force=force)
        self.query_one(CountersPanel).show(snapshot.counters, snapshot.queue_depth, force=force)
        self.query_one(ActivityPanel).show(state.activity)
        tick = time.monotonic()
        if tick - self._chart_drawn_at >= CHART_MIN_INTERVAL:
            self._chart_drawn_at = tick
            self.query_one(ThroughputChart).show(list(state.history.samples), now)

    def _render_delivery(self, snapshot: EngineSnapshot, now: float) -> None:
        delivery = snapshot.delivery
        self.query_one(DeliveryTable).show(delivery.targets, now)
        dead = dead_targets(delivery)
        self.query_one(PauseNote).show(delivery)
        self.query_one(DeadTargetNotes).show(dead)
        notes = ["PAUSED"] if delivery.paused else []
        if dead:
            notes.append(f"{len(dead)} dead · ctrl+p: Retry dead target")
        panel = self.query_one("#delivery-panel")
        panel.border_subtitle = " · ".join(notes)
        panel.set_class(delivery.paused, "-paused")
        panel.set_class(bool(dead), "-dead")
