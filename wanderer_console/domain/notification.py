"""Notifications: what the rules decided to tell a Discord target."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Notification", "NotificationType", "Target", "TargetKind"]


class NotificationType(StrEnum):
    """Kinds of notification; each map kind has a global and a per-map switch."""

    KILL = "kill"
    SYSTEM = "system"
    CHARACTER = "character"
    RALLY = "rally"
    ALERT = "alert"
    """The console's own alert, to the operations webhook (no switch: ``[alerts]`` says)."""


class TargetKind(StrEnum):
    """How a message reaches Discord."""

    WEBHOOK = "webhook"
    BOT_CHANNEL = "bot_channel"


@dataclass(frozen=True, slots=True)
class Target:
    """A Discord destination.

    ``address`` is the webhook URL (which contains a token, so it is a secret) or the channel id;
    ``key`` is a stable, secret-free name used for queues, metrics and the UI.
    """

    kind: TargetKind
    address: str
    tenant: str
    key: str = field(init=False, repr=False, compare=False)
    """Secret-free identity: webhook id or channel id, never the webhook token (parsed once,
    when the target is made: a kill notifying hundreds of maps asks each map's several
    times)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", _key(self.kind, self.address))


@functools.lru_cache(maxsize=8192)
def _key(kind: TargetKind, address: str) -> str:
    """:attr:`Target.key` of an address, parsed once (a kill notifying hundreds of maps asked
    for every map's target key several times)."""
    if kind is TargetKind.WEBHOOK:
        parts = address.rstrip("/").split("?")[0].split("/")
        webhook_id = parts[-2] if len(parts) >= 2 else "unknown"
        return f"webhook:{webhook_id}"
    return f"channel:{address}"


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to deliver: the Discord body plus where it goes and why."""

    tenant: str
    type: NotificationType
    dedup_key: str
    """Unique per tenant and target; the outbox refuses a second row with the same key."""
    target: Target
    body: dict[str, Any] = field(default_factory=dict)
    """The Discord message body (``content``, ``embeds``, ``allowed_mentions``)."""
