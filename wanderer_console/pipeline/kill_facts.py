"""What the kill filters know about a kill's system: static universe facts, looked up once.

:class:`SystemInfo` is where facts the ids do not tell come from (region, constellation,
security, wormhole class, ship groups: the ESI cache in the running console); a
:class:`KillFacts` gathers them for one kill lazily, so a map whose filters never ask costs
nothing, and every map that does ask shares the answers.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Final, Protocol, runtime_checkable

from wanderer_console.domain.eve import (
    THERA_SYSTEM_ID,
    SpaceFacts,
    is_kspace_system,
    space_facts,
)
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex

__all__ = [
    "ID_ONLY",
    "LIGHT_YEAR_M",
    "IdOnlySystemInfo",
    "KillFacts",
    "RouteInfo",
    "SystemInfo",
    "TypeInfo",
]

LIGHT_YEAR_M: Final = 9_460_730_472_580_800.0
"""Metres in a light-year (ESI system positions are in metres)."""
Position = tuple[float, float, float]


class SystemInfo(Protocol):
    """Static universe facts the filters may need; every method returns ``None`` when unknown."""

    def region_id(self, system_id: int) -> int | None:
        """Region of a solar system."""
        ...

    def constellation_id(self, system_id: int) -> int | None:
        """Constellation of a solar system."""
        ...

    def security_status(self, system_id: int) -> float | None:
        """ESI ``security_status`` of a solar system."""
        ...

    def wormhole_class(self, system_id: int) -> int | None:
        """SDE/Wanderer class id (1–6 C1–C6, 7/8/9 high/low/null, 12 Thera, 13 C13, …)."""
        ...

    def group_id(self, type_id: int) -> int | None:
        """Inventory group of a type (ship groups)."""
        ...


class IdOnlySystemInfo:
    """The default :class:`SystemInfo`: only what ids alone tell (Thera's id gives its class)."""

    def region_id(self, system_id: int) -> int | None:
        """Never known from the id."""
        return None

    def constellation_id(self, system_id: int) -> int | None:
        """Never known from the id."""
        return None

    def security_status(self, system_id: int) -> float | None:
        """Never known from the id."""
        return None

    def wormhole_class(self, system_id: int) -> int | None:
        """Thera (31000005) is class 12; nothing else is derivable from the id."""
        return 12 if system_id == THERA_SYSTEM_ID else None

    def group_id(self, type_id: int) -> int | None:
        """Never known from the id."""
        return None


ID_ONLY: Final = IdOnlySystemInfo()


@runtime_checkable
class RouteInfo(Protocol):
    """Stargate routes and system positions, for the distance clauses (``max_jumps``,
    ``max_distance_ly``). Each answer says whether it is known yet: the rules are synchronous, so
    what is not cached is fetched (:meth:`prefetch`) and the kill decided again."""

    def jumps(self, origin: int, destination: int) -> tuple[bool, int | None]:
        """``(looked up, jumps)``: jumps is ``None`` when no stargate route exists."""
        ...

    def position(self, system_id: int) -> tuple[bool, Position | None]:
        """``(looked up, (x, y, z) in metres)``; ``None`` when the system has none known."""
        ...

    async def prefetch(self, routes: set[tuple[int, int]], systems: set[int]) -> None:
        """Look up what :meth:`jumps` and :meth:`position` did not know (bounded, never raises)."""
        ...


@runtime_checkable
class TypeInfo(Protocol):
    """Inventory types looked up on demand, for the ship and weapon group clauses: what is not
    cached is fetched (:meth:`prefetch_types`) and the kill decided again."""

    def type_looked_up(self, type_id: int) -> bool:
        """The type's document was looked up (its group, or that it has none, is known)."""
        ...

    async def prefetch_types(self, type_ids: set[int]) -> None:
        """Look up the types :meth:`type_looked_up` said were not (bounded, never raises)."""
        ...


class KillFacts:
    """Facts about one kill, looked up lazily and shared by every map's filters."""

    def __init__(self, km: Killmail, index: TrackingIndex, info: SystemInfo) -> None:
        self.km = km
        self._index = index
        self._info = info
        self.missing_routes: set[tuple[int, int]] = set()
        """Routes a clause asked for that were not looked up yet (fetch, then decide again)."""
        self.missing_systems: set[int] = set()
        """Systems whose ESI document (position, security, constellation) a clause asked for
        and that were not looked up yet."""
        self.missing_types: set[int] = set()
        """Types whose group a clause asked for and that were not looked up yet."""
        self.missing_static: set[int] = set()
        """The kill's system when a clause asked for a static fact (class, region, security)
        and no map tracking it has its static info yet (fetch it, then decide again)."""
        self._attacker_ids: dict[str, frozenset[int]] = {}

    def attacker_ids(self, attr: str) -> frozenset[int]:
        """The attackers' ``alliance_id``, ``corporation_id`` or ``faction_id`` values (``attr``),
        unknown ones left out: made once per kill, asked by every map's party clauses."""
        found = self._attacker_ids.get(attr)
        if found is None:
            found = frozenset(
                value for a in self.km.attackers if (value := getattr(a, attr)) is not None
            )
            self._attacker_ids[attr] = found
        return found

    @cached_property
    def _routes(self) -> RouteInfo | None:
        # Asked only by a distance clause: a runtime protocol check costs microseconds a kill.
        return self._info if isinstance(self._info, RouteInfo) else None

    @cached_property
    def systems(self) -> list[TrackedSystem]:
        """The kill's system as every map that tracks it knows it (static info, names)."""
        sid = self.km.system_id
        found = (
            self._index.map(t).systems.get(sid) for t in sorted(self._index.maps_for_system(sid))
        )
        return [system for system in found if system is not None]

    def _tracked(self, attr: str) -> object:
        systems = self.systems
        if systems and all(system.system_class is None for system in systems):
            # Every system's static info has a class: none loaded yet for this one.
            self.missing_static.add(self.km.system_id)
        for system in systems:
            value = getattr(system, attr)
            if value is not None:
                return value
        return None

    @cached_property
    def names(self) -> list[str | None]:
        """Every name the kill's system goes by (EVE name, custom and temporary map labels)."""
        out: list[str | None] = [self.km.solar_system_name]
        for system in self.systems:
            out += [system.name, system.custom_name, system.temporary_name]
        return out

    @cached_property
    def region_id(self) -> int | None:
        """Region: map static info, else the provider."""
        value = self._tracked("region_id")
        return value if isinstance(value, int) else self._info.region_id(self.km.system_id)

    @cached_property
    def constellation_id(self) -> int | None:
        """Constellation: map static info, else the provider."""
        value = self._tracked("constellation_id")
        if isinstance(value, int):
            return value
        found = self._info.constellation_id(self.km.system_id)
        if found is None:
            self._system_document_wanted()
        return found

    def _system_document_wanted(self) -> None:
        """The provider knows nothing of the kill's system: if its ESI document was not looked
        up yet, add it to :attr:`missing_systems` (the document holds security, constellation
        and position)."""
        routes = self._routes
        sid = self.km.system_id
        if routes is not None and is_kspace_system(sid) and not routes.position(sid)[0]:
            self.missing_systems.add(sid)

    @cached_property
    def space(self) -> SpaceFacts:
        """Security band and J-space class: map static info, region, provider, id range."""
        sid = self.km.system_id
        class_id = self._tracked("system_class")
        security = self._tracked("security")
        shattered = self._tracked("is_shattered")
        if not isinstance(class_id, int):
            class_id = self._info.wormhole_class(sid)
        region = None if class_id is not None else self.region_id
        if not isinstance(security, float | int) and class_id is None and is_kspace_system(sid):
            security = self._info.security_status(sid)
            if security is None:
                self._system_document_wanted()
        return space_facts(
            sid,
            class_id=class_id,
            region_id=region,
            security_status=float(security) if isinstance(security, float | int) else None,
            is_shattered=shattered if isinstance(shattered, bool) else None,
        )

    @cached_property
    def _types(self) -> TypeInfo | None:
        # Asked only by a group clause: a runtime protocol check costs microseconds a kill.
        return self._info if isinstance(self._info, TypeInfo) else None

    def group_id(self, type_id: int | None) -> int | None:
        """Inventory group of a ship type (``None`` when unknown; one not looked up yet is
        added to :attr:`missing_types`)."""
        if type_id is None:
            return None
        group = self._info.group_id(type_id)
        types = self._types
        if group is None and types is not None and not types.type_looked_up(type_id):
            self.missing_types.add(type_id)
        return group

    def jumps(self, origin: int) -> int | None:
        """Stargate jumps from ``origin`` to the kill's system (``None``: no route, or not known
        yet, in which case the pair is added to :attr:`missing_routes`)."""
        destination = self.km.system_id
        if origin == destination:
            return 0
        if self._routes is None:
            return None
        known, jumps = self._routes.jumps(origin, destination)
        if not known:
            self.missing_routes.add((origin, destination))
        return jumps

    def distance_ly(self, origin: int) -> float | None:
        """Light-years from ``origin`` to the kill's system (``None`` when a position is unknown;
        one not looked up yet is added to :attr:`missing_systems`). A J-space system has no
        distance to k-space (its coordinates are another space's; no jump drive reaches it)."""
        if origin == self.km.system_id:
            return 0.0
        if self._routes is None or not is_kspace_system(self.km.system_id):
            return None
        points: list[Position | None] = []
        for system in (origin, self.km.system_id):
            known, point = self._routes.position(system)
            if not known:
                self.missing_systems.add(system)
            points.append(point)
        start, end = points
        if start is None or end is None:
            return None
        return math.dist(start, end) / LIGHT_YEAR_M
