"""Each map's feed: its initial load over REST, its live SSE stream, and reloads when needed.

A map is loaded over REST (systems and tracked characters) into the tracking index before its
stream starts, retried with backoff while the map API cannot answer (the reason shows on the
connection). After a long gap the stream reconnects through the same load; a character refresh
asks the REST API again when the stream reports a change it does not carry in full.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable

from wanderer_console.config.model import MapSettings
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient
from wanderer_console.ingest.map_sse import MapSseSource
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
    ) -> None:
        self._index = index
        self._store = store
        self._sink = sink
        self._metrics = metrics
        self._spawn = spawn
        self._on_loaded = on_loaded
        self._resync_after = resync_after
        self.rest: dict[str, MapRestClient] = {}
        self.sources: dict[str, MapSseSource] = {}

    def start(self, tenant: str, map_settings: MapSettings, http: HttpClient) -> MapRestClient:
        """Build the map's clients and start its feed task; return its REST client."""
        self.rest[tenant] = rest = MapRestClient(http, map_settings)
        self.sources[tenant] = MapSseSource(
            tenant,
            map_settings,
            http,
            self._store,
            self._sink,
            self._metrics,
            on_resync=functools.partial(self.load, tenant),
            resync_after=self._resync_after(),
        )
        self._spawn(f"map:{tenant}", functools.partial(self._run, tenant))
        return rest

    async def load(self, tenant: str) -> None:
        """Load the map's systems and tracked characters into the index."""
        rest = self.rest[tenant]
        systems = await rest.systems()
        characters = await rest.tracked_characters()
        self._index.replace(tenant, systems, characters)
        log.info(
            "map loaded",
            extra={
                "ctx": {"tenant": tenant, "systems": len(systems), "characters": len(characters)}
            },
        )
        self._on_loaded(tenant)

    async def refresh_characters(self, tenant: str) -> None:
        """Add tracked characters the map knows and the index does not (never raises)."""
        try:
            characters = await self.rest[tenant].tracked_characters()
        except (MapApiError, TransportError) as exc:
            log.warning(
                "tracked characters refresh failed",
                extra={"ctx": {"tenant": tenant, "error": str(exc)}},
            )
            return
        tracking = self._index.map(tenant)
        for character in characters:
            if character.eve_id not in tracking.characters:
                self._index.put_character(tenant, character)

    async def _run(self, tenant: str) -> None:
        backoff = Backoff(1.0, 60.0)
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
