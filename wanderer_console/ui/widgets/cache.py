"""The cache panel: hit ratio, size and evictions per namespace, warming progress, and the
cache's health (score, memory, pinned entries, recommendations) when the engine reports it.

A hit ratio is ``-`` until the first lookup (``0%`` would say every lookup missed).
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from wanderer_console.console_api import CacheView
from wanderer_console.ui.widgets.colours import coloured

__all__ = ["CachePanel"]

_ON_DEMAND = frozenset({"recent_kills", "appraisal", "affiliation"})
"""Namespaces of optional features (Recent Kills, notable loot) and warming's own (pilots'
affiliations): counted in the "All" line and exported in /metrics, not listed, so the panel
still fits an 80x24 terminal."""


def _ratio(value: float, lookups: int) -> str:
    """``97%``; ``-`` before the first lookup (no ratio to speak of yet)."""
    return f"{value * 100:.0f}%" if lookups > 0 else "-"


class CachePanel(Static):
    """Per-namespace cache statistics from the snapshot's ``cache``."""

    DEFAULT_CSS = """
    CachePanel {
        height: auto;
    }
    """

    _shown: CacheView | None = None
    """What the panel shows now (the same figures are not drawn again)."""

    def show(self, cache: CacheView, *, force: bool = False) -> None:
        """Render ``cache``; nothing is drawn when it did not change (``force``: draw anyway,
        e.g. in a new theme's colours)."""
        if not force and cache == self._shown:
            return
        self._shown = cache
        table = Table(box=None, padding=(0, 1), expand=True, show_edge=False)
        table.add_column("Namespace", ratio=1, no_wrap=True)
        table.add_column("Hit", justify="right")
        table.add_column("Size", justify="right")
        table.add_column("Evict", justify="right")
        for name, stats in sorted(cache.namespaces.items()):
            if name in _ON_DEMAND:
                continue  # counted in "All" and in /metrics; the rows are the name caches
            table.add_row(
                name,
                coloured(self, _ratio(stats.hit_ratio, stats.hits + stats.misses), "cache-hit"),
                f"{stats.size}/{stats.maxsize}",
                str(stats.evictions),
            )
        summary = Text("All ", style="bold")
        lookups = cache.hits + cache.misses
        summary.append_text(
            coloured(self, _ratio(cache.hit_ratio, lookups), "cache-hit", bold=True)
        )
        summary.append(f" hit · {cache.inflight} in flight")
        warming = cache.warming
        if warming.total:
            done, total, failed = warming.done, warming.total, warming.failed
            bar_width = 12
            filled = round(bar_width * min(1.0, done / total))
            line = Text("Warming ", style="bold")
            line.append_text(coloured(self, "█" * filled, "cache-hit"))
            line.append("░" * (bar_width - filled))
            line.append(f" {done}/{total}")
            if failed:
                line.append(" · ")
                line.append_text(coloured(self, f"{failed} failed", "health-down"))
            if warming.running:
                line.append(" (running)")
            self.update(Group(table, summary, line, *self._health(cache)))
            return
        self.update(Group(table, summary, *self._health(cache)))

    def _health(self, cache: CacheView) -> list[Text]:
        """``Health 92/100 · 1.4 MiB · pinned 150`` and the recommendations, one a line."""
        health = cache.health
        if health is None:
            return []
        variable = "health-ok" if health.score >= 80 else "health-down"
        line = Text("Health ", style="bold")
        line.append_text(coloured(self, f"{health.score}/100", variable, bold=True))
        memory = health.memory_bytes.get("total", 0)
        line.append(f" · {_bytes(memory)}")
        pinned = sum(health.pinned.values())
        if pinned:
            line.append(f" · pinned {pinned}")
        tips = [Text(f"• {tip}", style="dim") for tip in health.recommendations[:3]]
        return [line, *tips]


def _bytes(count: int) -> str:
    """``812 KiB``, ``1.4 MiB``."""
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"
