"""Rich styles taken from theme variables, for cells that CSS cannot reach (table cells)."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

__all__ = ["STATE_VARIABLE", "coloured", "theme_colour"]

STATE_VARIABLE = {
    "connected": "health-ok",
    "connecting": "health-degraded",
    "degraded": "health-degraded",
    "reconnecting": "health-degraded",
    "failed": "health-down",
    "stopped": "health-down",
    "closed": "breaker-closed",
    "half_open": "breaker-half-open",
    "half-open": "breaker-half-open",
    "open": "breaker-open",
}
"""Which theme variable colours each connection or breaker state."""


def theme_colour(widget: Widget, variable: str) -> str:
    """The current value of a theme variable (``health-ok``, ...), or ``""`` if unknown."""
    return widget.app.theme_variables.get(variable, "")


def coloured(widget: Widget, text: str, variable: str, *, bold: bool = False) -> Text:
    """``text`` styled with the colour of theme ``variable``."""
    colour = theme_colour(widget, variable)
    style = f"{'bold ' if bold else ''}{colour}".strip()
    return Text(text, style=style)
