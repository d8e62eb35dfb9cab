"""A plotext chart drawn in the theme's colours, its build kept until something changes.

Colours are set explicitly from theme variables, because textual-plotext picks series colours by
render order and caches its canvas theme by name (STYLE.md pitfalls 4 and 5). The build is kept
until the data, the size or the colours change: the compositor asks again on every full redraw
(a screen switch), and a plotext build costs 10-15 ms.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import RenderResult
from textual.color import Color
from textual_plotext import PlotextPlot

__all__ = ["ThemedPlot"]


class ThemedPlot(PlotextPlot):
    """A :class:`PlotextPlot` whose subclasses plot into ``self.plt`` then call :meth:`changed`."""

    _data_version = 0
    """Bumped by every :meth:`changed`; part of the key of the kept build."""
    _built: tuple[tuple[object, ...], Text] | None = None
    """The last build and the key it was made for."""

    def _rgb(self, variable: str, fallback: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable) or self.app.theme_variables[fallback]
        return Color.parse(value).rgb

    def changed(self) -> None:
        """The plotted data changed: build again at the next render."""
        self._data_version += 1
        self.refresh()

    def render(self) -> RenderResult:
        """Build the plot at the widget's size in the theme's colours (kept until a change)."""
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
