"""The cache panel: hit ratio, size and evictions per namespace, and warming progress.

Shown only when the snapshot has a ``cache`` key (``CacheFacade.stats()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from wanderer_console.ui.widgets.colours import coloured

__all__ = ["CachePanel"]


def _ratio(value: Any) -> str:
    return f"{float(value) * 100:.0f}%" if isinstance(value, int | float) else "-"


class CachePanel(Static):
    """Per-namespace cache statistics from the snapshot's ``cache``."""

    DEFAULT_CSS = """
    CachePanel {
        height: auto;
    }
    """

    def show(self, cache: Mapping[str, Any]) -> None:
        """Render ``cache`` (the ``CacheFacade.stats()`` shape)."""
        table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
        table.add_column("Namespace", ratio=1, no_wrap=True)
        table.add_column("Hit", justify="right")
        table.add_column("Size", justify="right")
        table.add_column("Evict", justify="right")
        namespaces = cache.get("namespaces") or {}
        for name, stats in sorted(namespaces.items()):
            if not isinstance(stats, Mapping):
                continue
            size = f"{stats.get('size', 0)}/{stats.get('maxsize', '?')}"
            table.add_row(
                name,
                coloured(self, _ratio(stats.get("hit_ratio")), "cache-hit"),
                size,
                str(stats.get("evictions", 0)),
            )
        summary = Text("All ", style="bold")
        summary.append_text(coloured(self, _ratio(cache.get("hit_ratio")), "cache-hit", bold=True))
        summary.append(f" hit · {cache.get('inflight', 0)} in flight")
        warming = cache.get("warming") or {}
        if isinstance(warming, Mapping) and warming.get("total"):
            done, total = int(warming.get("done", 0)), int(warming.get("total", 0))
            failed = int(warming.get("failed", 0))
            bar_width = 12
            filled = round(bar_width * min(1.0, done / total)) if total else 0
            line = Text("Warming ", style="bold")
            line.append_text(coloured(self, "█" * filled, "cache-hit"))
            line.append("░" * (bar_width - filled))
            line.append(f" {done}/{total}")
            if failed:
                line.append_text(coloured(self, f" {failed} failed", "health-down"))
            if warming.get("running"):
                line.append(" (running)")
            self.update(Group(table, summary, line))
            return
        self.update(Group(table, summary))
