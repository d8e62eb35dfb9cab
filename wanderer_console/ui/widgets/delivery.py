"""The delivery panel: one row per Discord target with its queue and rate-limit state, a line
per dead target saying why it is dead and how much it holds, and, while an operator's pause
holds, who paused and since when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.widgets import Static

from wanderer_console.console_api import DeliveryView, TargetView
from wanderer_console.ui.faults import DeadTarget, pause_origin, pause_phrase, target_health
from wanderer_console.ui.widgets.colours import coloured
from wanderer_console.ui.widgets.synced import FittedTable, NamedRow, clip

__all__ = ["DeadTargetNotes", "DeliveryTable", "PauseNote"]


class DeliveryTable(FittedTable):
    """The snapshot's ``delivery.targets``; a dead target is shown in the ``target-dead`` colour.

    A target is named by the map routes that post to it (``alpha/primary``), or by its key when
    the engine does not say; Enter on a row shows its key, address and errors; ``n`` opens the
    events browser on its notifications.

    "State" is what :func:`~wanderer_console.ui.faults.target_health` judges (the detail view
    judges the same): ``DEAD`` for a target Discord refused (401/403/404), else ``failing`` while
    Discord's last answer for it was an error (a 5xx, a 429, no answer, its breaker open) and
    notifications wait for it, else, for an hour after the last notification sent again after an
    unknown outcome, how many were since the engine started (``2 uncertain``), else ``ok``.

    A name too long for the panel (a map key may have 63 characters) ends in ``…``, so its
    figures and its state stay on screen; Enter on the row shows it whole.
    """

    DEFAULT_CSS = """
    DeliveryTable {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "notifications", "Its notifications", id="delivery.notifications"),
    ]

    COLUMNS = ("Target", "Pending", "Sent", "Sent/min", "429s", "State")
    NARROW = ("Target", "Pending", "Sent", "State")
    NARROW_BELOW = 60

    def _state(self, target: TargetView, now: float) -> Text | str:
        health = target_health(target, now)
        if health == "dead":
            return coloured(self, "DEAD", "target-dead", bold=True)
        if health == "failing":
            return coloured(self, "failing", "health-degraded")
        if health == "uncertain":
            return coloured(self, f"{target.uncertain} uncertain", "health-degraded")
        return "ok"

    def action_notifications(self) -> None:
        """The events browser on the highlighted target's notifications."""
        if self.row_count == 0:
            return
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        if key is not None:
            from wanderer_console.ui.app import WandererApp

            if isinstance(self.app, WandererApp):
                self.app.open_events(target=key)

    _targets: Mapping[str, TargetView] = {}
    _now: float = 0.0

    def on_resize(self, event: events.Resize) -> None:
        """Fit the columns to the new width and the names to the room left."""
        self._fit(event.size.width)
        self.show(self._targets, self._now)

    def show(self, targets: Mapping[str, TargetView], now: float) -> None:
        """Show ``targets`` as they are at ``now`` (wall time)."""
        self._targets = targets
        self._now = now
        ordered = sorted(targets.items(), key=lambda item: item[1].label or item[0])
        cells = [
            {
                "Target": target.label or key,
                "Pending": str(target.pending),
                "Sent": str(target.sent),
                "Sent/min": str(target.sent_last_minute),
                "429s": str(target.rate_limited),
                "State": self._state(target, now),
            }
            for key, target in ordered
        ]
        room = self.room_for("Target", cells, self._column_set or self.COLUMNS)
        rows: list[NamedRow] = []
        for (key, target), row in zip(ordered, cells, strict=True):
            name = clip(str(row["Target"]), room)
            row["Target"] = coloured(self, name, "target-dead") if target.disabled else name
            rows.append((key, row))
        self.show_named(rows)


class DeadTargetNotes(Static):
    """Under the table, one line per dead target: ``webhook:1: DEAD 404 … — held: 9``.

    Hidden while no target is dead. The lines wrap rather than clip: the reason is what tells the
    operator what to fix.
    """

    DEFAULT_CSS = """
    DeadTargetNotes {
        height: auto;
        max-height: 6;
        padding: 0 1;
        color: $target-dead;
        text-style: bold;
        display: none;
    }
    DeadTargetNotes.-shown {
        display: block;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        self._shown: tuple[DeadTarget, ...] = ()

    def show(self, dead: Sequence[DeadTarget]) -> None:
        """Describe ``dead``; redraw only when it changed."""
        wanted = tuple(dead)
        if wanted == self._shown:
            return
        self._shown = wanted
        self.set_class(bool(wanted), "-shown")
        self.update("\n".join(target.describe() for target in wanted))


class PauseNote(Static):
    """Under the table while an operator's pause holds: ``Paused by tui:alice@host since
    2026-12-04 03:12:09 UTC, kept across restarts``.

    The panel's subtitle says PAUSED; this says who to ask, for how long it has held, and
    whether a restart would send the backlog. Hidden while delivery runs, or when the engine
    does not say; it wraps rather than clips, as an actor's name may be long.
    """

    DEFAULT_CSS = """
    PauseNote {
        height: auto;
        max-height: 3;
        padding: 0 1;
        color: $warning;
        display: none;
    }
    PauseNote.-shown {
        display: block;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", markup=False, id=id)
        self._shown = ""

    def show(self, delivery: DeliveryView) -> None:
        """Describe the pause in ``delivery``; redraw only when it changed."""
        origin = pause_origin(delivery)
        if origin == self._shown:
            return
        self._shown = origin
        self.set_class(bool(origin), "-shown")
        phrase = pause_phrase(delivery) if origin else ""
        self.update(phrase[:1].upper() + phrase[1:])
