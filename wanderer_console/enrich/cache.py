"""Cache facade for enrichment data: one cachetools ``TLRUCache`` per namespace.

* Keys carry a cache version, so bumping it invalidates everything older (also what was
  persisted).
* A miss calls the loader (the :class:`~wanderer_console.enrich.esi.EsiClient`) and keeps the
  answer until the ESI ``Expires`` (else a per-namespace default TTL). A "does not exist" answer
  is kept for ``negative_ttl``.
* Single flight: concurrent misses for one key share one loader call, which ends by the latest
  deadline (:mod:`~wanderer_console.http.deadline`) of the callers waiting for it; each caller
  stops waiting at its own.
* Counters per namespace (hits, misses, hit ratio, evictions, expirations, size, latency) for the
  runtime snapshot, mirrored into Prometheus when a registry is given.
* :meth:`CacheFacade.warm` preloads tracked pilots, their corporations and alliances, then
  systems; :meth:`save_warm` / :meth:`load_warm` persist live entries so a restart starts warm.

Renderers use the synchronous ``peek_*`` methods: they never wait for the network.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson
from cachetools import TLRUCache
from prometheus_client import CollectorRegistry

from wanderer_console.enrich.cache_stats import CacheTelemetry
from wanderer_console.enrich.esi import NAMES_BATCH, EsiError, EsiResult
from wanderer_console.http.deadline import Deadline, current_deadline, ends_by

__all__ = ["NAMESPACES", "CacheFacade", "CacheStore", "EntityLoader", "route_key"]

log = logging.getLogger(__name__)

NAMESPACES: Final[tuple[str, ...]] = (
    "character",
    "corporation",
    "alliance",
    "system",
    "type",
    "name",
    "route",
    "recent_kills",
    "appraisal",
    "affiliation",
)
"""Entity namespaces (one loader route each) plus ``name`` for bulk ``/universe/names``,
``route`` for stargate routes (keyed by :func:`route_key`) and ``recent_kills`` for a system's
recent kills (:mod:`~wanderer_console.enrich.recent_kills`, put by its owner, never loaded);
``affiliation``: a pilot's ``(corporation id, alliance id)`` from bulk warming."""

_NAME_CATEGORY: Final = {
    "character": "character",
    "corporation": "corporation",
    "alliance": "alliance",
    "system": "solar_system",
    "type": "inventory_type",
}
_DEFAULT_TTL: Final = {
    "character": 3600.0,
    "corporation": 3600.0,
    "alliance": 3600.0,
    "system": 86_400.0,
    "type": 86_400.0,
    "name": 86_400.0,
    "route": 86_400.0,
    "recent_kills": 300.0,
    "appraisal": 6 * 3600.0,
    "affiliation": 3600.0,
}


def route_key(origin: int, destination: int) -> int:
    """One integer for an (origin, destination) pair of system ids (each below 2**32)."""
    return (int(origin) << 32) | int(destination)


def _entity_id(value: Any) -> int | None:
    """An id an ESI document names (``corporation_id``, ``alliance_id``), or ``None`` when
    absent or not a positive whole number: warming reads them with no one to catch a
    ``ValueError``, and one raised stopped it before the systems (and restarted it into the
    same error for ever)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _persisted_value(ns: str, data: Any) -> Any:
    """A saved value in the shape its namespace holds in memory; ``ValueError`` otherwise.

    The renderers read cached values synchronously (``peek_name`` takes a name's first item,
    ``peek_ticker`` calls ``.get``): a row of another shape (a hand edit, a build that saved
    another one) either named a pilot wrongly or raised, dropping every kill naming that id.
    """
    if ns == "name":
        if (
            isinstance(data, list)
            and len(data) == 2
            and all(isinstance(part, str) and part for part in data)
        ):
            return (data[0], data[1])
    elif ns == "affiliation":
        if (
            isinstance(data, list)
            and len(data) == 2
            and all(part is None or type(part) is int for part in data)
            and data[0] is not None
        ):
            return (data[0], data[1])
    elif ns in ("recent_kills", "appraisal"):
        if isinstance(data, list):
            return data
    elif isinstance(data, dict):  # an ESI document, or a route's {"systems": [...]}
        return data
    raise ValueError(f"a saved {ns} entry of the wrong shape")


class EntityLoader(Protocol):
    """What the facade needs from ESI (:class:`~wanderer_console.enrich.esi.EsiClient`)."""

    async def character(self, character_id: int) -> EsiResult: ...
    async def corporation(self, corporation_id: int) -> EsiResult: ...
    async def alliance(self, alliance_id: int) -> EsiResult: ...
    async def system(self, system_id: int) -> EsiResult: ...
    async def type(self, type_id: int) -> EsiResult: ...
    async def names(self, ids: Iterable[int]) -> dict[int, tuple[str, str]]: ...
    async def affiliation(self, ids: Iterable[int]) -> dict[int, tuple[int, int | None]]: ...
    async def route(self, origin: int, destination: int) -> EsiResult: ...


CacheRow = tuple[str, str, int, str, float]
"""``(namespace, key, version, value_json, expires_at)``."""


class CacheStore(Protocol):
    """Persistence of warm entries (implemented by the :class:`~wanderer_console.store.Store`)."""

    def save_cache_entries(self, rows: Iterable[CacheRow]) -> int: ...
    def load_cache_entries(self, version: int, now: float) -> list[CacheRow]: ...
    def prune_cache_entries(self, version: int, now: float) -> int: ...
    @property
    def write_fault(self) -> object | None:
        """Why the store cannot write right now (``None`` while writes succeed)."""
        ...


@dataclass(slots=True)
class _Entry:
    value: Any
    """Entity JSON, ``(name, category)`` for ``name``, or ``None`` for "does not exist"."""
    deadline: float


_Loaded = dict[str, Any] | None
"""What a load gives: the entity's document, or ``None`` when ESI does not know the id."""


