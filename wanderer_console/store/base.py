"""The storage contract: rows the rest of the console reads and writes."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from wanderer_console.domain.notification import Notification

__all__ = ["OutboxRow", "PendingWrite", "StoredEvent"]


class StoredEvent(NamedTuple):
    """One accepted event, as kept in the event log."""

    tenant_id: str
    """Map key, or ``*`` for killmails (shared by every map)."""
    event_id: str
    """Stable identity: the map event ULID, ``kill:<killmail_id>``, or an ingest event id."""
    source: str
    """Where it came from: ``sse:<map>``, ``killstream``, ``r2z2``, ``api``."""
    type: str
    """Event type (``add_system``, ``killmail``, …)."""
    received_at: float
    """Unix time of receipt."""
    payload: str
    """The raw JSON as received."""


class OutboxRow(NamedTuple):
    """A notification waiting for (or done with) delivery."""

    id: int
    tenant_id: str
    dedup_key: str
    type: str
    target_kind: str
    target_key: str
    body: str
    attempts: int
    correlation_id: str | None = None
    """The correlation id of the event that caused it (``None`` for rows written before v5)."""
    created_at: float = 0.0
    """Unix time the notification was written to the outbox."""
    send_id: str | None = None
    """Set while the row is bound to one message (and its nonce) that may have reached Discord."""
    uncertain: int = 0
    """Sends of this row whose outcome was never known (a timeout, a crash mid-request)."""
    sending_at: float | None = None
    """When the message bound to ``send_id`` was first sent (the nonce window runs from it)."""


class PendingWrite(NamedTuple):
    """An event decided by the pipeline and not yet written: the unit of a batched commit."""

    event: StoredEvent
    notifications: list[Notification]
    cursor: tuple[str, str] | None = None
    """``(stream, value)`` to advance with the event."""
    done: asyncio.Future[bool] | None = None
    """Settled with True (new) or False (duplicate) once written (ingest API callers)."""
    correlation_id: str | None = None
    """Stored with each of the event's outbox rows so delivery logs can name it."""
