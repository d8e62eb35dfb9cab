"""Help: the key bindings, generated from the app's and the screens' ``BINDINGS``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

__all__ = ["HelpScreen"]

ACTION_ROOM = 16
"""The fewest characters the action column keeps beside the id column; with less the id goes under
the action (a 40-column terminal), so what a key does is never squeezed out."""


class HelpScreen(ModalScreen[None]):
    """A modal listing every binding by group; Escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close", id="help.close")]

    def __init__(
        self,
        groups: Sequence[tuple[str, Iterable[BindingType]]],
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.groups = groups
        """``(title, bindings)`` pairs to list."""
        self.keymap = dict(keymap or {})
        """The ``[keymap]`` in force (binding id → keys): the keys it moves are listed as moved."""

    def keys_of(self, binding: Binding) -> str:
        """The key(s) that run ``binding`` now, as the key bar shows them: the ``[keymap]``
        entry for its id when there is one (the default key then does nothing)."""
        moved = self.keymap.get(binding.id or "", "")
        keys = [key.strip() for key in moved.split(",") if key.strip()]
        if not keys:
            return self.app.get_key_display(binding)
        return ",".join(self.app.get_key_display(binding.with_key(key)) for key in keys)

    def _id_width(self) -> int:
        ids = [b.id or "" for _, group in self.groups for b in group if isinstance(b, Binding)]
        return max(map(len, ids), default=0)

    def _narrow(self) -> bool:
        """Too narrow for an id column beside the actions (the box is 90% of the terminal, at
        most 100 wide, less its border, padding and scrollbar)."""
        room = min(self.app.size.width * 9 // 10, 100) - 7
        return room < 8 + 2 + ACTION_ROOM + 2 + self._id_width()

    def on_resize(self) -> None:
        """Lay the tables out again when the terminal crossed the narrow width."""
        if self._narrow() != self._laid_out_narrow:
            self.refresh(recompose=True)

    _laid_out_narrow = False

    def compose(self) -> ComposeResult:
        """Per group, its title and a table of key, action and id (the id a ``[keymap]`` entry
        names; under the action when the terminal is narrow)."""
        parts: list[RenderableType] = []
        # An id is what a [keymap] entry is typed with: always whole on one line (folded in a
        # narrow column it read as two words); the action's words wrap instead.
        id_width = self._id_width()
        narrow = self._laid_out_narrow = self._narrow()
        for title, bindings in [*self.groups, ("Anywhere else", ())]:
            padding = (0, 1) if narrow else (0, 2)
            table = Table(expand=True, box=None, padding=padding, show_header=False)
            table.add_column("Key", style="bold", no_wrap=True, min_width=8)
            table.add_column("Action", ratio=2)
            if not narrow:
                table.add_column("Id", style="dim", no_wrap=True, min_width=id_width)
            for binding in bindings:
                if not isinstance(binding, Binding):
                    continue
                keys, what, binding_id = self.keys_of(binding), binding.description, binding.id
                if narrow:
                    table.add_row(keys, Text(what).append(f"\n{binding_id}", style="dim"))
                else:
                    table.add_row(keys, what, binding_id)
            if title == "Anywhere else":
                what = "Command palette (toggles, pause/resume, themes)"
                table.add_row("ctrl+p", *((what,) if narrow else (what, "")))
            parts += [Text(title, style="bold underline"), table, Text("")]
        with VerticalScroll(id="help-body") as body:
            body.border_title = "Wanderer Console — keys"
            body.border_subtitle = "Escape to close"
            yield Static(Group(*parts))
