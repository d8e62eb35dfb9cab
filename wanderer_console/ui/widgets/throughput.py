"""The throughput chart: events/s and notifications/s over the last ten minutes.

Colours are set explicitly from theme variables, because textual-plotext picks series colours by
render order and caches its canvas theme by name (STYLE.md pitfalls 4 and 5).
"""

from __future__ import annotations

from collections.abc import Sequence

from wanderer_console.ui.model import HISTORY_SECONDS, RateSample
from wanderer_console.ui.widgets.plot import ThemedPlot

__all__ = ["ThroughputChart"]


class ThroughputChart(ThemedPlot):
    """A line chart fed with :class:`~wanderer_console.ui.model.RateSample` lists."""

    DEFAULT_CSS = """
    ThroughputChart {
        height: 1fr;
        min-height: 8;
    }
    """

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
        self.changed()
