"""The recent-activity panel: connection changes, disabled targets, pauses and engine log lines."""

from __future__ import annotations

import time

from textual.widgets import RichLog

from wanderer_console.ui.model import ActivityLog

__all__ = ["ActivityPanel"]


class ActivityPanel(RichLog):
    """Appends what :class:`~wanderer_console.ui.model.ActivityLog` has gained since last time.

    A filter (case-insensitive substring) hides the lines that do not contain it; changing the
    filter redraws the panel from the whole log.
    """

    DEFAULT_CSS = """
    ActivityPanel {
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=200, wrap=False, markup=False, highlight=False, id=id)
        self._written = 0
        self._log: ActivityLog | None = None
        self.filter_text = ""
        """The current filter, lower-cased ("" shows everything)."""

    def _write(self, entries: list[tuple[float, str]]) -> None:
        for at, text in entries:
            if self.filter_text and self.filter_text not in text.lower():
                continue
            self.write(f"{time.strftime('%H:%M:%S', time.gmtime(at))} {text}")

    def show(self, log: ActivityLog) -> None:
        """Write the entries added to ``log`` since the previous call."""
        self._log = log
        new = log.added - self._written
        if new <= 0:
            return
        entries = list(log.entries)[-new:] if new < len(log.entries) else list(log.entries)
        self._write(entries)
        self._written = log.added

    def set_filter(self, text: str) -> None:
        """Show only lines containing ``text`` (any case); redraw from the whole log."""
        self.filter_text = text.strip().lower()
        self.clear()
        if self._log is not None:
            self._write(list(self._log.entries))
            self._written = self._log.added
