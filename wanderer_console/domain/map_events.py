"""Map events as the Wanderer map server sends them (PROTOCOLS.md §1.4–1.5).

The same envelope arrives over SSE and over webhooks. The server writes ``timestamp`` while its
docs say ``ts``; both are accepted. Payload models keep every field optional where the server may
omit it, so a partial payload never sinks a whole stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

__all__ = [
    "HANDLED_MAP_EVENT_TYPES",
    "KNOWN_MAP_EVENT_TYPES",
    "AddSystem",
    "CharacterAdded",
    "CharacterRemoved",
    "DeletedSystem",
    "MapEnvelope",
    "MapPayload",
    "RallyPointAdded",
    "RallyPointRemoved",
    "SystemMetadataChanged",
    "UnknownEventType",
    "parse_payload",
]


class _Lenient(BaseModel):
    """Base for wire models: unknown keys are kept, never an error."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class MapEnvelope(_Lenient):
    """The envelope of every map event (SSE ``data`` and webhook body)."""

    id: str = Field(min_length=1, max_length=64)
    """ULID of the event; time-ordered, used for dedup and as the resume cursor."""
    type: str = Field(min_length=1, max_length=64)
    map_id: str | None = None
    timestamp: datetime | None = Field(
        default=None, validation_alias=AliasChoices("timestamp", "ts")
    )
    """The server sends ``timestamp``; the OpenAPI document says ``ts``."""
    payload: dict[str, Any] = Field(default_factory=dict)


class AddSystem(_Lenient):
    """``add_system``: a system was put on the map. ``name`` is absent for manual adds."""

    solar_system_id: int
    name: str | None = None
    position_x: int | None = None
    position_y: int | None = None


class DeletedSystem(_Lenient):
    """``deleted_system``: every field but the id is null."""

    solar_system_id: int
    name: str | None = None


class SystemMetadataChanged(_Lenient):
    """``system_metadata_changed``: custom and temporary names, labels, status."""

    solar_system_id: int
    system_id: str | None = None
    name: str | None = None
    temporary_name: str | None = None
    labels: str | None = None
    description: str | None = None
    status: int | None = None
    locked: bool | None = None


class CharacterAdded(_Lenient):
    """``character_added``: only the internal UUID and the name (PROTOCOLS.md pitfall 7)."""

    id: str | None = None
    name: str | None = None
    character_eve_id: str | int | None = None
    eve_id: str | int | None = None

    @property
    def explicit_eve_id(self) -> int | None:
        """The EVE id when the event carries one (a newer server, a webhook), else ``None``."""
        for candidate in (self.character_eve_id, self.eve_id):
            try:
                value = int(candidate) if candidate is not None else 0
            except (TypeError, ValueError):
                continue
            if value > 0:
                return value
        return None


class CharacterRemoved(CharacterAdded):
    """``character_removed``: same shape as ``character_added``."""


class RallyPointAdded(_Lenient):
    """``rally_point_added``: someone called a rally."""

    rally_point_id: str | None = None
    solar_system_id: int
    system_id: str | None = None
    character_id: str | None = None
    character_name: str | None = None
    character_eve_id: str | int | None = None
    system_name: str | None = None
    message: str | None = None
    created_at: str | None = None


class RallyPointRemoved(_Lenient):
    """``rally_point_removed``: note the key ``id``, not ``rally_point_id``."""

    id: str | None = None
    solar_system_id: int | None = None
    system_name: str | None = None
    character_name: str | None = None


MapPayload = (
    AddSystem
    | DeletedSystem
    | SystemMetadataChanged
    | CharacterAdded
    | CharacterRemoved
    | RallyPointAdded
    | RallyPointRemoved
)

_PAYLOADS: Final[dict[str, type[MapPayload]]] = {
    "add_system": AddSystem,
    "deleted_system": DeletedSystem,
    "system_metadata_changed": SystemMetadataChanged,
    "character_added": CharacterAdded,
    "character_removed": CharacterRemoved,
    "rally_point_added": RallyPointAdded,
    "rally_point_removed": RallyPointRemoved,
}

HANDLED_MAP_EVENT_TYPES: Final[frozenset[str]] = frozenset(_PAYLOADS)
"""The types the console acts on (tracking and notifications): what a map stream asks for by
default (the SSE ``events`` filter); connections, signatures, ACL changes, pilots' locations,
ships and online states and ``map_kill`` batches are not asked for."""

KNOWN_MAP_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {
        *_PAYLOADS,
        "connected",
        "system_renamed",
        "connection_added",
        "connection_removed",
        "connection_updated",
        "character_updated",
        "characters_updated",
        "character_location_changed",
        "character_online_status_changed",
        "character_ship_changed",
        "character_ready_status_changed",
        "signature_added",
        "signature_removed",
        "signatures_updated",
        "map_kill",
        "acl_member_added",
        "acl_member_removed",
        "acl_member_updated",
    }
)
"""Every type the map server can name; anything else is counted as unknown."""


class UnknownEventType(ValueError):
    """Raised for an event type this build does not know; callers count and skip it."""


def parse_payload(envelope: MapEnvelope) -> MapPayload | None:
    """Parse the payload of a handled event type.

    Returns ``None`` for known types the console ignores (connections, signatures, …).
    Raises :class:`UnknownEventType` for types no server version sends and
    :class:`pydantic.ValidationError` for a malformed payload.
    """
    model = _PAYLOADS.get(envelope.type)
    if model is None:
        if envelope.type in KNOWN_MAP_EVENT_TYPES:
            return None
        raise UnknownEventType(f"unknown map event type {envelope.type!r}")
    return model.model_validate(envelope.payload)
