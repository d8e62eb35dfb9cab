"""The map SSE stream (PROTOCOLS.md §1.2–1.7): one client per map, resumed from the store.

The cursor is read from the store at every connect; the pipeline advances it in the same
transaction that records each event, so a crash never skips an event and a resume never repeats
one that was notified (duplicates from backfill are absorbed by the event log's unique key).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

import orjson
from pydantic import ValidationError

from wanderer_console.config.model import MapSettings
from wanderer_console.domain.map_events import MapEnvelope
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.http.sse import open_sse
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.health import ConnectionHealth, ConnectionState
from wanderer_console.pipeline.items import Item, MapEventItem
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["MapSseSource", "cursor_stream"]

log = logging.getLogger(__name__)

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_AUTH_FAILURES = {401, 402, 403, 404}


def cursor_stream(tenant: str) -> str:
    """Name of the stored cursor of a map's SSE stream."""
    return f"sse:{tenant}"


class MapSseSource:
    """Reads one map's event stream forever, reconnecting with backoff."""

    def __init__(
        self,
        tenant: str,
        map_settings: MapSettings,
        http: HttpClient,
        store: SqliteStore,
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        idle_timeout: float = 75.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.tenant = tenant
        self.source = f"sse:{tenant}"
        self.health = ConnectionHealth(self.source, "map_sse")
        self._settings = map_settings
        self._http = http
        self._store = store
        self._sink = sink
        self._metrics = metrics
        self._on_connected = on_connected
        self._idle_timeout = idle_timeout
        self._backoff = backoff or Backoff(1.0, 30.0)

    async def run(self) -> None:
        """Connect, read, reconnect; returns only when cancelled."""
        while True:
            delay = await self._session()
            self.health.reconnects += 1
            self._metrics.reconnects.labels(source=self.source).inc()
            await asyncio.sleep(delay)

    async def _session(self) -> float:
        """One connection; returns how long to wait before the next."""
        url = f"{self._settings.url}/api/maps/{self._settings.slug}/events/stream"
        params: dict[str, str] = {}
        cursor = self._store.get_cursor(cursor_stream(self.tenant))
        if cursor and _ULID.match(cursor):
            params["last_event_id"] = cursor
        headers = {"authorization": f"Bearer {self._settings.api_key.get_secret_value()}"}
        self.health.set_state(
            ConnectionState.CONNECTING
            if self.health.reconnects == 0
            else ConnectionState.RECONNECTING
        )
        connected = False
        try:
            async with open_sse(
                self._http, url, headers=headers, params=params, idle_timeout=self._idle_timeout
            ) as stream:
                if stream.status != 200:
                    return await self._refused(stream.status, await stream.error_body())
                async for event in stream.events():
                    if event.event == "connected":
                        connected = True
                        self._backoff.reset()
                        self.health.set_state(ConnectionState.CONNECTED)
                        log.info(
                            "map stream connected",
                            extra={"ctx": {"tenant": self.tenant, "resume_from": cursor}},
                        )
                        if self._on_connected is not None:
                            await self._on_connected()
                        continue
                    await self._handle(event.data)
        except TransportError as exc:
            self.health.set_state(ConnectionState.RECONNECTING, f"stream lost: {exc}")
            log.warning(
                "map stream lost", extra={"ctx": {"tenant": self.tenant, "error": str(exc)}}
            )
            return self._backoff.next_delay()
        if not connected:
            # 200 then an immediate close is how the server says "over the connection limit".
            self.health.set_state(ConnectionState.DEGRADED, "closed before 'connected' frame")
            return max(30.0, self._backoff.next_delay())
        self.health.set_state(ConnectionState.RECONNECTING, "stream closed by server")
        return self._backoff.next_delay()

    async def _refused(self, status: int, body: str) -> float:
        message = f"HTTP {status}: {body.strip()[:200]}"
        state = ConnectionState.FAILED if status in _AUTH_FAILURES else ConnectionState.RECONNECTING
        self.health.set_state(state, message)
        self._metrics.errors.labels(component=f"{self.source}:http_{status}").inc()
        log.error("map stream refused", extra={"ctx": {"tenant": self.tenant, "error": message}})
        # Credentials and missing maps do not fix themselves quickly: retry slowly.
        return 60.0 if status in _AUTH_FAILURES else self._backoff.next_delay()

    async def _handle(self, data: str) -> None:
        try:
            envelope = MapEnvelope.model_validate(orjson.loads(data))
        except (orjson.JSONDecodeError, ValidationError) as exc:
            reason = "json" if isinstance(exc, orjson.JSONDecodeError) else "envelope"
            self._metrics.events_invalid.labels(source=self.source, reason=reason).inc()
            log.warning(
                "malformed map event skipped",
                extra={"ctx": {"tenant": self.tenant, "reason": reason, "error": str(exc)[:300]}},
            )
            return
        self.health.saw_event()
        await self._sink(MapEventItem(self.tenant, envelope, data, self.source))
