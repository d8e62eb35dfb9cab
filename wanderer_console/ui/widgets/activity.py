"""The recent-activity panel: connection changes, disabled targets, pauses and engine log lines.

One row per line (time, text), newest last; Enter or a click on a row opens its detail view (the
whole line, how often it came, the runbook's advice). A line wider than the panel ends in ``…``:
the detail view shows it all.
"""

from __future__ import annotations

from rich.text import Text
from textual import events

from wanderer_console.ui.faults import clock_time
from wanderer_console.ui.model import ActivityLog
from wanderer_console.ui.widgets.synced import SelectOnClick

__all__ = ["ActivityPanel"]

_TIME_WIDTH = 8
KEEP = 200
"""Rows kept (as many as the activity log holds)."""


class ActivityPanel(SelectOnClick):
    """Appends what :class:`~wanderer_console.ui.model.ActivityLog` has gained since last time.

    A filter (case-insensitive substring) hides the lines that do not contain it; changing the
    filter redraws the panel from the whole log. While the cursor is on the newest line (or the
    panel is not focused), it follows new lines; an operator reading older ones is not moved.
    """

    DEFAULT_CSS = """
    ActivityPanel {
        height: 1fr;
        scrollbar-size-horizontal: 0;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(
            id=id, show_header=False, cursor_type="row", zebra_stripes=False, cell_padding=1
        )
        self._written = 0
        self._log: ActivityLog | None = None
        self.filter_text = ""
        """The current filter, lower-cased ("" shows everything)."""
        self.rows_shown: dict[str, tuple[float, str]] = {}
        """Row key → ``(time, text)`` of each line on screen, oldest first."""
        self._text_width = 40

    def on_mount(self) -> None:
        """Two columns: time and text (sized to the panel)."""
        self.add_column("Time", key="time", width=_TIME_WIDTH)
        self.add_column("Line", key="line", width=self._text_width)

    def on_resize(self, event: events.Resize) -> None:
        """Fit the text column to the panel, so a long line ends in ``…`` instead of a scroll."""
        width = max(10, event.size.width - _TIME_WIDTH - 4 * self.cell_padding - 1)
        if width != self._text_width:
            self._text_width = width
            self.clear(columns=True)
            self.on_mount()
            self._redraw()

    def texts(self) -> list[str]:
        """The lines shown, ``HH:MM:SS text`` (what the tests and the tmux test read)."""
        return [f"{clock_time(at)} {text}" for at, text in self.rows_shown.values()]

    def _cell(self, text: str) -> Text:
        return Text(text, no_wrap=True, overflow="ellipsis", end="")

    def _add(self, number: int, at: float, text: str) -> None:
        if self.filter_text and self.filter_text not in text.lower():
            return
        key = str(number)
        self.rows_shown[key] = (at, text)
        self.add_row(clock_time(at), self._cell(text), key=key)

    def _trim(self) -> None:
        while len(self.rows_shown) > KEEP:
            oldest = next(iter(self.rows_shown))
            del self.rows_shown[oldest]
            self.remove_row(oldest)

    def show(self, log: ActivityLog) -> None:
        """Write the entries added to ``log`` since the previous call."""
        self._log = log
        new = log.added - self._written
        if new <= 0:
            return
        following = not self.has_focus or self.cursor_row >= self.row_count - 1
        entries = list(log.entries)
        first = log.added - len(entries)
        start = max(0, len(entries) - new)
        for index in range(start, len(entries)):
            at, text = entries[index]
            self._add(first + index, at, text)
        self._written = log.added
        self._trim()
        if following and self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def _redraw(self) -> None:
        if self._log is None:
            return
        self.clear()
        self.rows_shown.clear()
        entries = list(self._log.entries)
        first = self._log.added - len(entries)
        for index, (at, text) in enumerate(entries):
            self._add(first + index, at, text)
        self._written = self._log.added
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)

    def set_filter(self, text: str) -> None:
        """Show only lines containing ``text`` (any case); redraw from the whole log."""
        self.filter_text = text.strip().lower()
        self._redraw()

    def line_at(self, key: str) -> tuple[float, str] | None:
        """The ``(time, text)`` of the row ``key``."""
        return self.rows_shown.get(key)
