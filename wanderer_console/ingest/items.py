"""What sources hand to the pipeline: one parsed event plus the raw text it came from."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import MapEnvelope
from wanderer_console.telemetry.context import correlation_id as _correlation_id

__all__ = ["CustomItem", "Item", "KillItem", "MapEventItem"]


@dataclass(frozen=True, slots=True)
class MapEventItem:
    """A map event for one tenant."""

    tenant: str
    envelope: MapEnvelope
    raw: str
    source: str
    correlation_id: str = field(default_factory=_correlation_id, compare=False)
    """Follows the event into every log line and its outbox rows: the ``X-Request-ID`` of the
    request that brought it (bound by the HTTP surface), else a fresh id (32 hex digits)."""
    trace_parent: str | None = field(default=None, compare=False)
    """The W3C ``traceparent`` of the source's span while tracing is on (else ``None``)."""
    generation: int | None = field(default=None, compare=False)
    """The map's load (:meth:`~wanderer_console.domain.tracking.TrackingIndex.arrival`) when
    the event arrived, from the stream or the map's webhook; ``None`` from elsewhere. An event
    decided after a later load is older than that load's state and must not undo it."""


@dataclass(frozen=True, slots=True)
class KillItem:
    """A killmail from any kill source (shared by every map)."""

    killmail: Killmail
    raw: str
    source: str
    correlation_id: str = field(default_factory=_correlation_id, compare=False)
    """Follows the event into every log line and its outbox rows: the ``X-Request-ID`` of the
    request that brought it (bound by the HTTP surface), else a fresh id (32 hex digits)."""
    trace_parent: str | None = field(default=None, compare=False)
    """The W3C ``traceparent`` of the source's span while tracing is on (else ``None``)."""


@dataclass(frozen=True, slots=True)
class CustomItem:
    """An event another tool posted through the ingest API, rendered as a simple embed."""

    tenant: str
    event_id: str
    """Stored as the event's identity (already namespaced, e.g. ``api:<id>``)."""
    notification_type: str
    """``kill``, ``system``, ``character`` or ``rally``: which switch and route apply."""
    title: str
    body: str
    severity: str
    raw: str
    source: str
    done: asyncio.Future[bool] | None = field(default=None, compare=False)
    """Resolved by the engine with True (stored as new) or False (duplicate or failed)."""
    correlation_id: str = field(default_factory=_correlation_id, compare=False)
    """Follows the event into every log line and its outbox rows: the ``X-Request-ID`` of the
    request that brought it (bound by the HTTP surface), else a fresh id (32 hex digits)."""
    schema_version: str | None = None
    """The schema version the poster declared (stored in the event's own column)."""
    trace_parent: str | None = field(default=None, compare=False)
    """The W3C ``traceparent`` of the source's span while tracing is on (else ``None``)."""


Item = MapEventItem | KillItem | CustomItem
