"""The throughput chart: events/s and notifications/s over the last ten minutes.

Colours are set explicitly from theme variables, because textual-plotext picks series colours by
render order and caches its canvas theme by name (STYLE.md pitfalls 4 and 5).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual.color import Color
from textual_plotext import PlotextPlot

from wanderer_console.ui.model import HISTORY_SECONDS, RateSample

__all__ = ["ThroughputChart"]


class ThroughputChart(PlotextPlot):
    """A line chart fed with :class:`~wanderer_console.ui.model.RateSample` lists."""

    DEFAULT_CSS = """
    ThroughputChart {
        height: 1fr;
        min-height: 8;
    }
    """

    _data_version = 0
    """Bumped by every :meth:`show`; part of the key of the kept build."""
    _built: tuple[tuple[object, ...], Text] | None = None
    """The last build and the key it was made for."""

    def _rgb(self, variable: str, fallback: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable) or self.app.theme_variables[fallback]
        return Color.parse(value).rgb

    def show(self, samples: Sequence[RateSample], now: float) -> None:
        """Plot ``samples`` with x as seconds before ``now``; redraws once."""
        plt = self.plt
        plt.clear_data()
        plt.title("throughput (per second, last 10 min)")
        plt.xlim(-HISTORY_SECONDS, 0)
        xs = [sample.at - now for sample in samples]
        if xs:
            plt.plot(
                xs,
                [s.events_per_second for s in samples],
                label="events/s",
                color=self._rgb("chart-events", "primary"),
            )
            plt.plot(
                xs,
                [s.notifications_per_second for s in samples],
                label="notifications/s",
                color=self._rgb("chart-notifications", "accent"),
            )
        self._data_version += 1
        self.refresh()

    def render(self) -> RenderResult:
        """Build the plot with the canvas coloured from the current theme.

        The build is kept until the data, the size or the colours change: the compositor asks
        again on every full redraw (a screen switch), and a plotext build costs 10-15 ms.
        """
        width, height = self.size.width, self.size.height
        surface = self._rgb("surface", "background")
        foreground = self._rgb("foreground", "text")
        key = (self._data_version, width, height, surface, foreground)
        if self._built is not None and self._built[0] == key:
            return self._built[1]
        plt = self.plt
        # The widget's size, not the terminal plotext detects (80 columns when not a TTY).
        unlimited: Any = plt  # (the typing stub lacks it)
        unlimited._limit_size(False, False)
        plt.plotsize(width, height)
        plt.canvas_color(surface)
        plt.axes_color(surface)
        plt.ticks_color(foreground)
        text = Text.from_ansi(plt.build())
        self._built = (key, text)
        return text
