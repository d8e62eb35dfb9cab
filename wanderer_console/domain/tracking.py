"""The tracking index: which maps watch which systems and characters.

Each map keeps its own systems (with custom and temporary names, which never expire while the
system is on the map) and tracked characters; the reverse indexes answer "which maps care about
this kill?" in O(1) per id.

Names are interned: a hub on three hundred maps, or a pilot on twenty, holds one copy of its
name, not one per map; an id only one map tracks keeps that map's name in the reverse index
instead of a set of one (a set costs 216 bytes: most pilots are on one map). The index also
notes which ids started or stopped being tracked by any map (:meth:`TrackingIndex.take_changed`),
so the killstream subscription follows a thousand maps loading by the ids each brought, not by
comparing every id tracked after each one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, KeysView
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = ["IdKind", "MapTracking", "TrackedCharacter", "TrackedSystem", "TrackingIndex"]

IdKind = Literal["systems", "characters"]
_CHANGED_MAX: Final = 100_000
"""Changed ids kept for the consumer; past this it is told to compare everything instead."""


def _intern(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


Tenants = str | set[str]
"""The maps tracking an id: the one map's name, or a set of two or more."""


def _as_set(tenants: Tenants | None) -> set[str]:
    if tenants is None:
        return set()
    return {tenants} if isinstance(tenants, str) else tenants


@dataclass(slots=True)
class TrackedSystem:
    """A system on a map."""

    solar_system_id: int
    name: str | None = None
    custom_name: str | None = None
    temporary_name: str | None = None
    system_class: int | None = None
    """Wanderer's class id from static info (1–6 C1–C6, 7/8/9 high/low/null, 12 Thera, …)."""
    security: float | None = None
    """Security status from static info."""
    region_id: int | None = None
    """Region from static info."""
    constellation_id: int | None = None
    """Constellation from static info."""
    is_shattered: bool | None = None
    """Shattered wormhole, from static info."""

    @property
    def display_name(self) -> str | None:
        """What the map shows: temporary, then custom, then the EVE name."""
        return self.temporary_name or self.custom_name or self.name


@dataclass(slots=True)
class TrackedCharacter:
    """A character tracked on a map (from REST; SSE only carries the internal id and name)."""

    eve_id: int
    name: str | None = None
    internal_id: str | None = None
    corporation_id: int | None = None
    corporation_ticker: str | None = None
    alliance_id: int | None = None
    alliance_ticker: str | None = None


@dataclass(slots=True)
class MapTracking:
    """Everything one map tracks."""

    tenant: str
    systems: dict[int, TrackedSystem] = field(default_factory=dict)
    characters: dict[int, TrackedCharacter] = field(default_factory=dict)

    def character_by_internal_id(self, internal_id: str) -> TrackedCharacter | None:
        """Find a character by the map's internal UUID."""
        for character in self.characters.values():
            if character.internal_id == internal_id:
                return character
        return None

    def character_by_name(self, name: str) -> TrackedCharacter | None:
        """Find a character by exact name."""
        for character in self.characters.values():
            if character.name == name:
                return character
        return None

    def find_character(
        self, eve_id: int | None, internal_id: str, name: str
    ) -> TrackedCharacter | None:
        """The character a map event names: by EVE id when it has one, else by the map's
        internal id, else by name."""
        if eve_id is not None and eve_id in self.characters:
            return self.characters[eve_id]
        return self.character_by_internal_id(internal_id) or self.character_by_name(name)