@dataclass(slots=True)
class _Attempt:
    """One sending of a shared load: the deadline its requests end by (``None``: none)."""

    limit: Deadline | None
    failed: asyncio.Future[EsiError]
    """Its error, when it failed by its deadline and the load is sent again for a later caller."""

    @classmethod
    def under(cls, limit: Deadline | None) -> _Attempt:
        """An attempt to be sent under ``limit``."""
        return cls(limit, asyncio.get_running_loop().create_future())


@dataclass(slots=True)
class _Flight:
    """A load callers share: the deadlines of those waiting for it (``None``: none) and the
    attempt under way."""

    waiting: list[Deadline | None]
    attempt: _Attempt

    def latest(self) -> Deadline | None:
        """The latest deadline of the callers waiting (``None``: one has none, or none wait:
        the load then fills the cache for the next ones)."""
        if not self.waiting or None in self.waiting:
            return None
        return max((limit for limit in self.waiting if limit is not None), key=lambda d: d.at)

    def outlasts(self, ended: Deadline | None) -> bool:
        """True when an attempt under the deadline ``ended`` failed by it and a caller still
        waiting has time left: a later caller that joined while it ran."""
        now = time.monotonic()
        if ended is None or now < ended.at or not self.waiting:
            return False
        latest = self.latest()
        return latest is None or latest.at > now


async def _wait(task: asyncio.Task[_Loaded], flight: _Flight, limit: Deadline | None) -> _Loaded:
    """``task``'s result for a caller whose deadline is ``limit``, which it stops waiting at.

    An attempt that ends by the caller's deadline is waited for to its end, so its error is the
    request's own (and the host's breaker has counted it before the caller goes on); one sent
    for a later caller, only until the caller's deadline: an :class:`EsiError` (timeout) then.
    The task is never cancelled here: the other callers wait for it.
    """
    while True:
        attempt = flight.attempt
        timeout = None
        if limit is not None and (attempt.limit is None or attempt.limit.at > limit.at):
            timeout = max(limit.at - time.monotonic(), 0.0)
        waiting: set[asyncio.Future[Any]] = {task, attempt.failed}
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            return task.result()
        if attempt.failed not in done:
            raise EsiError(0, "timeout: no answer before the caller's deadline")
        if limit is not None and time.monotonic() >= limit.at:
            raise attempt.failed.result()


def _deadline(_key: tuple[int, int], entry: _Entry, _now: float) -> float:
    return entry.deadline


class _CountingCache(TLRUCache[tuple[int, int], _Entry]):
    """A ``TLRUCache`` that expires each entry at its own deadline and reports size evictions
    and expirations.

    Per-entry deadlines (ESI's ``Expires``) are what the cache honours, so they are the cache's
    own time-to-use: expiring walks only what is due (a heap), where a ``TTLCache`` with one TTL
    for all had to be swept entry by entry for the deadlines it did not know (64 ms of a held
    event loop per sweep for the 49,000 entries of a thousand maps, after every warming).
    """

    def __init__(
        self,
        maxsize: int,
        timer: Callable[[], float],
        on_evict: Callable[[], None],
        on_expire: Callable[[int], None],
    ) -> None:
        super().__init__(maxsize=maxsize, ttu=_deadline, timer=timer)
        self._on_evict = on_evict
        self._on_expire = on_expire

    def popitem(self) -> tuple[tuple[int, int], _Entry]:
        item = super().popitem()
        self._on_evict()
        return item

    def expire(self, time: float | None = None) -> list[tuple[tuple[int, int], _Entry]]:
        expired = list(super().expire(time))
        if expired:
            self._on_expire(len(expired))
        return expired


