"""In-memory state of the fake Wanderer map and its REST wire shapes (PROTOCOLS.md §2).

:class:`MapState` keeps the map's systems, connections and tracked characters and renders them as
the server's REST objects. It is pure (no I/O) so the HTTP layer in
:mod:`wanderer_console.sim.map_server` stays thin.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.universe import Character

__all__ = [
    "SSE_EVENT_TYPES",
    "MapState",
    "TrackedCharacter",
    "flatten_kill",
    "map_kill_payload",
    "iso_now",
    "static_info",
]

SSE_EVENT_TYPES: Final = frozenset(
    {
        "add_system", "deleted_system", "system_renamed", "system_metadata_changed",
        "connection_added", "connection_removed", "connection_updated", "character_added",
        "character_removed", "character_updated", "character_location_changed",
        "character_online_status_changed", "character_ship_changed",
        "character_ready_status_changed", "signature_added", "signature_removed",
        "signatures_updated", "map_kill", "acl_member_added", "acl_member_removed",
        "acl_member_updated", "rally_point_added", "rally_point_removed",
    }
)  # fmt: skip
"""Event types the map's SSE filter knows (PROTOCOLS.md §1.5)."""


def iso_now() -> str:
    """Current UTC time as ISO8601 with microseconds and ``Z`` (the envelope's ``timestamp``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(slots=True)
class TrackedCharacter:
    """A tracked pilot: the internal UUIDs plus the ``character`` object of the REST answer."""

    settings_id: str
    character_uuid: str
    eve_id: int
    name: str
    corporation_id: int | None = None
    corporation_ticker: str | None = None
    alliance_id: int | None = None
    alliance_ticker: str | None = None
    inserted_at: str = field(default_factory=iso_now)


class MapState:
    """Systems, connections and tracked characters of one map."""

    def __init__(self, map_id: str, generator: DataGenerator, rng: random.Random) -> None:
        self.map_id = map_id
        self.generator = generator
        self._rng = rng
        self.systems: dict[int, dict[str, Any]] = {}
        """solar_system_id -> REST system object, in insertion order."""
        self.connections: dict[str, dict[str, Any]] = {}
        """connection UUID -> REST connection object."""
        self.tracked: dict[str, TrackedCharacter] = {}
        """internal character UUID -> tracked pilot (only currently tracked ones)."""
        self._known: dict[str, TrackedCharacter] = {}

    def new_uuid(self) -> str:
        """A UUID4 string drawn from the seeded RNG (reproducible ids)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def random_position(self) -> tuple[int, int]:
        """A plausible (x, y) position on the map canvas."""
        return self._rng.randrange(0, 2000, 10), self._rng.randrange(0, 1200, 10)

    def system_name(self, solar_system_id: int) -> str:
        """The generator's name for a system (its id as text when out of range)."""
        try:
            return self.generator.system(solar_system_id).name
        except KeyError:
            return str(solar_system_id)

    # -- systems ---------------------------------------------------------------------------
    def add_system(
        self,
        solar_system_id: int,
        name: str | None = None,
        position: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """Put a system on the map (or make it visible again); return its REST object."""
        original = name or self.system_name(solar_system_id)
        x, y = position or self.random_position()
        now = iso_now()
        existing = self.systems.get(solar_system_id)
        if existing is not None:
            existing.update(visible=True, position_x=x, position_y=y, updated_at=now)
            return existing
        system = {
            "id": self.new_uuid(),
            "map_id": self.map_id,
            "solar_system_id": solar_system_id,
            "name": original,
            "original_name": original,
            "custom_name": None,
            "temporary_name": None,
            "description": None,
            "tag": None,
            "labels": None,
            "locked": False,
            "visible": True,
            "status": 0,
            "position_x": x,
            "position_y": y,
            "inserted_at": now,
            "updated_at": now,
        }
        self.systems[solar_system_id] = system
        return system

    def remove_system(self, solar_system_id: int) -> dict[str, Any] | None:
        """Take a system (and its connections) off the map; return the removed object."""
        removed = self.systems.pop(solar_system_id, None)
        for conn_id, conn in list(self.connections.items()):
            ends = (conn["solar_system_source"], conn["solar_system_target"])
            if solar_system_id in ends:
                del self.connections[conn_id]
        return removed

    def systems_payload(self) -> dict[str, Any]:
        """Body of ``GET /api/maps/{map}/systems``."""
        return {
            "data": {
                "systems": [s for s in self.systems.values() if s["visible"]],
                "connections": list(self.connections.values()),
            }
        }

    # -- connections -----------------------------------------------------------------------
    def apply_connection_added(self, payload: dict[str, Any]) -> None:
        """Record a ``connection_added``/``connection_updated`` payload."""
        conn_id = str(payload.get("connection_id") or self.new_uuid())
        now = iso_now()
        previous = self.connections.get(conn_id, {})
        self.connections[conn_id] = {
            "id": conn_id,
            "map_id": self.map_id,
            "solar_system_source": payload.get("solar_system_source_id"),
            "solar_system_target": payload.get("solar_system_target_id"),
            "mass_status": payload.get("mass_status", 0),
            "time_status": payload.get("time_status", 0),
            "ship_size_type": payload.get("ship_size_type", 2),
            "type": payload.get("type", 0),
            "wormhole_type": payload.get("wormhole_type"),
            "locked": payload.get("locked", False),
            "inserted_at": previous.get("inserted_at", now),
            "updated_at": now,
        }

    def apply_connection_removed(self, payload: dict[str, Any]) -> None:
        """Forget a connection named by ``connection_id`` or by its (unordered) end points."""
        conn_id = payload.get("connection_id")
        if conn_id in self.connections:
            del self.connections[conn_id]
            return
        ends = {payload.get("solar_system_source_id"), payload.get("solar_system_target_id")}
        for key, conn in list(self.connections.items()):
            if {conn["solar_system_source"], conn["solar_system_target"]} == ends:
                del self.connections[key]

    # -- characters ------------------------------------------------------------------------
    def track(
        self,
        eve_id: int,
        name: str,
        corporation_id: int | None = None,
        corporation_ticker: str | None = None,
        alliance_id: int | None = None,
        alliance_ticker: str | None = None,
    ) -> TrackedCharacter:
        """Track a pilot (re-using its internal UUID if it was tracked before)."""
        for known in self._known.values():
            if known.eve_id == eve_id:
                self.tracked[known.character_uuid] = known
                return known
        entry = TrackedCharacter(
            settings_id=self.new_uuid(),
            character_uuid=self.new_uuid(),
            eve_id=eve_id,
            name=name,
            corporation_id=corporation_id,
            corporation_ticker=corporation_ticker,
            alliance_id=alliance_id,
            alliance_ticker=alliance_ticker,
        )
        self._known[entry.character_uuid] = entry
        self.tracked[entry.character_uuid] = entry
        return entry

    def track_pilot(self, character: Character) -> TrackedCharacter:
        """Track a generator pilot, tickers looked up in the generator."""
        gen = self.generator
        return self.track(
            character.eve_id,
            character.name,
            character.corporation_id,
            gen.ticker(character.corporation_id),
            character.alliance_id,
            gen.ticker(character.alliance_id),
        )

    def track_known(self, character_uuid: str) -> TrackedCharacter | None:
        """Re-track a pilot known by internal UUID (a ``character_added`` for it)."""
        entry = self._known.get(character_uuid)
        if entry is not None:
            self.tracked[character_uuid] = entry
        return entry

    def untrack(self, character_uuid: str) -> TrackedCharacter | None:
        """Stop tracking a pilot; return it if it was tracked."""
        return self.tracked.pop(character_uuid, None)

    def by_eve_id(self, eve_id: int) -> TrackedCharacter | None:
        """The tracked pilot with this EVE id, if any."""
        for entry in self.tracked.values():
            if entry.eve_id == eve_id:
                return entry
        return None

    def tracked_payload(self) -> dict[str, Any]:
        """Body of ``GET /api/maps/{map}/tracked-characters`` (``eve_id`` is a string)."""
        rows = []
        for entry in self.tracked.values():
            rows.append(
                {
                    "id": entry.settings_id,
                    "map_id": self.map_id,
                    "character_id": entry.character_uuid,
                    "tracked": True,
                    "followed": False,
                    "inserted_at": entry.inserted_at,
                    "updated_at": entry.inserted_at,
                    "character": {
                        "eve_id": str(entry.eve_id),
                        "name": entry.name,
                        "corporation_id": entry.corporation_id,
                        "corporation_ticker": entry.corporation_ticker,
                        "alliance_id": entry.alliance_id,
                        "alliance_ticker": entry.alliance_ticker,
                    },
                }
            )
        return {"data": rows}


_DESTINATIONS = {
    "N110": "hs", "B274": "hs", "D845": "hs", "J244": "ls", "A239": "ls", "U210": "ls",
    "Z060": "ns", "V753": "c6", "W237": "c6", "B041": "c6", "V911": "c5", "H296": "c5",
    "E175": "c4", "H900": "c5", "O477": "c3", "Y683": "c4", "K346": "ns", "X877": "c4",
    "E545": "ns", "D382": "c2", "H121": "c1",
}  # fmt: skip


def static_info(generator: DataGenerator, system_id: int) -> dict[str, Any] | None:
    """``data`` of ``GET /api/common/system-static-info?id=N``, or ``None`` for unknown ids."""
    try:
        system = generator.system(system_id)
    except KeyError:
        return None
    details = []
    for code in system.statics:
        dest = _DESTINATIONS.get(code, "c3")
        details.append(
            {
                "name": code,
                "destination": {"id": dest, "name": dest.upper(), "short_name": dest.upper()},
                "properties": {
                    "lifetime": "16",
                    "mass_regeneration": 0,
                    "max_jump_mass": 375_000_000,
                    "max_mass": 2_000_000_000,
                },
            }
        )
    return {
        "solar_system_id": system.id,
        "solar_system_name": system.name,
        "solar_system_name_lc": system.name.lower(),
        "region_id": system.region_id,
        "region_name": system.region_name,
        "constellation_id": system.constellation_id,
        "constellation_name": system.constellation_name,
        "system_class": system.system_class,
        "security": f"{system.security_status:.1f}",
        "class_title": system.class_title,
        "type_description": f"Class {system.system_class}" if system.is_wormhole else None,
        "effect_name": system.effect_name,
        "effect_power": system.system_class if system.effect_name else None,
        "statics": list(system.statics),
        "static_details": details,
        "wandering": [],
        "is_shattered": system.is_shattered,
        "triglavian_invasion_status": "Normal",
        "sun_type_id": 45032,
    }


def flatten_kill(killmail: dict[str, Any], gen: DataGenerator) -> dict[str, Any]:
    """A wanderer-kills killmail as the map re-publishes it inside ``map_kill`` (§1.5.1)."""
    victim = killmail.get("victim") or {}
    attackers = killmail.get("attackers") or []
    final: dict[str, Any] = next((a for a in attackers if a.get("final_blow")), {})
    zkb = killmail.get("zkb") or {}
    flat: dict[str, Any] = {
        "killmail_id": killmail.get("killmail_id"),
        "kill_time": killmail.get("kill_time"),
        "solar_system_id": killmail.get("system_id"),
        "zkb": zkb,
    }
    for prefix, party in (("victim_", victim), ("final_blow_", final)):
        corp, alliance = party.get("corporation_id"), party.get("alliance_id")
        flat.update(
            {
                f"{prefix}char_id": party.get("character_id"),
                f"{prefix}char_name": party.get("character_name"),
                f"{prefix}corp_id": corp,
                f"{prefix}corp_ticker": party.get("corporation_ticker") or gen.ticker(corp),
                f"{prefix}corp_name": party.get("corporation_name"),
                f"{prefix}alliance_id": alliance,
                f"{prefix}alliance_ticker": party.get("alliance_ticker") or gen.ticker(alliance),
                f"{prefix}alliance_name": party.get("alliance_name"),
                f"{prefix}ship_type_id": party.get("ship_type_id"),
                f"{prefix}ship_name": party.get("ship_name"),
            }
        )
    flat.update(
        attacker_count=killmail.get("attacker_count", len(attackers)),
        total_value=zkb.get("totalValue"),
        npc=bool(zkb.get("npc", False)),
    )
    return flat


def map_kill_payload(killmails: list[dict[str, Any]], gen: DataGenerator) -> dict[str, Any]:
    """``map_kill`` payload of type ``killmail_update`` for a batch of killmails (§1.5.1)."""
    flat = [flatten_kill(k, gen) for k in killmails]
    return {
        "type": "killmail_update",
        "solar_system_id": flat[0]["solar_system_id"] if flat else None,
        "timestamp": iso_now(),
        "killmails": flat,
    }