class TrackingIndex:
    """Per-map tracking plus reverse indexes over every map."""

    def __init__(self) -> None:
        self._maps: dict[str, MapTracking] = {}
        self._by_system: dict[int, Tenants] = {}
        self._by_character: dict[int, Tenants] = {}
        self._changed: dict[IdKind, set[int] | None] = {"systems": set(), "characters": set()}
        self._loads: dict[str, int] = {}
        self._begun: dict[str, int] = {}
        """Per map, the latest load that began asking the map server (:meth:`begin_load`)."""
        self._load_count = 0
        self._during: dict[str, list[tuple[Callable[..., None], tuple[Any, ...]]]] = {}
        """Per map being loaded, the changes made to it since the load began (map events
        decided meanwhile), in order: :meth:`replace` applies them again over what the load
        read, which may predate them."""

    def map(self, tenant: str) -> MapTracking:
        """The tracking of one map (created empty on first use)."""
        tracking = self._maps.get(tenant)
        if tracking is None:
            tracking = self._maps[tenant] = MapTracking(tenant)
        return tracking

    def tenants(self) -> list[str]:
        """Every map with tracking state."""
        return list(self._maps)

    def replace(
        self,
        tenant: str,
        systems: Iterable[TrackedSystem],
        characters: Iterable[TrackedCharacter],
        *,
        load: int | None = None,
    ) -> None:
        """Swap a map's whole state (initial load and full resync); it starts a new
        :meth:`generation` of the map: ``load``, as :meth:`begin_load` gave it before the state
        was asked for, else a new one.

        The changes made to the map since the load began (a map event decided while the load
        waited for the map server) are applied again over the state read: the load may have
        read the map before them, and replacing the state whole dropped them (a system added
        then was no longer tracked, its kills not followed, until the next reload)."""
        during = self._during.pop(tenant, None)  # not recorded again while rebuilt
        self.drop(tenant)
        self.map(tenant)  # a map that tracks nothing yet still exists
        if load is None:
            self._load_count += 1
            load = self._load_count
        self._loads[tenant] = load
        for system in systems:
            self.put_system(tenant, system)
        for character in characters:
            self.put_character(tenant, character)
        for change, args in during or ():
            change(*args)
        if during is not None and load < self._begun.get(tenant, 0):
            self._during[tenant] = during  # a later load still reads: they go over it too

    def generation(self, tenant: str) -> int:
        """Which load of the whole map (:meth:`replace`) the map's state comes from: greater
        for every later one, of any map (0 before the first). A map event read from the stream
        before the latest load is older than what that load found (see
        :class:`~wanderer_console.pipeline.map_updates.MapUpdates`)."""
        return self._loads.get(tenant, 0)

    def begin_load(self, tenant: str) -> int:
        """A load of the whole map starts asking the map server for its state: its
        :meth:`generation`, for :meth:`replace` once the state is read (or
        :meth:`abandon_load` if it fails). The map's changes are recorded until then."""
        self._load_count += 1
        self._begun[tenant] = self._load_count
        self._during.setdefault(tenant, [])
        return self._load_count

    def abandon_load(self, tenant: str, load: int) -> None:
        """The load :meth:`begin_load` gave ``load`` failed: stop recording the map's changes
        for it, unless a later load of the map began meanwhile."""
        if self._begun.get(tenant) == load:
            self._during.pop(tenant, None)

    def _record(self, tenant: str, change: Callable[..., None], *args: Any) -> None:
        """Keep a change made to a map being loaded, for :meth:`replace`."""
        during = self._during.get(tenant)
        if during is not None:
            during.append((change, (tenant, *args)))

    def arrival(self, tenant: str) -> int:
        """The generation to stamp on a map event arriving now (from the stream or the map's
        webhook): the latest load of the map begun, done or not. An event is older than a load
        only if it arrived before that load began asking the map server; one arriving while a
        load asks may be newer than what the load reads, and is applied over it as usual."""
        return max(self._loads.get(tenant, 0), self._begun.get(tenant, 0))

    def drop(self, tenant: str) -> None:
        """Forget a map entirely."""
        self._during.pop(tenant, None)
        tracking = self._maps.pop(tenant, None)
        if tracking is None:
            return
        for system_id in tracking.systems:
            self._discard(self._by_system, system_id, tenant, "systems")
        for eve_id in tracking.characters:
            self._discard(self._by_character, eve_id, tenant, "characters")

    def put_system(self, tenant: str, system: TrackedSystem) -> None:
        """Add or update a system; names already known are kept when the update lacks them."""
        self._record(tenant, self.put_system, system)
        tracking = self.map(tenant)
        old = tracking.systems.get(system.solar_system_id)
        if old is not None:
            system.name = system.name or old.name
            for attr in ("system_class", "security", "region_id", "constellation_id"):
                if getattr(system, attr) is None:
                    setattr(system, attr, getattr(old, attr))
            if system.is_shattered is None:
                system.is_shattered = old.is_shattered
        system.name = _intern(system.name)
        system.custom_name = _intern(system.custom_name)
        tracking.systems[system.solar_system_id] = system
        self._add(self._by_system, system.solar_system_id, tenant, "systems")

    def rename_system(
        self, tenant: str, solar_system_id: int, name: str | None, temporary_name: str | None
    ) -> None:
        """A tracked system's names changed on the map (``system_metadata_changed``): ``name``
        is its custom name unless it is the system's own; ``temporary_name`` replaces the
        old one. Recorded as the other changes are, so a load that read the map before the
        change does not undo it (:meth:`replace`)."""
        self._record(tenant, self.rename_system, solar_system_id, name, temporary_name)
        system = self.map(tenant).systems.get(solar_system_id)
        if system is not None:
            system.custom_name = _intern(name if name != system.name else None)
            system.temporary_name = temporary_name

    def remove_system(self, tenant: str, solar_system_id: int) -> None:
        """Take a system off a map."""
        self._record(tenant, self.remove_system, solar_system_id)
        self.map(tenant).systems.pop(solar_system_id, None)
        self._discard(self._by_system, solar_system_id, tenant, "systems")

    def put_character(self, tenant: str, character: TrackedCharacter) -> None:
        """Add or update a tracked character."""
        self._record(tenant, self.put_character, character)
        character.name = _intern(character.name)
        character.corporation_ticker = _intern(character.corporation_ticker)
        character.alliance_ticker = _intern(character.alliance_ticker)
        self.map(tenant).characters[character.eve_id] = character
        self._add(self._by_character, character.eve_id, tenant, "characters")

    def remove_character(self, tenant: str, eve_id: int) -> None:
        """Stop tracking a character on a map."""
        self._record(tenant, self.remove_character, eve_id)
        self.map(tenant).characters.pop(eve_id, None)
        self._discard(self._by_character, eve_id, tenant, "characters")

    def maps_for_system(self, system_id: int) -> set[str]:
        """Maps that track a system."""
        return _as_set(self._by_system.get(system_id))

    def tracks_system(self, system_id: int) -> bool:
        """True when some map tracks the system."""
        return system_id in self._by_system

    def maps_for_character(self, eve_id: int) -> set[str]:
        """Maps that track a character."""
        return _as_set(self._by_character.get(eve_id))

    def maps_for_characters(self, eve_ids: set[int]) -> set[str]:
        """Maps that track any of ``eve_ids`` (one set intersection, not a look-up per id)."""
        by_character = self._by_character
        found: set[str] = set()
        for eve_id in by_character.keys() & eve_ids:
            tenants = by_character[eve_id]
            if isinstance(tenants, str):
                found.add(tenants)
            else:
                found |= tenants
        return found

    def all_system_ids(self) -> set[int]:
        """Every system tracked by any map (the killstream subscription)."""
        return set(self._by_system)

    def all_character_ids(self) -> set[int]:
        """Every character tracked by any map."""
        return set(self._by_character)

    def tracks_character(self, eve_id: int) -> bool:
        """True when some map tracks the character."""
        return eve_id in self._by_character

    def tracked_ids(self, kind: IdKind) -> KeysView[int]:
        """Every system or character tracked by any map, as a live view (no copy)."""
        return (self._by_system if kind == "systems" else self._by_character).keys()

    def take_changed(self, kind: IdKind) -> set[int] | None:
        """Systems or characters that started or stopped being tracked by any map since the
        last call (each may have changed back since: look it up); ``None`` when too many
        changed to keep (compare with :meth:`tracked_ids` instead). For one consumer: the
        killstream subscription."""
        changed = self._changed[kind]
        self._changed[kind] = set()
        return changed

    def _add(self, index: dict[int, Tenants], key: int, tenant: str, kind: IdKind) -> None:
        tenants = index.get(key)
        if tenants is None:
            index[key] = tenant
            self._note(kind, key)
        elif isinstance(tenants, str):
            if tenants != tenant:
                index[key] = {tenants, tenant}
        else:
            tenants.add(tenant)

    def _discard(self, index: dict[int, Tenants], key: int, tenant: str, kind: IdKind) -> None:
        tenants = index.get(key)
        if tenants is None:
            return
        if isinstance(tenants, str):
            if tenants == tenant:
                del index[key]
                self._note(kind, key)
            return
        tenants.discard(tenant)
        if len(tenants) == 1:
            index[key] = next(iter(tenants))
        elif not tenants:
            del index[key]
            self._note(kind, key)

    def _note(self, kind: IdKind, key: int) -> None:
        changed = self._changed[kind]
        if changed is None:
            return
        changed.add(key)
        if len(changed) > _CHANGED_MAX:
            self._changed[kind] = None
