"""Rendering and routing of ``custom`` events posted through the ingest API."""

from __future__ import annotations

from typing import Any, Final

from wanderer_console.config.routing import Route
from wanderer_console.delivery import embeds
from wanderer_console.domain.notification import NotificationType
from wanderer_console.ingest.items import CustomItem

__all__ = ["ROUTES", "SEVERITY_COLOURS", "render_custom"]

ROUTES: Final[dict[NotificationType, Route]] = {
    NotificationType.KILL: "system_kill",
    NotificationType.SYSTEM: "system",
    NotificationType.CHARACTER: "character",
    NotificationType.RALLY: "rally",
}
"""Which configured target a custom event of each notification type goes to."""

SEVERITY_COLOURS: Final[dict[str, int]] = {
    "info": 0x3498DB,
    "success": 0x2ECC71,
    "warning": 0xF1C40F,
    "critical": 0xE74C3C,
}
"""Embed colour per severity."""


def render_custom(item: CustomItem, *, map_name: str, username: str) -> dict[str, Any]:
    """A Discord message with one embed: the title, the body and the severity as colour."""
    embed: dict[str, Any] = {
        "title": item.title,
        "color": SEVERITY_COLOURS.get(item.severity, SEVERITY_COLOURS["info"]),
        "footer": {"text": f"{map_name} · {item.severity}"},
    }
    if item.body:
        embed["description"] = item.body
    return embeds.build_message([embed], username=username)
