"""A question with a few answers, each on a key and a button (quit with notifications pending,
leave the config pane with unsaved edits).

The screen returns the chosen answer's value; Escape answers with the last choice (the safe one:
stay). Every other key is swallowed while it is open, so a ``q`` meant for the question never
reaches the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

__all__ = ["Choice", "ChoiceScreen"]

CHROME_ROWS = 6
"""The box's rows around the question: its border, padding, the gap and the row of buttons."""


@dataclass(frozen=True, slots=True)
class Choice:
    """One answer: the key that gives it, its label, and the value the screen returns."""

    key: str
    label: str
    value: str


class ChoiceScreen(ModalScreen[str]):
    """Ask ``message``; answer with a key, a click, or Escape (the last choice)."""

    def __init__(self, title: str, message: str, choices: Sequence[Choice]) -> None:
        super().__init__()
        if not choices:
            raise ValueError("a question needs answers")
        self.title_text = title
        self.message = message
        """The question, as shown."""
        self.choices = tuple(choices)
        """The answers, in display order; the last is what Escape gives."""

    def compose(self) -> ComposeResult:
        """The question and one button per answer."""
        with Vertical(id="choice-box") as box:
            box.border_title = self.title_text
            with VerticalScroll(id="choice-scroll"):
                yield Static(self.message, id="choice-message", markup=False)
            with Horizontal(id="choice-buttons"):
                for number, choice in enumerate(self.choices):
                    yield Button(
                        f"{choice.label} ({choice.key})",
                        id=f"choice-{number}",
                        variant="primary" if number == 0 else "default",
                        compact=True,
                    )

    def on_mount(self) -> None:
        """Focus the last (safe) answer; fit the terminal."""
        self.query_one(f"#choice-{len(self.choices) - 1}", Button).focus()
        self._fit()

    def on_resize(self) -> None:
        """Fit the new size."""
        self._fit()

    def _fit(self) -> None:
        """On a short terminal the question scrolls, so the title and the answers stay on screen
        (at 40×12 the box was taller than the terminal: its title, the question's first words,
        were off screen)."""
        height = self.size.height or self.app.size.height
        scroll = self.query_one("#choice-scroll", VerticalScroll)
        scroll.styles.max_height = max(1, height - CHROME_ROWS)

    def show_message(self, message: str) -> None:
        """Say ``message`` instead (a figure in the question changed); redraw only then."""
        if message == self.message:
            return
        self.message = message
        for static in self.query("#choice-message").results(Static):
            static.update(message)

    def on_key(self, event: events.Key) -> None:
        """An answer's key answers; Escape gives the last answer; other keys do nothing here."""
        for choice in self.choices:
            if event.key == choice.key:
                event.stop()
                self.dismiss(choice.value)
                return
        if event.key == "escape":
            event.stop()
            self.dismiss(self.choices[-1].value)
            return
        if event.key not in ("tab", "shift+tab", "enter", "left", "right"):
            event.stop()
            event.prevent_default()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """A click (or Enter on a button) answers."""
        event.stop()
        number = int((event.button.id or "choice-0").removeprefix("choice-"))
        self.dismiss(self.choices[number].value)
