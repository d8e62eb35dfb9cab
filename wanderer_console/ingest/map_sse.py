"""The map SSE stream (PROTOCOLS.md §1.2–1.7): one client per map, resumed from the store.

The cursor is read from the store at every connect; the pipeline advances it in the same
transaction that records each event, so a crash never skips an event and a resume never repeats
one that was notified (duplicates from backfill are absorbed by the event log's unique key).
A stream with no cursor yet (its map never sent an event) asks for no backfill; its
``connected`` frame's id is then handed to the pipeline (``on_connected_point``), which keeps a
point just before it as the cursor, so the next connect backfills what the map published in
between (a restart, a feed restarted) instead of starting from "now" again.

A quiet map's cursor may be an hour old while its stream was heard the whole time. The stream
is known caught up whenever a keepalive, or a live event, follows its backfill; that wall time
is handed to the pipeline (``on_heard``) at most every ``heard_every`` seconds and when the
source stops, and kept beside the cursor (:func:`heard_stream`, never the cursor itself). A
restart judges its gap from the later of the two (:meth:`MapSseSource._check_resume_age`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Final

import orjson
from pydantic import ValidationError

from wanderer_console.config.model import MapSettings
from wanderer_console.domain.map_events import HANDLED_MAP_EVENT_TYPES, MapEnvelope
from wanderer_console.domain.ulid import ulid_at, ulid_seconds
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.http.sse import SseOversize, open_sse
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.health import ConnectionHealth, ConnectionState
from wanderer_console.ingest.items import Item, MapEventItem
from wanderer_console.ingest.map_rest import map_api_base
from wanderer_console.store.base import Store
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "BACKFILL_LIMIT",
    "SHARED_RNG",
    "MapSseSource",
    "cursor_stream",
    "event_filter",
    "heard_stream",
]

log = logging.getLogger(__name__)

_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

LOAD_MARGIN: Final = 10.0
"""Seconds before a map's first load that its first stream connect, with no cursor stored,
asks the backfill from (:meth:`MapSseSource.loading`): the map server's clock may run behind
this one's, and its ids carry its own time."""
_AUTH_FAILURES = {401, 402, 403, 404}
BACKFILL_LIMIT = 1000
"""The most events the server backfills on one connect (PROTOCOLS.md §1.6); it then goes live
without saying more were buffered, so a backfill this long is followed by a resume at once."""
RETRY_AFTER_CAP = 600.0
"""The longest ``Retry-After`` honoured (seconds): a server asking for more is asked again
after this, so a wrong or hostile header cannot park a map's stream for hours."""
SHARED_RNG = random.Random()
"""The jitter of every map's reconnects (and first loads): one generator, not one per map."""


def event_filter(map_settings: MapSettings) -> str | None:
    """The stream's ``events`` query value: the types wanted, comma-separated; ``None`` (no
    filter) when every type is (``sse_events = ["*"]``)."""
    wanted = map_settings.sse_events
    if wanted is None:
        return ",".join(sorted(HANDLED_MAP_EVENT_TYPES))
    if "*" in wanted:
        return None
    return ",".join(sorted(set(wanted)))


def cursor_stream(tenant: str) -> str:
    """Name of the stored cursor of a map's SSE stream."""
    return f"sse:{tenant}"


def heard_stream(tenant: str) -> str:
    """Name of the stored point until which a map's stream was heard caught up (a ULID of
    that time): what a restart measures its gap from when it is later than the cursor."""
    return f"sse-heard:{tenant}"


