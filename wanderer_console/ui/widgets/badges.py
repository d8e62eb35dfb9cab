"""The fault badges under the header: the engine is lost, the store cannot write, a Discord
global pause, a config change rejected or waiting for a restart.

Each is a full-width strip in its own theme colour (``$engine-lost``, ``$store-fault``,
``$discord-pause``), shown only while its fault lasts, so the operator cannot miss that nothing is
being delivered, or that the figures on screen are stale.
"""

from __future__ import annotations

from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Static

from wanderer_console.console_api import AlertsView, ConfigState, DeliveryView, LinkState
from wanderer_console.ui.faults import (
    alert_text,
    config_text,
    global_pause_text,
    link_text,
    store_fault_text,
)

__all__ = ["BadgeClicked", "FaultBadges"]


class BadgeClicked(Message):
    """A badge was clicked: the dashboard opens its detail view."""

    def __init__(self, badge: str) -> None:
        super().__init__()
        self.badge = badge
        """The badge's id (``config-badge``, ``store-fault-badge``, ...)."""


class _Badge(Static):
    """One strip; a new text of the same one line is drawn without a new layout.

    Focusable, so an operator without a mouse reaches it with Tab and opens its detail with
    Enter, as on a row (a hidden badge is not in the focus chain).
    """

    can_focus = True
    BINDINGS: ClassVar[list[BindingType]] = [Binding("enter", "open", "Explain", show=False)]

    def __init__(self, *, id: str) -> None:
        super().__init__("", markup=False, id=id, classes="badge")
        self.text: str | None = None
        """What the badge says, or ``None`` while hidden."""

    def say(self, text: str | None) -> None:
        """Show ``text``, or hide the badge for ``None``."""
        if text == self.text:
            return
        shown_before = self.text is not None
        self.text = text
        self.set_class(text is not None, "-shown")
        # The countdown changes every second; only showing or hiding a badge moves the panels.
        self.update(text or "", layout=shown_before != (text is not None))

    def on_click(self, event: events.Click) -> None:
        """Ask for the badge's detail view."""
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        """Ask for the badge's detail view (Enter, or a click)."""
        if self.text is not None and self.id is not None:
            self.post_message(BadgeClicked(self.id))


class FaultBadges(Vertical):
    """The engine-link, store-fault and Discord-pause badges (the link one first: while it shows,
    the other two are as stale as the rest of the screen)."""

    DEFAULT_CSS = """
    FaultBadges {
        height: auto;
    }
    FaultBadges > .badge {
        display: none;
        height: 1;
        width: 1fr;
        padding: 0 1;
        color: auto 90%;
        text-style: bold;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    FaultBadges > .badge.-shown {
        display: block;
    }
    FaultBadges > .badge:focus {
        text-style: bold reverse;
    }
    FaultBadges > #link-badge {
        background: $engine-lost;
    }
    FaultBadges > #store-fault-badge {
        background: $store-fault;
    }
    FaultBadges > #discord-pause-badge {
        background: $discord-pause;
    }
    FaultBadges > #config-badge {
        background: $warning;
    }
    FaultBadges > #alert-badge {
        background: $error;
    }
    """

    def compose(self) -> ComposeResult:
        """Every badge, hidden."""
        yield _Badge(id="link-badge")
        yield _Badge(id="store-fault-badge")
        yield _Badge(id="discord-pause-badge")
        yield _Badge(id="config-badge")
        yield _Badge(id="alert-badge")

    def show(
        self,
        delivery: DeliveryView,
        now: float,
        link: LinkState | None = None,
        live_at: float | None = None,
        config: ConfigState | None = None,
        dismissed: tuple[str, ...] = (),
        alerts: AlertsView | None = None,
    ) -> None:
        """Show the badges that ``delivery``, ``link``, ``config`` and ``alerts`` call for at
        ``now`` (a rejected config change whose problems are ``dismissed`` is not shown)."""
        self.query_one("#link-badge", _Badge).say(
            None if link is None else link_text(link, live_at)
        )
        self.query_one("#store-fault-badge", _Badge).say(store_fault_text(delivery))
        self.query_one("#discord-pause-badge", _Badge).say(global_pause_text(delivery, now))
        self.query_one("#config-badge", _Badge).say(config_text(config, dismissed))
        self.query_one("#alert-badge", _Badge).say(alert_text(alerts, now))
