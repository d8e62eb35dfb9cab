"""The trends screen: the engine's stored per-minute trends over 1 h, 24 h or 7 d.

Three charts (throughput, delivery latency percentiles, failures and errors) over the range
chosen with the tabs (or 1, 2, 3). The data is asked of the engine when the range changes and
every 30 s while the screen shows (the trends change once a minute), never per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Header, Static, Tab, Tabs

from wanderer_console.console_api import TREND_RANGES, TrendPoint, TrendsView
from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.keybar import KeyBar
from wanderer_console.ui.widgets.plot import ThemedPlot

__all__ = ["REFRESH_SECONDS", "TrendChart", "TrendsScreen"]

REFRESH_SECONDS = 30.0
"""How often the shown range is asked for again."""

Series = tuple[str, Sequence[float | None], str]
"""A line: its label, one value per point (``None``: no data), its colour's theme variable."""


class TrendChart(ThemedPlot):
    """One chart of the trends screen; colours from the theme (STYLE.md pitfalls 4 and 5)."""

    DEFAULT_CSS = """
    TrendChart {
        height: 1fr;
        min-height: 7;
    }
    """

    points = 0
    """Points of the last data shown (tests read it)."""

    def show(self, title: str, xs: Sequence[float], series: Sequence[Series]) -> None:
        """Plot ``series`` over ``xs`` (hours before now)."""
        plt = self.plt
        plt.clear_data()
        plt.title(title)
        self.points = len(xs)
        for label, values, colour in series:
            pairs = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
            if pairs:
                plt.plot(
                    [x for x, _ in pairs],
                    [v for _, v in pairs],
                    label=label,
                    color=self._rgb(colour, "primary"),
                )
        if xs:
            plt.xlim(min(xs), 0)
        self.changed()


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


class TrendsScreen(OnWanderer, Screen[None]):
    """Range tabs, then throughput, latency and failure charts."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "range('1h')", "1 h", id="trends.1h"),
        Binding("2", "range('24h')", "24 h", id="trends.24h"),
        Binding("3", "range('7d')", "7 d", id="trends.7d"),
        Binding("escape", "app.dashboard", "Back", id="trends.back"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        """Shared console state (its backend answers the trends)."""
        self.range = "1h"
        """The range shown."""
        self.shown: TrendsView | None = None
        """The trends last drawn."""

    def compose(self) -> ComposeResult:
        """Header, range tabs, summary, three charts, footer."""
        yield Header()
        yield Tabs(*(Tab(name, id=f"range-{name}") for name in TREND_RANGES), id="trend-range")
        yield Static("", id="trend-summary")
        yield TrendChart(id="trend-throughput")
        yield TrendChart(id="trend-latency")
        yield TrendChart(id="trend-failures")
        yield KeyBar()

    def on_mount(self) -> None:
        """Load the first range; ask again every :data:`REFRESH_SECONDS`."""
        self.load()
        self.set_interval(REFRESH_SECONDS, self.load)

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        """A range tab was chosen."""
        event.stop()
        if event.tab is not None and event.tab.id is not None:
            name = event.tab.id.removeprefix("range-")
            if name != self.range:
                self.range = name
                self.load()

    def action_range(self, name: str) -> None:
        """Show range ``name``."""
        self.query_one(Tabs).active = f"range-{name}"

    def load(self) -> None:
        """Ask the engine for the range shown (in the background)."""
        self.wanderer.operate(self._load(self.range), f"trends {self.range}")

    async def _load(self, name: str) -> None:
        view = await self.wanderer.call(
            "Could not read the trends", self.state.backend.trends(name)
        )
        if view is not None and self.is_mounted and view.range == self.range:
            self.draw(view)

    def draw(self, view: TrendsView) -> None:
        """Draw ``view`` in the three charts and the summary line."""
        self.shown = view
        points: tuple[TrendPoint, ...] = view.points
        last = points[-1].start + view.step if points else 0
        xs = [(p.start - last) / 3600 for p in points]
        per = "min" if view.step == 60 else f"{view.step // 60} min"
        self.query_one("#trend-throughput", TrendChart).show(
            f"throughput per {per} (x: hours)",
            xs,
            [
                ("events", [p.events for p in points], "chart-events"),
                ("delivered", [p.delivered for p in points], "chart-notifications"),
            ],
        )
        self.query_one("#trend-latency", TrendChart).show(
            "delivery latency, ms",
            xs,
            [
                ("p50", [_ms(p.latency_p50) for p in points], "success"),
                ("p95", [_ms(p.latency_p95) for p in points], "warning"),
                ("p99", [_ms(p.latency_p99) for p in points], "error"),
            ],
        )
        self.query_one("#trend-failures", TrendChart).show(
            f"failures, 429s and errors per {per}",
            xs,
            [
                ("failures", [p.failures for p in points], "error"),
                ("429s", [p.rate_limited for p in points], "warning"),
                ("errors", [p.errors for p in points], "accent"),
            ],
        )
        events = sum(p.events for p in points)
        delivered = sum(p.delivered for p in points)
        failures = sum(p.failures for p in points)
        self.query_one("#trend-summary", Static).update(
            f"Last {view.range}: {events} events in, {delivered} delivered,"
            f" {failures} failed deliveries, {sum(p.errors for p in points)} errors"
            " · 1 / 2 / 3: 1 h, 24 h, 7 d"
        )