class MapSseSource:
    """Reads one map's event stream forever, reconnecting with backoff."""

    def __init__(
        self,
        tenant: str,
        map_settings: MapSettings,
        http: HttpClient,
        store: Store,
        sink: Callable[[Item], Awaitable[None]],
        metrics: Metrics,
        *,
        on_connected: Callable[[], Awaitable[None]] | None = None,
        idle_timeout: float = 75.0,
        backoff: Backoff | None = None,
        on_resync: Callable[[], Awaitable[None]] | None = None,
        resync_after: float = 540.0,
        over_limit_delay: float = 30.0,
        refused_delay: float = 60.0,
        healthy_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        generation: Callable[[], int] | None = None,
        on_connected_point: Callable[[str, str], None] | None = None,
        on_heard: Callable[[str, float], None] | None = None,
        heard_every: float = 300.0,
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
        # One generator for every map's jitter: a Random is 2.5 KiB of state, per map.
        self._backoff = backoff or Backoff(1.0, 30.0, rng=SHARED_RNG)
        self._on_resync = on_resync
        self._resync_after = resync_after
        self._over_limit_delay = over_limit_delay
        self._refused_delay = refused_delay
        self._healthy_after = healthy_after
        """Seconds a stream must stay up after ``connected`` for its end to start the waits
        over (a server that says ``connected`` and closes at once is backed off from)."""
        self._clock = clock
        self._wall = wall
        self._generation = generation
        """The map's load now (:meth:`~wanderer_console.domain.tracking.TrackingIndex.arrival`,
        stamped on each event read: one read before a reload is older than the reload's
        state)."""
        self._on_connected_point = on_connected_point
        """Told ``(tenant, connected frame's id)`` when a connect asked for no backfill (no
        cursor): nothing older is pending, so the pipeline may keep that point as the cursor
        (:meth:`~wanderer_console.pipeline.worker.PipelineWorker.connected`). Never while a
        backfill is asked: the frame's id is newer than every event the backfill sends."""
        self._on_heard = on_heard
        """Told ``(tenant, wall time)``: the stream was caught up then (every event the map
        published before it was queued). The pipeline keeps it once those are written."""
        self._heard_every = heard_every
        """Least seconds between two points told while the stream runs: a quiet stream costs
        one write per map this often, not one per keepalive."""
        self._heard_at: float | None = None
        self._heard_told = wall()  # the first point waits its turn: no write burst at a start
        self._alive_at: float | None = None
        self._resync_pending = False
        self._resume_from: str | None = None
        """The last event of a backfill cut at :data:`BACKFILL_LIMIT`, handed to the pipeline:
        the next connect resumes from it when the stored cursor has not got that far yet."""
        self._loaded_from: str | None = None
        """Where a connect with no cursor asks the server's backfill from: a little before the
        map's first load began (:meth:`loading`)."""
        self.resyncs = 0
        """Full REST reloads done after an outage longer than the server's buffer."""

    async def run(self) -> None:
        """Connect, read, reconnect; returns only when cancelled (a stop tells the last point
        the stream was heard caught up, so a quick restart knows nothing was missed)."""
        try:
            while True:
                delay = await self._session()
                self.health.reconnects += 1
                self._metrics.reconnects.labels(source=self.source).inc()
                await asyncio.sleep(delay)
        finally:
            self._tell_heard()

    async def _session(self) -> float:
        """One connection; returns how long to wait before the next."""
        url = f"{map_api_base(self._settings)}/events/stream"
        params: dict[str, str] = {}
        cursor = self._store.get_cursor(cursor_stream(self.tenant))
        if not (cursor and _ULID.match(cursor)):
            cursor = None
        if self._resume_from is not None and (cursor is None or self._resume_from > cursor):
            cursor = self._resume_from
        unresumed = cursor is None  # nothing stored or handed on to resume from
        if cursor is None:
            cursor = self._loaded_from
        if cursor is not None:
            params["last_event_id"] = cursor
        wanted = event_filter(self._settings)
        if wanted is not None:
            params["events"] = wanted
        headers = {"authorization": f"Bearer {self._settings.api_key.get_secret_value()}"}
        self.health.set_state(
            ConnectionState.CONNECTING
            if self.health.reconnects == 0
            else ConnectionState.RECONNECTING
        )
        connected = False
        connected_at = 0.0
        connected_id = ""
        backfilled = 0

        def keepalive() -> None:
            # Sent after the backfill, so every event before it has been read.
            if connected:
                self._heard()

        try:
            async with open_sse(
                self._http,
                url,
                headers=headers,
                params=params,
                idle_timeout=self._idle_timeout,
                # Paced in the map's own bucket, as its REST calls are (map_rest.py).
                rate_key=self._settings.slug,
            ) as stream:
                if stream.status != 200:
                    body = await stream.error_body()
                    return self._refused(stream.status, body, stream.retry_after)
                events = stream.events(
                    max_line_bytes=self._settings.sse_max_line_bytes,
                    max_event_bytes=self._settings.sse_max_event_bytes,
                    on_oversize=self._oversize,
                    on_comment=keepalive,
                )
                async for event in events:
                    if event.event == "connected":
                        connected, connected_at = True, self._clock()
                        connected_id = event.id if _ULID.match(event.id) else ""
                        if unresumed and connected_id and self._on_connected_point:
                            self._on_connected_point(self.tenant, connected_id)
                        self.health.set_state(ConnectionState.CONNECTED)
                        log.info(
                            "map stream connected",
                            extra={"ctx": {"tenant": self.tenant, "resume_from": cursor}},
                        )
                        if self._alive_at is None and cursor is not None:
                            self._check_resume_age(cursor)
                        await self._resync_if_stale()
                        self._alive_at = self._clock()
                        if self._on_connected is not None:
                            await self._on_connected()
                        continue
                    self._alive_at = self._clock()
                    await self._handle(event.data)
                    # The connect's own id is newer than every event it backfills.
                    if not (connected_id and _ULID.match(event.id)):
                        continue
                    if event.id > connected_id:
                        self._heard()  # a live event comes after the whole backfill
                        continue
                    backfilled += 1
                    if backfilled >= BACKFILL_LIMIT:
                        return self._backfill_cut(event.id)
        except TransportError as exc:
            # A read timeout is noticed ``idle_timeout`` after the last byte: it was last
            # alive then, and events may have been lost to it from then on.
            self._mark_alive(connected, self._idle_timeout if exc.kind == "timeout" else 0.0)
            self.health.set_state(ConnectionState.RECONNECTING, f"stream lost: {exc}")
            log.warning(
                "map stream lost", extra={"ctx": {"tenant": self.tenant, "error": str(exc)}}
            )
            return self._next_delay(connected, connected_at)
        if not connected:
            # 200 then an immediate close is how the server says "over the connection limit".
            self.health.set_state(ConnectionState.DEGRADED, "closed before 'connected' frame")
            return self._backoff.next_delay_at_least(self._over_limit_delay)
        self._mark_alive(connected)
        self.health.set_state(ConnectionState.RECONNECTING, "stream closed by server")
        return self._next_delay(connected, connected_at)

    def loading(self, began: float) -> None:
        """The map's first load began at ``began`` (wall time), before this source connects.

        The map is read over REST first, then its stream opened: with no cursor stored (the
        map's first start), the stream's first connect asked for no backfill, and an event the
        map published between the load's read and the stream's open reached neither (a system
        added then was not tracked until a resync). The connect now asks the server's backfill
        from :data:`LOAD_MARGIN` before the load began (events the load already read come again,
        as an event can anyway: the pipeline knows them by id, and a map event arriving after a
        load is applied over it)."""
        if self._loaded_from is None:
            self._loaded_from = ulid_at(began - LOAD_MARGIN)

    def _backfill_cut(self, last_id: str) -> float:
        """The backfill reached the server's limit: more events may wait after ``last_id``,
        and the live events coming next would move the cursor past them. Reconnect at once
        from ``last_id`` (handed to the pipeline) for the rest."""
        self._resume_from = last_id
        self.health.set_state(
            ConnectionState.RECONNECTING,
            f"backfill reached the server's {BACKFILL_LIMIT}-event limit; resuming after it",
        )
        log.info(
            "map stream backfill reached the server's limit; resuming from its last event",
            extra={"ctx": {"tenant": self.tenant, "resume_from": last_id}},
        )
        return 0.0

    @property
    def heard_at(self) -> float | None:
        """Wall time the stream was last heard caught up (a keepalive or a live event after
        its backfill), ``None`` before that."""
        return self._heard_at

    def _heard(self) -> None:
        """The stream is caught up now: tell it when :attr:`_heard_every` has passed since
        the last point told (the first after as long since the source was made: no burst of
        writes when many maps start together)."""
        self._heard_at = self._wall()
        if self._heard_at - self._heard_told >= self._heard_every:
            self._tell_heard()

    def _tell_heard(self) -> None:
        """Hand the newest point the stream was heard caught up to the pipeline, if not yet."""
        heard = self._heard_at
        if self._on_heard is None or heard is None or heard <= self._heard_told:
            return
        self._heard_told = heard
        self._on_heard(self.tenant, heard)

    def _next_delay(self, connected: bool, connected_at: float) -> float:
        """The wait after a stream ended: from the start again when it had been up a while."""
        if connected and self._clock() - connected_at >= self._healthy_after:
            self._backoff.reset()
        return self._backoff.next_delay()

    def _mark_alive(self, connected: bool, silent_for: float = 0.0) -> None:
        """The stream was heard until it ended, ``silent_for`` seconds ago (the outage that
        :meth:`_resync_if_stale` measures starts there, never before the last event)."""
        if connected:
            heard = self._clock() - silent_for
            self._alive_at = heard if self._alive_at is None else max(self._alive_at, heard)

    async def _resync_if_stale(self) -> None:
        """After an outage longer than the server's event buffer, backfill has gaps: reload."""
        if self._on_resync is None:
            return
        gap = None if self._alive_at is None else self._clock() - self._alive_at
        if not self._resync_pending and (gap is None or gap <= self._resync_after):
            return
        if gap is not None and gap > self._resync_after:
            self._metrics.map_stream_gaps.labels(source=self.source, reason="outage").inc()
        log.warning(
            "map stream was down longer than the server keeps events; reloading the map (events"
            " the map published in the outage beyond what the server still holds are not"
            " notified)",
            extra={"ctx": {"tenant": self.tenant, "outage_seconds": gap}},
        )
        try:
            await self._on_resync()
        except Exception as exc:
            self._resync_pending = True  # try again on the next connect
            self._metrics.errors.labels(component=f"{self.source}:resync").inc()
            self.health.last_error = f"resync failed: {exc}"
            log.warning(
                "map resync failed", extra={"ctx": {"tenant": self.tenant, "error": str(exc)}}
            )
            return
        self._resync_pending = False
        self.resyncs += 1

    def _check_resume_age(self, cursor: str) -> None:
        """This source's first connect resumed from a stored ``cursor`` (a restart): when the
        stream was last known caught up further back than the server keeps events, the
        backfill silently misses what fell out of the server's buffer (no gap signal,
        PROTOCOLS.md §1.6). The map was just loaded over REST (its state is whole), but those
        events are not notified: say so and count it
        (``wc_map_stream_gaps_total{reason="restart"}``).

        Caught up means the later of the cursor's time and the stored point the stream was
        heard until (:func:`heard_stream`): a quiet map heard until a stop missed nothing
        however old its last event. That point is saved every few minutes and at a stop, so
        after a crash it is that much older than the truth: the gap is then overstated, never
        hidden."""
        at = ulid_seconds(cursor)
        if at is None:
            return
        heard = ulid_seconds(self._store.get_cursor(heard_stream(self.tenant)) or "")
        age = self._wall() - (at if heard is None else max(at, heard))
        if age <= self._resync_after:
            return
        self._metrics.map_stream_gaps.labels(source=self.source, reason="restart").inc()
        message = (
            f"resumed {round(age / 60)} min after the stream was last known caught up (its"
            " cursor, or a keepalive after it), older than the map server keeps events (about"
            " 10 min): events the map published after it and before then are not notified"
            " (the map was reloaded over REST)"
        )
        self.health.record_error()
        self.health.last_error = message
        log.warning(
            "map stream resumed from a cursor older than the server keeps events; events in the"
            " gap may be lost",
            extra={"ctx": {"tenant": self.tenant, "cursor": cursor, "age_seconds": round(age)}},
        )

    def _refused(self, status: int, body: str, retry_after: float | None = None) -> float:
        """The wait after a refusal: slow for credentials and missing maps, at least the
        server's ``Retry-After`` (up to :data:`RETRY_AFTER_CAP`) when it asked for a pause,
        else the stream's backoff. The first two are jittered upwards (up to half as long
        again): every hosted map told the same comes back spread out, none sooner than asked."""
        message = f"HTTP {status}: {_error_message(body)}"
        if status in _AUTH_FAILURES:
            # Credentials and missing maps do not fix themselves quickly: retry slowly.
            state, delay = ConnectionState.FAILED, self._backoff.spread(self._refused_delay)
        elif retry_after is not None:
            asked = min(retry_after, RETRY_AFTER_CAP)
            state, delay = ConnectionState.RECONNECTING, self._backoff.next_delay_at_least(asked)
            message += (
                f"; server asked to wait {round(asked)} s (Retry-After), retrying in"
                f" {round(delay)} s"
            )
        else:
            state, delay = ConnectionState.RECONNECTING, self._backoff.next_delay()
        self.health.set_state(state, message)
        self._metrics.errors.labels(component=f"{self.source}:http_{status}").inc()
        log.error(
            "map stream refused",
            extra={"ctx": {"tenant": self.tenant, "error": message, "wait": round(delay, 1)}},
        )
        return delay

    def _oversize(self, report: SseOversize) -> None:
        """An event too big to hold was skipped unread: count it, tell, and read on.

        The cursor stays at the last event the pipeline took; the next one moves it past the
        skipped event, so a resume does not ask for it again unless it was the last one seen.
        """
        self._metrics.stream_oversize.labels(source=self.source, reason=report.reason).inc()
        message = (
            f"skipped a {report.event!r} event: {report.reason} of {report.size} bytes over"
            f" the {report.limit}-byte limit"
        )
        self.health.record_error()
        self.health.last_error = message
        log.warning(
            "oversize map event skipped",
            extra={
                "ctx": {
                    "tenant": self.tenant,
                    "reason": report.reason,
                    "size": report.size,
                    "limit": report.limit,
                    "event": report.event,
                    "last_event_id": report.id,
                }
            },
        )

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
        trace = None
        if tracing.enabled():
            attributes = {"map": self.tenant, "event.id": envelope.id, "event.type": envelope.type}
            trace = tracing.source_span("sse.event", attributes)
        generation = None if self._generation is None else self._generation()
        item = MapEventItem(
            self.tenant, envelope, data, self.source, trace_parent=trace, generation=generation
        )
        await self._sink(item)


def _error_message(body: str) -> str:
    """The server's message: ``error`` (and ``code``) of a JSON body, else the text itself."""
    text = body.strip()
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text[:200]
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        code = data.get("code")
        suffix = f" ({code})" if isinstance(code, str) else ""
        return f"{data['error'][:200]}{suffix}"
    return text[:200]
