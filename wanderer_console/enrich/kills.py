"""Names, tickers and ship names for kill notifications, through the cache facade.

Killstream frames usually carry names; R2Z2 and ESI killmails carry only ids. Before a kill that
some map will be told about is rendered, :meth:`KillEnricher.prefetch` resolves what is missing
(one bulk ``/universe/names`` call for the misses, plus the corporation and alliance documents
that hold tickers), bounded by a timeout so a slow ESI delays a notification but never stalls
the pipeline. Rendering then reads the cache synchronously through :meth:`KillEnricher.names`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable
from typing import Any

from wanderer_console.delivery.formatting import Names
from wanderer_console.domain.killmail import Attacker, Killmail, Victim
from wanderer_console.enrich.cache import CacheFacade, route_key
from wanderer_console.enrich.esi import EsiError
from wanderer_console.http.deadline import bounded

__all__ = ["CacheSystemInfo", "KillEnricher"]

log = logging.getLogger(__name__)


async def _gathered(aws: list[Any]) -> list[Any]:
    """Every result or exception of ``aws``, run as tasks started from the caller's context
    (inside :func:`bounded`: under its deadline; a ``gather`` called outside would not be)."""
    return await asyncio.gather(*aws, return_exceptions=True)


def _parties(km: Killmail) -> list[Victim | Attacker]:
    """The parties a kill embed names: the victim, the final blow and the top damage."""
    parties: list[Victim | Attacker] = [km.victim]
    for attacker in (km.final_blow(), km.top_damage()):
        if attacker is not None and attacker not in parties:
            parties.append(attacker)
    return parties


def _needs_corporation_name(party: Victim | Attacker) -> bool:
    """A party without a pilot (a structure) is named by its corporation, which the killmail
    may identify by ticker only."""
    return (
        party.character_id is None
        and not party.character_name
        and bool(party.corporation_id)
        and not party.corporation_name
    )


class KillEnricher:
    """Fills the cache for one kill, then hands renderers a :class:`Names` view of it."""

    def __init__(self, cache: CacheFacade, *, timeout: float = 2.0) -> None:
        self.cache = cache
        self.timeout = timeout
        self.failures = 0
        """Prefetches that failed or timed out (the kill was rendered with what was known)."""

    @staticmethod
    def complete(km: Killmail) -> bool:
        """True when the killmail itself carries every name the embed shows (no look-up)."""
        if not km.solar_system_name:
            return False
        for party in _parties(km):
            if party.character_id and not party.character_name:
                return False
            if _needs_corporation_name(party):
                return False
            if party.ship_type_id and not party.ship_name:
                return False
            if party.corporation_id and not party.corporation_ticker:
                return False
            if party.alliance_id and not party.alliance_ticker:
                return False
        return True

    def _missing_ids(self, km: Killmail) -> tuple[set[int], set[int]]:
        names: set[int] = set()
        orgs: set[int] = set()
        for party in _parties(km):
            if party.character_id and not party.character_name:
                names.add(party.character_id)
            if party.corporation_id and _needs_corporation_name(party):
                names.add(party.corporation_id)
            if party.ship_type_id and not party.ship_name:
                names.add(party.ship_type_id)
            for org_id, ticker in (
                (party.corporation_id, party.corporation_ticker),
                (party.alliance_id, party.alliance_ticker),
            ):
                if org_id and not ticker:
                    if self.cache.peek_ticker(org_id) is None:
                        orgs.add(org_id)
                    else:
                        alliance = 99_000_000 <= org_id < 100_000_000
                        self.cache.count_hits("alliance" if alliance else "corporation", 1)
        if not km.solar_system_name:
            names.add(km.system_id)
        missing = {i for i in names if self.cache.peek_name(i) is None}
        self.cache.count_hits("name", len(names) - len(missing))  # answered without a load
        return missing, orgs

    async def prefetch(self, km: Killmail) -> None:
        """Resolve the kill's missing names and tickers into the cache (bounded, never raises)."""
        names, orgs = self._missing_ids(km)
        if not names and not orgs:
            return
        try:
            # Its requests end by the bound (a silent ESI's timeouts open its breaker).
            await bounded(self._load(names, orgs), self.timeout)
        except (EsiError, TimeoutError) as exc:
            self.failures += 1
            log.info(
                "names not resolved; rendering with what is known",
                extra={"ctx": {"killmail_id": km.killmail_id, "error": str(exc) or "timeout"}},
            )

    async def _load(self, names: Iterable[int], orgs: Iterable[int]) -> None:
        tasks: list[Any] = []
        if names:
            tasks.append(self.cache.names(names))
        for org_id in orgs:
            getter = self.cache.get_alliance if 99_000_000 <= org_id < 100_000_000 else None
            tasks.append((getter or self.cache.get_corporation)(org_id))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and len(errors) == len(results):
            raise errors[0] if isinstance(errors[0], EsiError) else EsiError(0, str(errors[0]))

    def names(self, km: Killmail) -> Names:
        """What the cache knows about the kill's ids, for the renderers."""
        names: dict[int, str] = {}
        tickers: dict[int, str] = {}
        ships: dict[int, str] = {}
        if self.complete(km):
            return Names()  # the killmail's own names win anyway
        for party in _parties(km):
            for entity in (party.character_id, party.corporation_id, party.alliance_id):
                if entity and (name := self.cache.peek_name(entity)):
                    names[entity] = name
            for org in (party.corporation_id, party.alliance_id):
                if org and (ticker := self.cache.peek_ticker(org)):
                    tickers[org] = ticker
            if party.ship_type_id and (ship := self.cache.peek_name(party.ship_type_id)):
                ships[party.ship_type_id] = ship
        if system := self.cache.peek_name(km.system_id):
            names[km.system_id] = system
        return Names(names=names, tickers=tickers, ship_names=ships)