class CacheFacade:
    """Namespaced, versioned, single-flight cache in front of an :class:`EntityLoader`.

    ``clock`` is wall time by default because persisted expiry times must survive a restart.
    """

    def __init__(
        self,
        loader: EntityLoader | None = None,
        *,
        version: int = 1,
        maxsize: int | Mapping[str, int] = 10_000,
        default_ttl: Mapping[str, float] | None = None,
        max_ttl: float = 7 * 86_400.0,
        min_ttl: float = 5.0,
        negative_ttl: float = 300.0,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.loader = loader
        self.version = version
        self._clock = clock
        self._max_ttl = max_ttl
        self._min_ttl = min_ttl
        self._negative_ttl = negative_ttl
        self._default_ttl = {**_DEFAULT_TTL, **(default_ttl or {})}
        self.telemetry = CacheTelemetry(NAMESPACES, registry)
        """Counters per namespace (mirrored into Prometheus when a registry is given)."""
        self._caches: dict[str, _CountingCache] = {}
        for ns in NAMESPACES:
            size = maxsize if isinstance(maxsize, int) else maxsize.get(ns, 10_000)
            self._caches[ns] = _CountingCache(
                size,
                clock,
                on_evict=functools.partial(self.telemetry.evicted, ns),
                on_expire=functools.partial(self.telemetry.expired, ns),
            )
            self.telemetry.size_from(ns, self._caches[ns].__len__)
        self._inflight: dict[tuple[str, int, int], tuple[asyncio.Task[_Loaded], _Flight]] = {}
        """The load under way per key, and who waits for it."""
        self._pinned: dict[str, set[int]] = {ns: set() for ns in NAMESPACES}
        self._kept: dict[str, dict[int, _Entry]] = {ns: {} for ns in NAMESPACES}
        """Pinned entries by namespace and id (also in the size-bounded cache while it holds
        them)."""
        self._unsaved: set[tuple[str, int]] = set()
        """Entries put since the last save (:meth:`save_changed` writes only those)."""
        self._unsaved_limit = 2 * sum(int(cache.maxsize) for cache in self._caches.values())
        """Past this many, :attr:`_unsaved` forgets the entries the cache no longer holds."""
        self._warming: dict[str, Any] = {"total": 0, "done": 0, "failed": 0, "running": False}

    # -- raw entries ---------------------------------------------------------------------------

    def _lookup(self, ns: str, entity_id: int) -> _Entry | None:
        cache = self._caches[ns]
        key = (self.version, entity_id)
        entry = cache.get(key)
        if entry is None:
            entry = self._kept[ns].get(entity_id)  # pinned: never evicted for size
            if entry is None:
                return None
        if entry.deadline <= self._clock():
            cache.pop(key, None)
            self._kept[ns].pop(entity_id, None)
            self.telemetry.expired(ns, 1)
            return None
        return entry

    def _put(self, ns: str, entity_id: int, value: Any, ttl: float) -> None:
        ttl = min(max(ttl, 0.0), self._max_ttl)
        if ttl <= 0:
            return
        entry = _Entry(value, self._clock() + ttl)
        self._caches[ns][(self.version, entity_id)] = entry
        if entity_id in self._pinned[ns]:
            self._kept[ns][entity_id] = entry
        self._unsaved.add((ns, entity_id))
        if len(self._unsaved) > self._unsaved_limit:
            self._forget_unsaved_gone()

    def _forget_unsaved_gone(self) -> None:
        """Keep only the unsaved entries the cache still holds (a save writes nothing else).

        While saves are skipped (a store that cannot write, a disk nearly full), every id put
        stayed here, evicted or not: one per pilot, corporation and type seen, without bound.
        Pruned at twice the caches' size, it keeps at most their size, and the pruning costs
        each put O(1) on average.
        """
        self._unsaved = {
            (ns, entity_id)
            for ns, entity_id in self._unsaved
            if (self.version, entity_id) in self._caches[ns]
        }

    # -- critical data -------------------------------------------------------------------------

    def pin(self, namespace: str, ids: Iterable[int]) -> None:
        """Keep the entries of ``ids`` in ``namespace`` whatever the size bound (the tracked
        pilots and systems: what every notification of a map needs; bounded by the maps). Only
        their TTL drops them, and :meth:`refresh_pinned` reloads them before it. Replaces the
        namespace's previous pins."""
        wanted = {int(i) for i in ids}
        kept = self._kept[namespace]
        for gone in set(kept) - wanted:
            del kept[gone]
        self._pinned[namespace] = wanted
        cache = self._caches[namespace]
        for entity_id in wanted - set(kept):
            entry = cache.get((self.version, entity_id))
            if entry is not None:
                kept[entity_id] = entry

    def pinned(self) -> dict[str, int]:
        """How many pinned entries are held per namespace (namespaces with pins only)."""
        return {ns: len(self._kept[ns]) for ns in NAMESPACES if self._pinned[ns]}

    def count_hits(self, namespace: str, count: int) -> None:
        """Count ``count`` look-ups a caller answered with ``peek_*`` as hits: the enricher
        peeks before it loads, and only what it loads would count otherwise (every counted
        look-up a miss, the hit ratio near 0 however warm the cache)."""
        if count > 0:
            self.telemetry.peeked(namespace, count)

    def lookup_deadline(self, namespace: str, key: int) -> float | None:
        """When the cached entry of ``key`` expires (``None``: not cached)."""
        entry = self._lookup(namespace, int(key))
        return None if entry is None else entry.deadline

    def pinned_wanted(self) -> dict[str, int]:
        """How many ids are pinned per namespace (namespaces with pins only)."""
        return {ns: len(ids) for ns, ids in self._pinned.items() if ids}

    def entry_sample(self, size: int) -> dict[str, tuple[int, list[Any]]]:
        """Per namespace: how many entries it holds and the values of up to ``size`` of them
        (the oldest; for the memory estimate, without copying the cache)."""
        out: dict[str, tuple[int, list[Any]]] = {}
        for ns, cache in self._caches.items():
            values = [entry.value for entry in itertools.islice(cache.values(), size)]
            out[ns] = (len(cache), values)
        return out

    async def refresh_pinned(self, within: float, *, concurrency: int = 4) -> int:
        """Reload the pinned entries that expire within ``within`` seconds (and the pinned ids
        not held at all); return how many were reloaded. Failures are counted and skipped.

        At most ``concurrency`` loads run at once, the ids not held first, then the soonest to
        expire: a thousand maps pin some 20,000 pilots, and one task per id (the whole set
        waiting in the ESI client's token bucket) cost tens of MB and a busy loop for the
        quarter of an hour ESI's pace takes. An entry stays readable while its reload runs (it
        is replaced when the new one arrives), so a notification rendered meanwhile still has
        the name; an id loaded by someone else in the meantime is skipped.
        """

        def remaining(ns: str, entity_id: int) -> float:
            entry = self._kept[ns].get(entity_id)
            return -math.inf if entry is None else entry.deadline - self._clock()

        due = sorted(
            (
                (left, ns, entity_id)
                for ns, ids in self._pinned.items()
                for entity_id in ids
                if (left := remaining(ns, entity_id)) <= within
            ),
            key=lambda item: item[0],
        )
        names = [entity_id for _, ns, entity_id in due if ns == "name"]
        pending = iter([item for item in due if item[1] != "name"])
        reloaded = 0
        for start in range(0, len(names), NAMES_BATCH):  # names: a thousand a call
            try:
                reloaded += len(await self._load_names(names[start : start + NAMES_BATCH]))
            except EsiError:
                continue

        async def worker() -> None:
            nonlocal reloaded
            for _, ns, entity_id in pending:
                if entity_id not in self._pinned[ns] or remaining(ns, entity_id) > within:
                    continue  # unpinned, or loaded by someone else meanwhile
                try:
                    await self._shared_load(ns, entity_id)
                except EsiError:
                    continue
                reloaded += 1

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(due))))))
        return reloaded

    def put_with_ttl(self, namespace: str, key: int, value: Any, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (capped at ``max_ttl``)."""
        if namespace not in self._caches:
            raise KeyError(f"unknown cache namespace {namespace!r}")
        self._put(namespace, int(key), value, ttl)

    def peek(self, namespace: str, key: int) -> Any:
        """The cached value or ``None``; never loads, never counts as a hit or miss."""
        if namespace not in self._caches:
            raise KeyError(f"unknown cache namespace {namespace!r}")
        entry = self._lookup(namespace, int(key))
        return None if entry is None else entry.value

    def lookup(self, namespace: str, key: int) -> tuple[bool, Any]:
        """``(cached, value)``: tells "not looked up" from a cached "does not exist" (``None``);
        never loads, never counts."""
        if namespace not in self._caches:
            raise KeyError(f"unknown cache namespace {namespace!r}")
        entry = self._lookup(namespace, int(key))
        return (False, None) if entry is None else (True, entry.value)

    def peek_system(self, system_id: int) -> dict[str, Any] | None:
        """Cached ``GET /universe/systems/{id}`` document, if any."""
        return self.peek("system", system_id)  # type: ignore[no-any-return]

    def peek_type(self, type_id: int) -> dict[str, Any] | None:
        """Cached ``GET /universe/types/{id}`` document, if any."""
        return self.peek("type", type_id)  # type: ignore[no-any-return]

    def peek_name(self, entity_id: int) -> str | None:
        """A cached name of any kind (bulk names or an entity document), if any."""
        found = self.peek("name", entity_id)
        return None if found is None else str(found[0])

    def peek_ticker(self, entity_id: int) -> str | None:
        """Cached ticker of a corporation or alliance, if any."""
        for ns in ("corporation", "alliance"):
            doc = self.peek(ns, entity_id)
            if doc is not None and doc.get("ticker"):
                return str(doc["ticker"])
        return None

    # -- loading -------------------------------------------------------------------------------

    def _ttl_for(self, ns: str, result: EsiResult) -> float:
        if result.data is None:
            return self._negative_ttl
        if result.expires_at is not None:
            return min(max(result.expires_at - self._clock(), self._min_ttl), self._max_ttl)
        return self._default_ttl[ns]

    async def _load_entity(self, ns: str, entity_id: int) -> dict[str, Any] | None:
        if self.loader is None:
            raise EsiError(0, "no ESI loader configured")
        started = time.perf_counter()
        self.telemetry.load_started(ns)
        try:
            if ns == "route":
                origin, destination = entity_id >> 32, entity_id & 0xFFFFFFFF
                result: EsiResult = await self.loader.route(origin, destination)
            else:
                result = await getattr(self.loader, ns)(entity_id)
        except EsiError:
            self.telemetry.load_failed(ns)
            raise
        finally:
            self.telemetry.load_finished(ns, started)
        ttl = self._ttl_for(ns, result)
        self._put(ns, entity_id, result.data, ttl)
        if ns != "route" and result.data is not None and isinstance(result.data.get("name"), str):
            self._put("name", entity_id, (result.data["name"], _NAME_CATEGORY[ns]), ttl)
        return result.data

    def _join(
        self, ns: str, entity_id: int, limit: Deadline | None
    ) -> tuple[asyncio.Task[_Loaded], _Flight]:
        """The load of ``entity_id`` under way (started when there is none), with a caller whose
        deadline is ``limit`` counted among those waiting for it."""
        key = (ns, self.version, entity_id)
        running = self._inflight.get(key)
        # A load that has just ended is still listed until its done callback runs (a loop step
        # later): a caller arriving in between starts a load of its own rather than take the
        # ended one's error, a timeout of another caller's deadline.
        if running is not None and not running[0].done():
            self.telemetry.coalesced(ns)
            running[1].waiting.append(limit)
            return running
        flight = _Flight([limit], _Attempt.under(limit))
        task = asyncio.ensure_future(self._load_shared(ns, entity_id, flight))
        self._inflight[key] = (task, flight)

        def done(finished: asyncio.Task[_Loaded]) -> None:
            if key in self._inflight and self._inflight[key][0] is finished:
                del self._inflight[key]
            if not finished.cancelled():
                finished.exception()  # mark retrieved: waiters may all have gone

        task.add_done_callback(done)
        return task, flight

    async def _load_shared(self, ns: str, entity_id: int, flight: _Flight) -> _Loaded:
        """Load for every caller waiting in ``flight``: under the latest of their deadlines.

        The task copied the context of the caller that started it, that caller's deadline with
        it: a caller with a longer bound (or none) got that caller's timeout, though it would
        have waited for the answer. An attempt's requests cannot outlive the deadline they were
        sent under, so when one ends by it while a caller who joined meanwhile still has time,
        the load is sent again under that caller's deadline: one request at a time whoever asks.
        """
        while True:
            attempt = flight.attempt
            try:
                with ends_by(attempt.limit):
                    return await self._load_entity(ns, entity_id)
            except EsiError as error:
                if not flight.outlasts(attempt.limit):
                    raise
                flight.attempt = _Attempt.under(flight.latest())
                attempt.failed.set_result(error)

    async def _shared_load(self, ns: str, entity_id: int) -> _Loaded:
        """The loaded value of ``entity_id``, from the load concurrent callers share; an
        :class:`EsiError` (timeout) when this caller's deadline comes first.

        One caller giving up must not cancel the load the others wait for (:func:`_wait`).
        """
        limit = current_deadline()
        task, flight = self._join(ns, entity_id, limit)
        try:
            return await _wait(task, flight, limit)
        finally:
            flight.waiting.remove(limit)

    async def cancel_loads(self) -> None:
        """Cancel the lookups still in flight and wait for them (the engine is stopping).

        A load outlives the caller that started it (others may share it), so a stop that only
        cancels its callers would leave it running into closed HTTP clients.
        """
        tasks = [task for task, _ in self._inflight.values()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)

    async def _get(self, ns: str, entity_id: int, *, count: bool = True) -> dict[str, Any] | None:
        started = time.perf_counter()
        entity_id = int(entity_id)
        entry = self._lookup(ns, entity_id)
        if entry is not None:
            if count:
                self.telemetry.hit(ns, started)
            return entry.value  # type: ignore[no-any-return]
        if count:
            self.telemetry.miss(ns, entity_id)
        return await self._shared_load(ns, entity_id)

    async def get_character(self, character_id: int) -> dict[str, Any] | None:
        """``GET /characters/{id}`` document; ``None`` if ESI does not know the id.

        Raises :class:`~wanderer_console.enrich.esi.EsiError` when ESI gives no usable answer.
        """
        return await self._get("character", character_id)

    async def get_corporation(self, corporation_id: int) -> dict[str, Any] | None:
        """``GET /corporations/{id}`` document; ``None`` if unknown; raises ``EsiError``."""
        return await self._get("corporation", corporation_id)

    async def get_alliance(self, alliance_id: int) -> dict[str, Any] | None:
        """``GET /alliances/{id}`` document; ``None`` if unknown; raises ``EsiError``."""
        return await self._get("alliance", alliance_id)

    async def get_system(self, system_id: int) -> dict[str, Any] | None:
        """``GET /universe/systems/{id}`` document; ``None`` if unknown; raises ``EsiError``."""
        return await self._get("system", system_id)

    async def get_type(self, type_id: int) -> dict[str, Any] | None:
        """``GET /universe/types/{id}`` document; ``None`` if unknown; raises ``EsiError``."""
        return await self._get("type", type_id)

    async def get_route(self, origin: int, destination: int) -> list[int] | None:
        """The stargate route ``[origin, ..., destination]`` (``GET /route/{o}/{d}/``), ``None``
        when there is none; one ESI call per pair while the answer is fresh (its ``Expires``).
        Raises :class:`~wanderer_console.enrich.esi.EsiError` when ESI gives no usable answer."""
        found = await self._get("route", route_key(origin, destination))
        return None if found is None else [int(system) for system in found["systems"]]

    async def names(self, ids: Iterable[int], *, count: bool = True) -> dict[int, tuple[str, str]]:
        """``id -> (name, category)`` for the ids ESI knows, one bulk call for all misses.

        Unknown ids are remembered for ``negative_ttl`` and left out of the answer. Raises
        :class:`~wanderer_console.enrich.esi.EsiError` when ESI gives no usable answer.
        ``count=False``: neither hits nor misses are counted (warming).
        """
        result: dict[int, tuple[str, str]] = {}
        missing: list[int] = []
        for raw in dict.fromkeys(int(i) for i in ids):
            started = time.perf_counter()
            entry = self._lookup("name", raw)
            if entry is None:
                if count:
                    self.telemetry.miss("name", raw)
                missing.append(raw)
                continue
            if count:
                self.telemetry.hit("name", started)
            if entry.value is not None:
                result[raw] = (str(entry.value[0]), str(entry.value[1]))
        if not missing:
            return result
        result.update(await self._load_names(missing))
        return result

    async def _load_names(self, missing: list[int]) -> dict[int, tuple[str, str]]:
        """Ask ESI for the names of ``missing`` (in bulk) and put every answer, the unknown ids
        as "does not exist" for ``negative_ttl``."""
        result: dict[int, tuple[str, str]] = {}
        if self.loader is None:
            raise EsiError(0, "no ESI loader configured")
        started = time.perf_counter()
        self.telemetry.load_started("name")
        try:
            found = await self.loader.names(missing)
        except EsiError:
            self.telemetry.load_failed("name")
            raise
        finally:
            self.telemetry.load_finished("name", started)
        ttl = self._default_ttl["name"]
        for entity_id in missing:
            hit = found.get(entity_id)
            self._put("name", entity_id, hit, ttl if hit is not None else self._negative_ttl)
            if hit is not None:
                result[entity_id] = hit
        return result

    # -- versions, maintenance -------------------------------------------------------------------

    def bump_version(self, version: int | None = None) -> int:
        """Switch to a newer cache version and drop every entry of older ones."""
        new = self.version + 1 if version is None else version
        if new <= self.version:
            raise ValueError(f"cache version must grow (now {self.version}, asked {new})")
        self.version = new
        for ns, cache in self._caches.items():
            self.telemetry.invalidated(ns, len(cache))
            cache.clear()
            self._kept[ns].clear()
        return new

    def expire(self) -> int:
        """Drop every entry past its TTL (counted as expirations); return how many."""
        now = self._clock()
        dropped = 0
        for cache in self._caches.values():
            dropped += len(cache.expire(now))
        return dropped

    # -- warming and persistence -----------------------------------------------------------------

    async def warm(
        self,
        character_ids: Iterable[int],
        system_ids: Iterable[int] = (),
        *,
        type_ids: Iterable[int] = (),
        concurrency: int = 8,
    ) -> dict[str, Any]:
        """Load tracked pilots (their names and affiliations in bulk, a thousand a call: a
        thousand maps track some 20,000 pilots, a document each took 20,000 calls), then their
        corporations and alliances, then systems, then ``type_ids`` (ship types).

        Failures are counted and skipped. Progress is ``stats()["warming"]``. Warming loads do
        not count as misses (they would drown the hit ratio operators look at).
        """
        chars = list(dict.fromkeys(int(c) for c in character_ids))
        systems = list(dict.fromkeys(int(s) for s in system_ids))
        state = self._warming = {
            "total": len(chars) + len(systems),
            "done": 0,
            "failed": 0,
            "running": True,
        }
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(ns: str, entity_id: int) -> dict[str, Any] | None:
            async with gate:
                try:
                    return await self._get(ns, entity_id, count=False)
                except EsiError as exc:
                    state["failed"] += 1
                    log.info(
                        "cache warming skipped an entity",
                        extra={"ctx": {"namespace": ns, "id": entity_id, "error": str(exc)}},
                    )
                    return None
                finally:
                    state["done"] += 1

        async def pilots(batch: list[int]) -> dict[int, tuple[int, int | None]]:
            """The batch's names (one bulk call) and affiliations (one more): what a
            notification shows of a pilot. A batch ESI refuses falls back to a document per
            pilot, which skips only the ids it does not know."""
            found: dict[int, tuple[int, int | None]] = {}
            for pilot in batch:
                entry = self._lookup("affiliation", pilot)
                if entry is not None and entry.value is not None:
                    found[pilot] = (int(entry.value[0]), entry.value[1])
            asked = [c for c in batch if c not in found]
            try:
                if self.loader is None:
                    raise EsiError(0, "no ESI loader configured")
                await self._load_names([c for c in batch if self._lookup("name", c) is None])
                if asked:
                    fresh = await self.loader.affiliation(asked)
                    ttl = self._default_ttl["affiliation"]
                    for pilot, (corp, alliance) in fresh.items():
                        self._put("affiliation", pilot, (corp, alliance), ttl)
                    found.update(fresh)
            except EsiError as exc:
                log.info(
                    "cache warming: a bulk pilot look-up failed; loading them one by one",
                    extra={"ctx": {"pilots": len(batch), "error": str(exc)}},
                )
                docs = await asyncio.gather(*(one("character", c) for c in batch))
                return {
                    c: (corporation, _entity_id(d.get("alliance_id")))
                    for c, d in zip(batch, docs, strict=True)
                    if d and (corporation := _entity_id(d.get("corporation_id"))) is not None
                }
            state["done"] += len(batch)
            return found

        try:
            affiliations: dict[int, tuple[int, int | None]] = {}
            if chars:
                for start in range(0, len(chars), NAMES_BATCH):
                    affiliations.update(await pilots(chars[start : start + NAMES_BATCH]))
            corp_ids = {corp for corp, _ in affiliations.values()}
            alliance_ids = {int(a) for _, a in affiliations.values() if a}
            state["total"] += len(corp_ids)
            corps = await asyncio.gather(*(one("corporation", c) for c in sorted(corp_ids)))
            for doc in corps:
                if doc and (alliance := _entity_id(doc.get("alliance_id"))) is not None:
                    alliance_ids.add(alliance)
            state["total"] += len(alliance_ids)
            await asyncio.gather(*(one("alliance", a) for a in sorted(alliance_ids)))
            await asyncio.gather(*(one("system", s) for s in systems))
            types = list(dict.fromkeys(int(t) for t in type_ids))
            state["total"] += len(types)
            await asyncio.gather(*(one("type", t) for t in types))
        finally:
            state["running"] = False
        return dict(state)

    def save_warm(self, store: CacheStore, *, limit: int = 100_000) -> int:
        """Persist every live, positive entry of the current version; return the row count."""
        now = self._clock()
        rows: list[CacheRow] = []
        for ns, cache in self._caches.items():
            cache.expire()
            for key, entry in list(cache.items()):
                version, entity_id = key
                if version != self.version or entry.value is None or entry.deadline <= now:
                    continue
                rows.append(
                    (
                        ns,
                        str(entity_id),
                        version,
                        orjson.dumps(entry.value).decode(),
                        entry.deadline,
                    )
                )
                if len(rows) >= limit:
                    break
        store.prune_cache_entries(self.version, now)
        return store.save_cache_entries(rows)

    async def save_changed(self, store: CacheStore, *, chunk: int = 500) -> int:
        """Persist the entries put since the last save, ``chunk`` rows a transaction with the
        loop free between them; return the row count.

        The whole cache of a thousand maps is some 25,000 entries: written at once, it held the
        event loop (every source, the pipeline, delivery) for half a second to a second and a
        half, each time. Only what changed is written, in small steps.
        """
        unsaved, self._unsaved = self._unsaved, set()
        now = self._clock()
        saved = 0
        try:
            store.prune_cache_entries(self.version, now)
            rows: list[CacheRow] = []
            for ns, entity_id in unsaved:
                entry = self._caches[ns].get((self.version, entity_id))
                if entry is None or entry.value is None or entry.deadline <= now:
                    continue
                value = orjson.dumps(entry.value).decode()
                rows.append((ns, str(entity_id), self.version, value, entry.deadline))
                if len(rows) >= chunk:
                    saved += store.save_cache_entries(rows)
                    rows = []
                    await asyncio.sleep(0)
            if rows:
                saved += store.save_cache_entries(rows)
        except BaseException:
            # Not all written (a full disk): the next save writes them all again (an upsert).
            self._unsaved |= unsaved
            raise
        return saved

    def load_warm(self, store: CacheStore) -> int:
        """Load persisted entries of the current version that are still live; return how many."""
        now = self._clock()
        loaded = skipped = 0
        for ns, key, _version, value, expires_at in store.load_cache_entries(self.version, now):
            if ns not in self._caches:
                continue
            try:
                entity_id = int(key)
                data = _persisted_value(ns, orjson.loads(value))
            except (ValueError, orjson.JSONDecodeError):
                skipped += 1
                continue
            self._put(ns, entity_id, data, expires_at - now)
            loaded += 1
        if skipped:
            # Only ESI calls are lost: those ids are asked for again when a kill needs them.
            log.warning(
                "saved cache rows of the wrong shape skipped",
                extra={"ctx": {"skipped": skipped, "loaded": loaded}},
            )
        self._unsaved.clear()  # what was just read from the store is there already
        return loaded

    # -- reporting -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters per namespace (``route`` once used), totals and warming progress (for
        ``runtime.snapshot()``)."""
        sizes = {ns: (len(cache), int(cache.maxsize)) for ns, cache in self._caches.items()}
        report = self.telemetry.report(sizes)
        route = report["namespaces"].get("route")
        if route is not None and not (route["size"] or route["hits"] or route["misses"]):
            # Only distance trackers use it: a console without them is not shown an empty row.
            del report["namespaces"]["route"]
        return {
            "version": self.version,
            **report,
            "inflight": len(self._inflight),
            "warming": {
                "total": self._warming["total"],
                "done": self._warming["done"],
                "failed": self._warming["failed"],
                "running": self._warming["running"],
            },
        }

    def insights(self, top: int = 10) -> dict[str, Any]:
        """Hit ratio per namespace and the most-missed keys (what to warm or cache longer)."""
        return self.telemetry.insights(top)
