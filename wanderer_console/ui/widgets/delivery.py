"""The delivery panel: one row per Discord target with its queue and rate-limit state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wanderer_console.ui.widgets.colours import coloured
from wanderer_console.ui.widgets.synced import Row, SyncedTable

__all__ = ["DeliveryTable"]

_COLUMNS = ("Target", "Pending", "Sent", "Sent/min", "429s", "Disabled")


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


class DeliveryTable(SyncedTable):
    """The snapshot's ``delivery.targets``; a disabled target is shown in the ``down`` colour."""

    DEFAULT_CSS = """
    DeliveryTable {
        height: 1fr;
    }
    """

    def on_mount(self) -> None:
        """Set up the columns."""
        self.cursor_type = "row"
        self.zebra_stripes = True
        self.add_columns(*_COLUMNS)

    def show(self, targets: Mapping[str, Mapping[str, Any]]) -> None:
        """Show ``targets``."""
        rows: list[Row] = []
        for key, target in sorted(targets.items()):
            disabled = target.get("disabled")
            rows.append(
                (
                    key,
                    (
                        coloured(self, key, "health-down") if disabled else key,
                        str(target.get("pending", 0)),
                        str(target.get("sent", 0)),
                        str(target.get("sent_last_minute", 0)),
                        str(target.get("rate_limited", 0)),
                        coloured(self, _clip(str(disabled), 12), "health-down", bold=True)
                        if disabled
                        else "-",
                    ),
                )
            )
        self.show_rows(rows)
