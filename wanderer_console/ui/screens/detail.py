"""The detail view: one connection, target, breaker, activity line or fault badge, explained.

Opened with Enter (or a click) on a row of the dashboard, or a click on a badge. It shows what
:mod:`wanderer_console.ui.details` says (the full error, the URL with credentials masked, since
when and how often, the last occurrences, and the runbook's advice) and follows the engine: each
frame rebuilds it, so an error that clears or repeats shows here at once. Escape closes it; a dead
target can be retried from it, and ``n`` on a target opens the events browser on its
notifications.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from wanderer_console.ui.details import Detail, occurrences_text
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.colours import theme_colour

__all__ = ["DetailScreen", "markdown_text"]

_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")


def markdown_text(markdown: str, code_style: str = "bold") -> Text:
    """The runbook's Markdown as terminal text: ``code`` in ``code_style``, links as their text."""
    text = Text()
    for number, piece in enumerate(_LINK.sub(r"\1", markdown).split("`")):
        text.append(piece, style=code_style if number % 2 else "")
    return text


class DetailScreen(OnWanderer, ModalScreen[None]):
    """A modal over the dashboard explaining one thing; it follows the frames."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="detail.close"),
        Binding("r", "retry", "Retry target", id="detail.retry"),
        Binding("n", "notifications", "Its notifications", id="detail.notifications"),
    ]

    def __init__(self, build: Callable[[], Detail | None]) -> None:
        super().__init__()
        self._build = build
        self.detail = build()
        """What the view shows (the last one built, while the thing is gone from the snapshot)."""
        self._shown: Detail | None = None

    def compose(self) -> ComposeResult:
        """One scrollable body."""
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-text")

    def on_mount(self) -> None:
        """Draw the detail."""
        self.refresh_detail()

    def refresh_detail(self) -> None:
        """Rebuild from the latest snapshot; redraw only when something changed."""
        detail = self._build()
        if detail is not None:
            self.detail = detail
        if self.detail is None or (self.detail == self._shown and detail is not None):
            return
        self._shown = self.detail if detail is not None else None
        body = self.query_one("#detail-body", VerticalScroll)
        # As named: a title is read as markup, and a name holding ``[/]`` raised MarkupError.
        body.border_title = Text(self.detail.title)
        keys = [("r retry", self.detail.retry), ("n its notifications", self.detail.target)]
        hints = [hint for hint, wanted in keys if wanted is not None]
        hints.append("no longer in the snapshot · Escape" if detail is None else "Escape")
        body.border_subtitle = " · ".join(hints)
        self.query_one("#detail-text", Static).update(self.body_of(self.detail))
        self.refresh_bindings()

    def _heading(self, title: str) -> Text:
        return Text(f"\n{title}", style=f"bold {theme_colour(self, 'primary')}".strip())

    def body_of(self, detail: Detail) -> RenderableType:
        parts: list[RenderableType] = []
        facts = Table.grid(padding=(0, 2))
        facts.add_column(style="bold", no_wrap=True)
        facts.add_column(overflow="fold")
        for label, value in detail.facts:
            facts.add_row(label, value)
        parts.append(facts)
        if detail.error:
            parts.append(self._heading("Error" if detail.kind != "activity" else "Line"))
            error_style = theme_colour(self, "health-down") if detail.kind != "activity" else ""
            parts.append(Text(detail.error, style=error_style, overflow="fold"))
        if detail.occurrences:
            parts.append(self._heading(f"Last {len(detail.occurrences)} occurrence(s)"))
            for line in occurrences_text(detail.occurrences):
                parts.append(Text(line, overflow="fold"))
        if detail.advice is not None:
            parts.append(self._heading("What to do"))
            code = f"bold {theme_colour(self, 'accent')}".strip()
            parts.append(markdown_text(detail.advice.message, code).append(" ", style=""))
            meaning = Text("Means: ", style="bold")
            meaning.append_text(markdown_text(detail.advice.meaning, code))
            parts.append(meaning)
            action = Text("Do: ", style="bold")
            action.append_text(markdown_text(detail.advice.action, code))
            parts.append(action)
            parts.append(
                Text(f"(docs/operations/troubleshooting.md · {detail.advice.section})", style="dim")
            )
        elif detail.healthy:
            parts.append(self._heading("Nothing wrong now"))
        return Group(*parts)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Retrying is offered for a dead target only."""
        if action == "retry":
            return self.detail is not None and self.detail.retry is not None
        if action == "notifications":
            return self.detail is not None and self.detail.target is not None
        return True

    def action_notifications(self) -> None:
        """The events browser on this target's notifications (Enter there shows one)."""
        if self.detail is not None and self.detail.target is not None:
            target = self.detail.target
            self.dismiss()
            self.wanderer.open_events(target=target)

    def action_retry(self) -> None:
        """Revive the dead target (as the palette's *Retry dead target*)."""
        if self.detail is not None and self.detail.retry is not None:
            self.wanderer.retry_dead_target(self.detail.retry)
