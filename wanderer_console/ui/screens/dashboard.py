"""The dashboard: connections, delivery, breakers, cache, counters, throughput and activity.

Delivery faults (the store cannot write, a Discord global pause) are badges under the header;
dead targets are red in the delivery panel, with their reason and what they hold. While the link
to an attached engine is down, a badge says so and the panels are dimmed: they show the last
snapshot the engine sent.

The screen follows the backend's frames (:meth:`ConsoleBackend.frames
<wanderer_console.console_api.ConsoleBackend.frames>`, every ``console.refresh_seconds``) in a
worker, because it owns the widgets they feed (STYLE.md pitfall 3): each frame is taken in by
:meth:`~wanderer_console.ui.model.ConsoleState.accept` and every panel is rendered from its
snapshot; never per event. Panels redraw only what changed.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.screen import Screen
from textual.widgets import Header, Input

from wanderer_console.console_api import EngineSnapshot, Frame
from wanderer_console.ui.faults import dead_targets, delivery_held
from wanderer_console.ui.model import ConsoleState, engine_label, format_uptime
from wanderer_console.ui.widgets.activity import ActivityPanel
from wanderer_console.ui.widgets.badges import FaultBadges
from wanderer_console.ui.widgets.breakers import BreakersTable
from wanderer_console.ui.widgets.cache import CachePanel
from wanderer_console.ui.widgets.connections import ConnectionsTable
from wanderer_console.ui.widgets.counters import CountersPanel
from wanderer_console.ui.widgets.delivery import DeadTargetNotes, DeliveryTable
from wanderer_console.ui.widgets.keybar import KeyBar
from wanderer_console.ui.widgets.throughput import ThroughputChart

if TYPE_CHECKING:
    from wanderer_console.ui.app import WandererApp

__all__ = ["FRAMES_TASK", "DashboardScreen", "dashboard_title"]

FIRST_INTERVAL = 1.0
"""Seconds between frames until the first snapshot says ``console.refresh_seconds``."""
MIN_INTERVAL = 0.1
"""The shortest refresh interval asked of the backend, whatever the settings say."""
RETRY_SECONDS = 1.0
"""After the frames stream failed (a bug, not a lost engine: that comes as link frames), how long
the screen waits before asking for it again."""
CHART_MIN_INTERVAL = 0.5
"""The chart is rebuilt at most twice a second (a plotext build costs 10-15 ms)."""
FRAMES_TASK = "console frames"
"""The name of the task that follows the frames (the UI latency benchmark counts it as UI)."""


def _panel(*widgets: Any, title: str, panel_id: str) -> Vertical:
    box = Vertical(*widgets, id=panel_id, classes="panel")
    box.border_title = title
    return box


def dashboard_title(state: ConsoleState, snapshot: EngineSnapshot, now: float) -> str:
    """The dashboard's header: the engine (when known), its uptime and delivery's state.

    A lost engine is said by the badge under it (the other screens' titles say it instead).
    Only what changes rarely: a new header title costs the whole screen a new layout, so the
    queue depth (which changes all the time) is in the counters panel instead.
    """
    delivery = snapshot.delivery
    held = delivery_held(delivery, now)
    word = "PAUSED" if delivery.paused else "HELD" if held else "running"
    if state.identity is not None:
        engine = engine_label(state.identity, snapshot)
    else:
        engine = f"v{snapshot.version or '?'} · up {format_uptime(snapshot.uptime)}"
    return f"{engine} · delivery {word}"


class DashboardScreen(Screen[None]):
    """The default screen: what the engine is doing right now."""

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (backend, clock, history, activity)."""
        self._chart_drawn_at = float("-inf")
        self._last: EngineSnapshot | None = None
        self.interval = FIRST_INTERVAL
        """Seconds between the frames asked of the backend now."""

    @property
    def wanderer(self) -> WandererApp:
        """The app, typed."""
        from wanderer_console.ui.app import WandererApp

        assert isinstance(self.app, WandererApp)
        return self.app

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
        """Follow the backend's frames; re-render at once when the theme changes."""
        self.run_worker(self.follow_frames(), name=FRAMES_TASK, group="frames", exclusive=True)
        self.app.theme_changed_signal.subscribe(self, self._theme_changed)

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
        self.query_one(ActivityPanel).show(self.state.activity)

    def show_frame(self, frame: Frame) -> None:
        """Take ``frame`` in, render every panel from it, and let the app follow it."""
        now = self.state.clock.wall()
        change = self.state.accept(frame, now)
        self.render_snapshot(frame.snapshot, now)
        self.wanderer.frame_shown(change)

    def render_snapshot(self, snapshot: EngineSnapshot, now: float, *, force: bool = False) -> None:
        """Push ``snapshot`` into the panels (``force``: redraw even what did not change)."""
        self._last = snapshot
        state = self.state
        delivery = snapshot.delivery
        sub_title = dashboard_title(state, snapshot, now)
        if sub_title != self.sub_title:
            self.sub_title = sub_title
        self.query_one(FaultBadges).show(delivery, now, state.link, state.live_at, snapshot.config)
        self.query_one("#dashboard").set_class(not state.live, "-stale")
        self.query_one(ConnectionsTable).show(snapshot.connections, now)
        self._render_delivery(snapshot)
        breakers = snapshot.breakers
        self.query_one(BreakersTable).show(breakers, now)
        breakers_panel = self.query_one("#breakers-panel")
        open_count = sum(1 for b in breakers.values() if b.state != "closed")
        breakers_panel.border_subtitle = f"{open_count} not closed" if open_count else ""
        breakers_panel.set_class(bool(open_count), "-tripped")
        cache_panel = self.query_one("#cache-panel")
        has_cache = snapshot.cache != type(snapshot.cache)()
        cache_panel.display = has_cache
        if has_cache:
            self.query_one(CachePanel).show(snapshot.cache, force=force)
        self.query_one(CountersPanel).show(snapshot.counters, snapshot.queue_depth, force=force)
        self.query_one(ActivityPanel).show(state.activity)
        tick = time.monotonic()
        if tick - self._chart_drawn_at >= CHART_MIN_INTERVAL:
            self._chart_drawn_at = tick
            self.query_one(ThroughputChart).show(list(state.history.samples), now)

    def _render_delivery(self, snapshot: EngineSnapshot) -> None:
        delivery = snapshot.delivery
        self.query_one(DeliveryTable).show(delivery.targets)
        dead = dead_targets(delivery)
        self.query_one(DeadTargetNotes).show(dead)
        notes = ["PAUSED"] if delivery.paused else []
        if dead:
            notes.append(f"{len(dead)} dead · ctrl+p: Retry dead target")
        panel = self.query_one("#delivery-panel")
        panel.border_subtitle = " · ".join(notes)
        panel.set_class(delivery.paused, "-paused")
        panel.set_class(bool(dead), "-dead")
