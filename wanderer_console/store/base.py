"""The storage contract: rows the rest of the console reads and writes."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["OutboxRow", "StoredEvent"]


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
