"""Priority systems: the operators' list, also kept with ``/notifier system add-priority``.

A priority system's kills and new-system notifications always go out (even with system
notifications off) and ping: the people in voice with voice mentions on, else ``@here``. The
list is the engine's (its store); an edit here is what ``/notifier priority list`` shows next.
"""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Header, Input, Static

from wanderer_console.console_api import PrioritySystemView
from wanderer_console.ui.model import ConsoleState
from wanderer_console.ui.screens.typed import OnWanderer
from wanderer_console.ui.widgets.keybar import KeyBar

__all__ = ["PriorityScreen"]

HINT = (
    "Priority systems are always notified (even with system notifications off) and ping who is"
    " in voice, else @here. Type a name and Enter to add; Delete removes the selected one."
)


class PriorityScreen(OnWanderer, Screen[None]):
    """The priority systems (name, who added it, when), an input to add, Delete to remove."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # A priority binding: the input has the focus and keeps Delete for its text otherwise
        # (the selected row was removed only after Tab, and the key bar did not offer it).
        Binding("delete", "remove", "Remove", id="priority.remove", priority=True),
        Binding("escape", "app.dashboard", "Back", id="priority.back"),
    ]

    DEFAULT_CSS = """
    PriorityScreen #priority-add { margin: 1 0; }
    PriorityScreen #priority-gateway { color: $text-muted; }
    """

    def __init__(self, state: ConsoleState) -> None:
        super().__init__()
        self.state = state
        self._shown: tuple[PrioritySystemView, ...] | None = None

    def compose(self) -> ComposeResult:
        """Header, hint, gateway line, the add input, the list, footer."""
        yield Header()
        yield Static(HINT, id="priority-hint")
        yield Static(self._gateway_line(), id="priority-gateway")
        yield Input(placeholder="System name (J154624, Jita) or id", id="priority-add")
        yield DataTable(id="priority-list", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        """Fill the list; the input has the focus."""
        table = self.query_one("#priority-list", DataTable)
        table.add_column("System", key="name")
        table.add_column("Added by", key="by")
        table.add_column("Added (UTC)", key="at")
        self.refresh_list()
        self.query_one("#priority-add", Input).focus()

    def _gateway_line(self) -> Text:
        latest = self.state.latest
        gateway = None
        if latest is not None:
            gateway = next((c for c in latest.connections if c.name == "discord:gateway"), None)
        if gateway is None:
            return Text("Discord gateway: not configured (discord.bot_token and application_id)")
        line = f"Discord gateway: {gateway.state}"
        return Text(line + (f" ({gateway.last_error})" if gateway.last_error else ""))

    def refresh_list(self) -> None:
        """Redraw when the latest snapshot's list changed (called for every frame)."""
        if not self.is_mounted:
            return
        self.query_one("#priority-gateway", Static).update(self._gateway_line())
        latest = self.state.latest
        rows = () if latest is None else latest.priority_systems
        if rows == self._shown:
            return
        self._shown = rows
        table = self.query_one("#priority-list", DataTable)
        table.clear()
        for row in rows:
            when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(row.added_at))
            # Text, not str: a name or a Discord user name is never read as markup.
            table.add_row(Text(row.name), Text(row.added_by), when, key=row.name)
        self.refresh_bindings()  # Remove is offered only with a row to remove

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Remove is offered with a row to remove; while the input holds text, Delete edits it
        (``None``: shown dimmed, and the key goes on to the input)."""
        if action != "remove":
            return True
        if not self.is_mounted or self.query_one("#priority-list", DataTable).row_count == 0:
            return None
        return None if self.query_one("#priority-add", Input).value else True

    def on_input_changed(self, _event: Input.Changed) -> None:
        """Typed text takes Delete for itself (and gives it back when cleared)."""
        self.refresh_bindings()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the input adds the name."""
        event.stop()
        name = event.value.strip()
        if name:
            event.input.value = ""
            self.wanderer.change_priority(name, add=True)

    def action_remove(self) -> None:
        """Remove the selected system."""
        table = self.query_one("#priority-list", DataTable)
        if table.row_count == 0:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        if key:
            self.wanderer.change_priority(str(key), add=False)