class CacheSystemInfo:
    """The kill filters' :class:`~wanderer_console.pipeline.kill_facts.SystemInfo` over cached ESI.

    It only reads the cache (the rules are synchronous); what is not cached is unknown, and a
    filter that needs an unknown fact does not match. It is also their
    :class:`~wanderer_console.pipeline.kill_facts.RouteInfo`: stargate routes and system
    positions for the distance clauses, which the engine fetches (:meth:`prefetch`) before it
    decides a kill again.
    """

    def __init__(self, cache: CacheFacade, *, timeout: float = 2.0) -> None:
        self.cache = cache
        self.timeout = timeout
        self.failures = 0
        """Route and position look-ups that failed or timed out (the clause did not match)."""
        self.malformed = 0
        """Reads of a cached document field that was not a number (read as unknown)."""

    def _number(self, doc: dict[str, Any] | None, field: str, kind: type[int] | type[float]) -> Any:
        """``doc[field]`` as ``kind``, or ``None`` when absent or not a finite number.

        The rules read these synchronously for every decision: a ``ValueError`` here (ESI
        sending ``"high"`` for a security status) dropped the whole kill, the maps' own
        notifications with it. Unknown only fails the clause that asked."""
        value = doc.get(field) if isinstance(doc, dict) else None
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return kind(value)
        self.malformed += 1
        log.info(
            "an ESI document field is not a number; read as unknown",
            extra={"ctx": {"field": field, "value": str(value)[:50]}},
        )
        return None

    def jumps(self, origin: int, destination: int) -> tuple[bool, int | None]:
        """From the cached ``/route`` answer: ``(looked up, jumps or None for no route)``."""
        known, value = self.cache.lookup("route", route_key(origin, destination))
        if not known or value is None:
            return known, None
        return True, max(0, len(value["systems"]) - 1)

    def position(self, system_id: int) -> tuple[bool, tuple[float, float, float] | None]:
        """From the cached ``/universe/systems`` document's ``position`` (metres)."""
        known, doc = self.cache.lookup("system", system_id)
        point = doc.get("position") if isinstance(doc, dict) else None
        if not isinstance(point, dict):
            return known, None
        try:
            return known, (float(point["x"]), float(point["y"]), float(point["z"]))
        except (KeyError, TypeError, ValueError):
            return known, None

    async def prefetch(self, routes: set[tuple[int, int]], systems: set[int]) -> None:
        """Fetch the routes and system documents asked for (bounded by ``timeout``, never
        raises: what failed stays unknown and its clause does not match)."""
        tasks: list[Any] = [self.cache.get_route(o, d) for o, d in sorted(routes)]
        tasks += [self.cache.get_system(system) for system in sorted(systems)]
        try:
            results = await bounded(_gathered(tasks), self.timeout)
        except TimeoutError:
            self.failures += 1
            log.info("route look-ups timed out", extra={"ctx": {"routes": len(routes)}})
            return
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self.failures += len(errors)
            log.info(
                "route or position look-ups failed; their clauses do not match",
                extra={"ctx": {"failed": len(errors), "error": str(errors[0])}},
            )

    def region_id(self, system_id: int) -> int | None:
        """Not in the system document (it names the constellation): unknown."""
        return None

    def constellation_id(self, system_id: int) -> int | None:
        """From the cached ``/universe/systems`` document."""
        found: int | None = self._number(self.cache.peek_system(system_id), "constellation_id", int)
        return found

    def security_status(self, system_id: int) -> float | None:
        """From the cached ``/universe/systems`` document."""
        found: float | None = self._number(
            self.cache.peek_system(system_id), "security_status", float
        )
        return found

    def wormhole_class(self, system_id: int) -> int | None:
        """ESI does not carry wormhole classes; only the map's static info does."""
        del system_id
        return None

    def type_looked_up(self, type_id: int) -> bool:
        """The ``/universe/types`` document is cached (or that ESI does not know the type)."""
        return self.cache.lookup("type", type_id)[0]

    async def prefetch_types(self, type_ids: set[int]) -> None:
        """Fetch the type documents asked for (bounded by ``timeout``, never raises: what
        failed stays unknown and its clause does not match)."""
        tasks = [self.cache.get_type(type_id) for type_id in sorted(type_ids)]
        try:
            results = await bounded(_gathered(tasks), self.timeout)
        except TimeoutError:
            self.failures += 1
            log.info("type look-ups timed out", extra={"ctx": {"types": len(type_ids)}})
            return
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            self.failures += len(errors)
            log.info(
                "type look-ups failed; their group clauses do not match",
                extra={"ctx": {"failed": len(errors), "error": str(errors[0])}},
            )

    def group_id(self, type_id: int) -> int | None:
        """From the cached ``/universe/types`` document."""
        found: int | None = self._number(self.cache.peek_type(type_id), "group_id", int)
        return found
