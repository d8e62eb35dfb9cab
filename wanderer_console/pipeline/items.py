"""What sources hand to the pipeline: one parsed event plus the raw text it came from."""

from __future__ import annotations

from dataclasses import dataclass

from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import MapEnvelope

__all__ = ["Item", "KillItem", "MapEventItem"]


@dataclass(frozen=True, slots=True)
class MapEventItem:
    """A map event for one tenant."""

    tenant: str
    envelope: MapEnvelope
    raw: str
    source: str


@dataclass(frozen=True, slots=True)
class KillItem:
    """A killmail from any kill source (shared by every map)."""

    killmail: Killmail
    raw: str
    source: str


Item = MapEventItem | KillItem
