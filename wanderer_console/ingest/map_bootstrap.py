"""Each map's feed: its initial load over REST, its live SSE stream, and reloads when needed.

A map is loaded over REST (systems and tracked characters) into the tracking index before its
stream starts, retried with backoff while the map API cannot answer (the reason shows on the
connection). After a long gap the stream reconnects through the same load; a character refresh
asks the REST API again when the stream reports a change it does not carry in full.

**Many maps.** At most ``load_concurrency`` loads run at once (``console.map_load_concurrency``),
and each map's first load waits a random delay first, up to ``jitter_per_map`` seconds per map
started and never more than ``jitter_cap`` (2 ms a map: nothing for one map, up to a second
for 500 and more), so a restart with a thousand maps asks the map server for them in a steady
stream rather than all at once (the map client's rate limit paces the requests themselves).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from cachetools import TTLCache
from pydantic import ValidationError

from wanderer_console.config.model import MapSettings
from wanderer_console.domain.map_events import (
    AddSystem,
    CharacterAdded,
    CharacterRemoved,
    UnknownEventType,
    parse_payload,
)
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.items import Item, MapEventItem
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient
from wanderer_console.ingest.map_sse import SHARED_RNG, MapSseSource
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["MapFeeds"]

log = logging.getLogger("wanderer_console.runtime")

Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]


class MapFeeds:
    """The maps' REST clients and SSE sources, by tenant."""

    def __init__(
        self,
        index: TrackingIndex,
        store: Store,
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        spawn: Spawn,
        on_loaded: Callable[[str], None],
        resync_after: Callable[[], float],
        load_concurrency: int = 8,
        rng: random.Random | None = None,
        on_connected_point: Callable[[str, str], None] | None = None,
        on_heard: Callable[[str, float], None] | None = None,
    ) -> None:
        self._index = index
        self._store = store
        self._sink = sink
        self._metrics = metrics
        self._spawn = spawn
        self._on_loaded = on_loaded
        self._resync_after = resync_after
        self._on_connected_point = on_connected_point
        """Given to each stream (:class:`MapSseSource`): where a stream with no cursor keeps
        its ``connected`` point as one."""
        self._on_heard = on_heard
        """Given to each stream: where it keeps the point it was last heard caught up."""
        self.rest: dict[str, MapRestClient] = {}
        self.sources: dict[str, MapSseSource] = {}
        self.load_concurrency = max(1, load_concurrency)
        self._loads = asyncio.Semaphore(self.load_concurrency)
        self.jitter_per_map = 0.002
        """Seconds of start-up jitter per map started (tests set 0)."""
        self.jitter_cap = 1.0
        """The most any map's first load waits before it asks for its slot."""
        self._rng = rng or SHARED_RNG
        self.loading = 0
        """Loads running now."""
        self.loading_peak = 0
        """The most loads that ever ran at once."""
        self.load_calls = 0
        """Loads started (first loads, retries and resyncs)."""
        self._static_info: TTLCache[tuple[str, int], dict[str, Any]] = TTLCache(
            maxsize=20_000, ttl=86_400.0
        )
        """Systems' static information, shared by every map (it does not change)."""

    async def _prepared(self, tenant: str, item: Item) -> None:
        """Queue ``item`` once what the pipeline will ask the map API for is at hand.

        A system added needs its static information, a pilot the map added and the index does
        not know yet needs the map's tracked characters. Asked here, on the map's own stream
        task, a slow map API holds only this map's stream; asked by the pipeline, it held every
        map's events and every kill queued behind them. The pipeline then finds the answer in
        the shared cache or the index (and asks again itself only if this failed).
        """
        if isinstance(item, MapEventItem):
            try:
                payload = parse_payload(item.envelope)
            except (UnknownEventType, ValidationError):
                payload = None  # the pipeline counts it (unknown type, bad payload) and skips it
            if isinstance(payload, AddSystem):
                await self.rest[tenant].static_info(payload.solar_system_id)
            elif isinstance(payload, CharacterAdded) and not isinstance(payload, CharacterRemoved):
                known = self._index.map(tenant).find_character(
                    payload.explicit_eve_id, payload.id or "", payload.name or ""
                )
                if known is None:
                    await self.refresh_characters(tenant)
        await self._sink(item)

    def start(self, tenant: str, map_settings: MapSettings, http: HttpClient) -> MapRestClient:
        """Build the map's clients and start its feed task; return its REST client."""
        self.rest[tenant] = rest = MapRestClient(http, map_settings, static_cache=self._static_info)
        self.sources[tenant] = MapSseSource(
            tenant,
            map_settings,
            http,
            self._store,
            functools.partial(self._prepared, tenant),
            self._metrics,
            on_resync=functools.partial(self.load, tenant),
            resync_after=self._resync_after(),
            generation=functools.partial(self._index.arrival, tenant),
            on_connected_point=self._on_connected_point,
            on_heard=self._on_heard,
        )
        self._spawn(f"map:{tenant}", functools.partial(self._run, tenant))
        return rest

    @contextlib.asynccontextmanager
    async def _load_slot(self) -> AsyncIterator[None]:
        async with self._loads:
            self.loading += 1
            self.loading_peak = max(self.loading_peak, self.loading)
            try:
                yield
            finally:
                self.loading -= 1

    def start_delay(self) -> float:
        """A map's random wait before its first load (see the module docstring)."""
        bound = min(self.jitter_cap, self.jitter_per_map * len(self.sources))
        return self._rng.uniform(0.0, bound) if bound > 0 else 0.0

    async def load(self, tenant: str) -> None:
        """Load the map's systems and tracked characters into the index (one of at most
        ``load_concurrency`` at once)."""
        rest = self.rest[tenant]
        async with self._load_slot():
            self.load_calls += 1
            # An event arriving from here on may be newer than what is read: not older than
            # this load (TrackingIndex.arrival).
            load = self._index.begin_load(tenant)
            source = self.sources.get(tenant)
            if source is not None:
                source.loading(time.time())  # its first connect backfills from here
            try:
                systems = await rest.systems()
                characters = await rest.tracked_characters()
            except BaseException:
                self._index.abandon_load(tenant, load)
                raise
        self._index.replace(tenant, systems, characters, load=load)
        log.info(
            "map loaded",
            extra={
                "ctx": {"tenant": tenant, "systems": len(systems), "characters": len(characters)}
            },
        )
        self._on_loaded(tenant)

    async def refresh_characters(self, tenant: str) -> None:
        """Add tracked characters the map knows and the index does not (never raises).

        Not once a load of the map that began after this refresh asked has replaced the map's
        state (a reload ending while a map event's look-up waits): that load read the map
        later, and merging this older answer into it tracked again a pilot the map had dropped
        in between, which the event then notified as added."""
        asked = self._index.arrival(tenant)
        try:
            characters = await self.rest[tenant].tracked_characters()
        except (MapApiError, TransportError) as exc:
            log.warning(
                "tracked characters refresh failed",
                extra={"ctx": {"tenant": tenant, "error": str(exc)}},
            )
            return
        if self._index.generation(tenant) > asked:
            log.debug(
                "tracked characters refresh older than the map's reload; the reload's kept",
                extra={"ctx": {"tenant": tenant}},
            )
            return
        tracking = self._index.map(tenant)
        for character in characters:
            if character.eve_id not in tracking.characters:
                self._index.put_character(tenant, character)

    async def _run(self, tenant: str) -> None:
        backoff = Backoff(1.0, 60.0, rng=SHARED_RNG)
        delay = self.start_delay()
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            try:
                await self.load(tenant)
                break
            except (MapApiError, TransportError) as exc:
                self.sources[tenant].health.last_error = f"initial load failed: {exc}"
                if isinstance(exc, MapApiError) and exc.status == 404:
                    # Not a passing fault: the map is not there. Said as an error, with the
                    # fix; retried at the slowest pace in case the map is created meanwhile.
                    log.error(
                        "map not found; fix the configuration",
                        extra={"ctx": {"tenant": tenant, "error": str(exc)}},
                    )
                    await asyncio.sleep(backoff.cap)
                    continue
                log.warning(
                    "map load failed; retrying",
                    extra={"ctx": {"tenant": tenant, "error": str(exc)}},
                )
                await asyncio.sleep(backoff.next_delay())
        await self.sources[tenant].run()

    def stop(self, tenant: str) -> None:
        """Forget a map whose feed task was cancelled (its lease went to another instance): its
        clients and source go, so views and readiness stop reporting it."""
        self.rest.pop(tenant, None)
        self.sources.pop(tenant, None)
