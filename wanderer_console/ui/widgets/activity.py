"""The recent-activity panel: connection changes, disabled targets, pauses and engine log lines."""

from __future__ import annotations

import time

from textual.widgets import RichLog

from wanderer_console.ui.model import ActivityLog

__all__ = ["ActivityPanel"]


class ActivityPanel(RichLog):
    """Appends what :class:`~wanderer_console.ui.model.ActivityLog` has gained since last time."""

    DEFAULT_CSS = """
    ActivityPanel {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=200, wrap=False, markup=False, highlight=False, id=id)
        self._written = 0

    def show(self, log: ActivityLog) -> None:
        """Write the entries added to ``log`` since the previous call."""
        new = log.added - self._written
        if new <= 0:
            return
        entries = list(log.entries)[-new:] if new < len(log.entries) else list(log.entries)
        for at, text in entries:
            self.write(f"{time.strftime('%H:%M:%S', time.gmtime(at))} {text}")
        self._written = log.added
