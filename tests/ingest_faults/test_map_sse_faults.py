"""Map SSE under faults: cut streams, refusals, over-limit closes, long outages (resync)."""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.domain.map_events import MapEnvelope
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item, MapEventItem
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.ingest.map_sse import MapSseSource, heard_stream
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.pipeline.worker import PipelineWorker
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.sim.server import AppServer
from wanderer_console.sim.ulid import UlidGenerator
from wanderer_console.store.sqlite import DB_NAME, SqliteStore
from wanderer_console.telemetry.metrics import Metrics

from .conftest import map_settings

pytestmark = pytest.mark.timeout(60)

MAP_ID = "5d0f7c2e-8a41-4c55-9f0b-2b6c1e7d9a10"


def _frame(event: str, ident: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\nid: %s\ndata: %s\n\n" % (event.encode(), ident.encode(), orjson.dumps(data))


class CuttingMapServer:
    """Serves a recorded stream; connection ``k`` is cut after a chosen number of bytes.

    Resume honours ``last_event_id`` and, like the real server, sometimes repeats the event at
    the cursor (backfill and live overlap). After the planned cuts, streams stay open.
    """

    def __init__(self, envelopes: list[dict[str, Any]], cuts: int, seed: int) -> None:
        self.envelopes = envelopes
        self.cuts_left = cuts
        self.rng = random.Random(seed)
        self.connects: list[str | None] = []
        self.cut_offsets: list[int] = []
        self.ulid = UlidGenerator()
        self.app = Starlette(
            routes=[
                Route("/api/maps/{map}/events/stream", self.stream),
                Route("/api/maps/{map}/systems", self.systems),
                Route("/api/maps/{map}/tracked-characters", self.tracked),
            ]
        )

    def body(self, cursor: str | None) -> bytes:
        out = _frame("connected", self.ulid.new(), {"map_id": MAP_ID, "server_time": "now"})
        for envelope in self.envelopes:
            repeat = cursor is not None and envelope["id"] == cursor and self.rng.random() < 0.5
            if cursor is None or envelope["id"] > cursor or repeat:
                out += _frame(envelope["type"], envelope["id"], envelope)
        return out

    async def stream(self, request: Request) -> Response:
        cursor = request.query_params.get("last_event_id")
        self.connects.append(cursor)
        body = self.body(cursor)
        cut: int | None = None
        if self.cuts_left > 0:
            self.cuts_left -= 1
            cut = self.rng.randrange(0, len(body) + 1)
            self.cut_offsets.append(cut)

        async def frames() -> AsyncIterator[bytes]:
            if cut is not None:
                # Uneven chunks, so a cut also lands inside partly delivered frames.
                data = body[:cut]
                while data:
                    size = self.rng.randint(1, 400)
                    yield data[:size]
                    data = data[size:]
                return
            yield body
            while True:
                await asyncio.sleep(0.05)
                yield b": keepalive\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    async def systems(self, request: Request) -> Response:
        return JSONResponse({"data": {"systems": [], "connections": []}})

    async def tracked(self, request: Request) -> Response:
        return JSONResponse({"data": []})


def _envelopes(count: int) -> list[dict[str, Any]]:
    ulid = UlidGenerator()
    out = []
    for n in range(count):
        system_id = 31_000_001 + n
        if n % 2:
            kind, payload = "add_system", {"solar_system_id": system_id, "name": f"J{n:06d}"}
        else:
            kind = "rally_point_added"
            payload = {
                "rally_point_id": f"rp-{n}",
                "solar_system_id": system_id,
                "system_id": f"sys-{n}",
                "character_id": "c-1",
                "character_name": "Pilot",
                "character_eve_id": "2112000001",
                "system_name": f"J{n:06d}",
                "message": f"rally {n}",
                "created_at": "2026-01-10T18:22:07Z",
            }
        out.append(
            {
                "id": ulid.new(),
                "type": kind,
                "map_id": MAP_ID,
                "timestamp": "2026-01-10T18:22:07.551020Z",
                "payload": payload,
            }
        )
    return out


@pytest.mark.slow
async def test_stream_cut_at_100_random_offsets_loses_nothing_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    envelopes = _envelopes(40)
    server = CuttingMapServer(envelopes, cuts=100, seed=7)
    app = AppServer(server.app)
    await app.start()
    settings = map_settings(app.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(8, index, registry=metrics.registry)
    engine = Engine(settings, store, index, metrics)
    processed: list[str] = []

    async def pipeline() -> None:
        while True:
            item = await queue.get()
            if isinstance(item, MapEventItem):
                processed.append(item.envelope.id)
            await engine.process(item)
            queue.task_done()

    http = HttpClient("map", timeout=5.0)
    source = MapSseSource(
        "cut",
        settings.maps["cut"],
        http,
        store,
        queue.put,
        metrics,
        backoff=Backoff(0.002, 0.01),
        over_limit_delay=0.005,
    )
    tasks = [asyncio.create_task(pipeline()), asyncio.create_task(source.run())]
    try:
        await wait_for(lambda: server.cuts_left == 0 and len(server.connects) > 100, 40)
        await wait_for(lambda: store.event_count() == len(envelopes) and queue.empty(), 10)
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        await app.stop()
    ids = [e["id"] for e in envelopes]
    stored = {e.event_id for e in store.events_since(0)}
    assert stored == set(ids)  # 0 events lost
    assert set(processed) == set(ids)
    queued = metrics.total("wc_notifications_queued_total")
    assert queued == len(envelopes)  # one notification per event, none doubled
    assert store.outbox_counts() == {"pending": len(envelopes)}
    assert store.get_cursor("sse:cut") == ids[-1]
    assert len(server.cut_offsets) == 100
    store.close()


def _status_app(status: int, body: dict[str, Any]) -> Starlette:
    async def stream(request: Request) -> Response:
        return JSONResponse(body, status_code=status)

    return Starlette(routes=[Route("/api/maps/{map}/events/stream", stream)])


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, {"error": "Invalid API key"}, "HTTP 401: Invalid API key"),
        (
            402,
            {"error": "Subscription required", "code": "SUBSCRIPTION_REQUIRED", "status": 402},
            "HTTP 402: Subscription required (SUBSCRIPTION_REQUIRED)",
        ),
        (
            403,
            {"error": "SSE disabled for map", "code": "SSE_DISABLED_FOR_MAP", "status": 403},
            "HTTP 403: SSE disabled for map (SSE_DISABLED_FOR_MAP)",
        ),
        (404, {"error": "Map not found for identifier: x"}, "Map not found for identifier: x"),
    ],
)
async def test_refusals_show_failed_with_the_server_message_and_retry_slowly(
    tmp_path: Path, status: int, body: dict[str, Any], message: str
) -> None:
    app = AppServer(_status_app(status, body))
    await app.start()
    settings = map_settings(app.url)
    store = SqliteStore(tmp_path / "db.sqlite")
    http = HttpClient("map", timeout=5.0)

    async def sink(item: Item) -> None:
        raise AssertionError("nothing may be delivered")

    source = MapSseSource("cut", settings.maps["cut"], http, store, sink, Metrics())
    try:
        delay = await asyncio.wait_for(source._session(), 10)
    finally:
        await http.aclose()
        await app.stop()
        store.close()
    snapshot = source.health.snapshot()
    assert snapshot["state"] == "failed"
    assert message in snapshot["last_error"]
    assert snapshot["quality"] == 0
    assert 60.0 <= delay <= 90.0  # slowly, jittered upwards (many maps share a key)


@pytest.mark.slow
async def test_over_limit_close_before_connected_backs_off_long(tmp_path: Path) -> None:
    async with Simulator(seed=5) as sim:
        sim.map.over_limit = True
        settings = map_settings(sim.map_url, tenant=sim.map_slug, api_key=sim.map_api_key)
        store = SqliteStore(tmp_path / "db.sqlite")
        http = HttpClient("map", timeout=5.0)

        async def sink(item: Item) -> None:
            raise AssertionError("nothing may be delivered")

        source = MapSseSource(
            sim.map_slug, settings.maps[sim.map_slug], http, store, sink, Metrics()
        )
        try:
            delay = await asyncio.wait_for(source._session(), 10)
            run = asyncio.create_task(source.run())
            await asyncio.sleep(0.5)
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        finally:
            await http.aclose()
            store.close()
        assert delay >= 30.0
        assert source.health.state is ConnectionState.DEGRADED
        assert "closed before 'connected'" in (source.health.last_error or "")
        assert len(sim.map.connect_log) == 2  # the run() attempt, then a long wait: no hot loop


@pytest.mark.slow
async def test_long_outage_triggers_full_rest_resync_short_one_does_not(tmp_path: Path) -> None:
    async with Simulator(seed=11) as sim:
        settings = map_settings(sim.map_url, tenant=sim.map_slug, api_key=sim.map_api_key)
        store = SqliteStore(tmp_path / "db.sqlite")
        http = HttpClient("map", timeout=5.0)
        got: list[Item] = []
        resyncs: list[float] = []
        now = [1000.0]
        metrics = Metrics()

        async def sink(item: Item) -> None:
            got.append(item)

        async def resync() -> None:
            resyncs.append(now[0])

        source = MapSseSource(
            sim.map_slug,
            settings.maps[sim.map_slug],
            http,
            store,
            sink,
            metrics,
            backoff=Backoff(0.01, 0.02),
            over_limit_delay=0.01,
            on_resync=resync,
            resync_after=540.0,
            clock=lambda: now[0],
        )

        async def outage(seconds: float) -> None:
            # The server refuses (over limit) while the clock moves on, then lets us back in.
            sim.map.over_limit = True
            attempts = len(sim.map.connect_log)
            sim.map.drop_connections()
            await wait_for(lambda: len(sim.map.connect_log) > attempts)
            now[0] += seconds
            sim.map.over_limit = False

        run = asyncio.create_task(source.run())
        try:
            await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
            assert resyncs == []  # the first connect follows the initial load
            await outage(60)  # a short outage: backfill covers it
            await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
            assert resyncs == []
            await outage(600)  # longer than the server keeps events
            await wait_for(lambda: resyncs)
            assert source.resyncs == 1
            assert resyncs == [now[0]]
            gaps = {"source": f"sse:{sim.map_slug}", "reason": "outage"}
            assert metrics.value("wc_map_stream_gaps_total", **gaps) == 1  # said and counted
        finally:
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
            await http.aclose()
            store.close()


@pytest.mark.slow
async def test_runtime_reloads_the_map_after_an_outage_longer_than_the_buffer(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=13) as sim:
        runtime = Runtime(_demo(sim, tmp_path), data_dir=tmp_path)
        runtime.sse_resync_after = 0.2  # anything longer than this is "too long" here
        await runtime.start()
        try:
            source = runtime.maps.sources[sim.map_slug]
            await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
            missed = sim.generator.new_system()
            sim.map.drop_connections()
            sim.map.add_system(missed.system_id, name=missed.name)  # nobody is listening
            sim.map.clear_buffer()  # and the server forgets it (restart / buffer expiry)
            await wait_for(lambda: source.resyncs >= 1)
            tracked = runtime.index.map(sim.map_slug).systems
            assert missed.system_id in tracked
        finally:
            await runtime.stop()


def _demo(sim: Simulator, data_dir: Path) -> Settings:
    from wanderer_console.launch import demo_settings

    return demo_settings(sim, data_dir=data_dir, dry_run=True)


async def test_an_event_id_that_is_no_ulid_does_not_take_the_resume_cursor(
    tmp_path: Path,
) -> None:
    """One malformed id (here a lower-case one, which sorts after every ULID) is stored as an
    event but never becomes the cursor: the next connect still resumes from the last ULID."""
    ulid = UlidGenerator()
    good = [ulid.new(), ulid.new()]
    envelopes = [
        {"id": good[0], "type": "add_system", "map_id": MAP_ID, "payload": {"solar_system_id": 1}},
        {"id": "evt-7", "type": "add_system", "map_id": MAP_ID, "payload": {"solar_system_id": 2}},
        {"id": good[1], "type": "add_system", "map_id": MAP_ID, "payload": {"solar_system_id": 3}},
    ]
    connects: list[str | None] = []
    release = asyncio.Event()

    async def stream(request: Request) -> Response:
        connects.append(request.query_params.get("last_event_id"))
        first = len(connects) == 1

        async def frames() -> AsyncIterator[bytes]:
            yield _frame("connected", ulid.new(), {"map_id": MAP_ID, "server_time": "now"})
            if first:
                for envelope in envelopes:
                    yield _frame(envelope["type"], envelope["id"], envelope)
                await release.wait()  # closed once the pipeline has written all three
                return
            while True:
                await asyncio.sleep(0.05)
                yield b": keepalive\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    app = AppServer(Starlette(routes=[Route("/api/maps/{map}/events/stream", stream)]))
    await app.start()
    settings = map_settings(app.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(8, index, registry=metrics.registry)
    engine = Engine(settings, store, index, metrics)

    async def pipeline() -> None:
        while True:
            await engine.process(await queue.get())
            queue.task_done()

    http = HttpClient("map", timeout=5.0)
    source = MapSseSource(
        "cut", settings.maps["cut"], http, store, queue.put, metrics, backoff=Backoff(0.01, 0.02)
    )
    tasks = [asyncio.create_task(pipeline()), asyncio.create_task(source.run())]
    try:
        await wait_for(lambda: store.event_count() == 3)
        release.set()
        await wait_for(lambda: len(connects) == 2)
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        await app.stop()
    assert {e.event_id for e in store.events_since(0)} == {good[0], "evt-7", good[1]}
    assert store.get_cursor("sse:cut") == good[1]
    assert connects == [None, good[1]]
    store.close()


@contextlib.asynccontextmanager
async def _map_feeds(
    tmp_path: Path, routes: list[Route], *, timeout: float = 5.0
) -> AsyncIterator[tuple[MapFeeds, TrackingIndex, BoundedPriorityQueue[Item]]]:
    """The map feeds (bootstrap and stream) of map ``cut`` against a map API serving ``routes``
    on 127.0.0.1, started; stopped with the server afterwards."""
    app = AppServer(Starlette(routes=routes))
    await app.start()
    settings = map_settings(app.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(8, index, registry=metrics.registry)
    tasks: list[asyncio.Task[None]] = []
    feeds = MapFeeds(
        index,
        store,
        queue.put,
        metrics,
        spawn=lambda name, run: tasks.append(asyncio.create_task(run())),
        on_loaded=lambda tenant: None,
        resync_after=lambda: 540.0,
    )
    http = HttpClient("map", timeout=timeout)
    try:
        feeds.start("cut", settings.maps["cut"], http)
        yield feeds, index, queue
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        await app.stop()
        store.close()


async def test_a_malformed_tracked_character_entry_is_skipped_and_the_map_still_streams(
    tmp_path: Path,
) -> None:
    """One entry of the map's tracked characters whose ``character`` is not an object: the
    others are loaded and the stream starts (before, the load raised on it every time, the
    map's task crashed and restarted forever, and the map never streamed)."""
    good = {"character_id": "c-1", "tracked": True, "character": {"eve_id": "2112000001"}}
    bad = {"character_id": "c-2", "tracked": True, "character": "Pilot Two"}
    ulid = UlidGenerator()

    async def systems(request: Request) -> Response:
        return JSONResponse({"data": {"systems": [{"solar_system_id": 31000001}]}})

    async def tracked(request: Request) -> Response:
        return JSONResponse({"data": [bad, good]})

    async def stream(request: Request) -> Response:
        async def frames() -> AsyncIterator[bytes]:
            yield _frame("connected", ulid.new(), {"map_id": MAP_ID, "server_time": "now"})
            while True:
                await asyncio.sleep(0.05)
                yield b": keepalive\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    routes = [
        Route("/api/maps/{map}/systems", systems),
        Route("/api/maps/{map}/tracked-characters", tracked),
        Route("/api/maps/{map}/events/stream", stream),
    ]
    async with _map_feeds(tmp_path, routes) as (feeds, index, _queue):
        await wait_for(lambda: feeds.sources["cut"].health.state is ConnectionState.CONNECTED)
    assert set(index.map("cut").characters) == {2112000001}
    assert index.tracks_system(31000001)


async def test_a_static_info_lookup_that_times_out_neither_cuts_the_stream_nor_holds_the_event(
    tmp_path: Path,
) -> None:
    """A system added while the map API's static-info lookup does not answer: the event is
    queued without it (the system is notified without its statics) and the stream stays up
    (before, the lookup's timeout ended the stream, whose every reconnect stopped at the same
    event for as long as the lookup failed)."""
    ulid = UlidGenerator()
    added = {
        "id": ulid.new(),
        "type": "add_system",
        "map_id": MAP_ID,
        "payload": {"solar_system_id": 31000002, "name": "J100002"},
    }
    connects: list[str | None] = []
    release = asyncio.Event()

    async def systems(request: Request) -> Response:
        return JSONResponse({"data": {"systems": [{"solar_system_id": 31000001}]}})

    async def tracked(request: Request) -> Response:
        return JSONResponse({"data": []})

    async def static_info(request: Request) -> Response:
        await release.wait()  # until the test ends: far past the client's timeout
        return JSONResponse({"data": {}})

    async def stream(request: Request) -> Response:
        connects.append(request.query_params.get("last_event_id"))

        async def frames() -> AsyncIterator[bytes]:
            yield _frame("connected", ulid.new(), {"map_id": MAP_ID, "server_time": "now"})
            yield _frame("add_system", added["id"], added)
            while True:
                await asyncio.sleep(0.05)
                yield b": keepalive\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    routes = [
        Route("/api/maps/{map}/systems", systems),
        Route("/api/maps/{map}/tracked-characters", tracked),
        Route("/api/maps/{map}/events/stream", stream),
        Route("/api/common/system-static-info", static_info),
    ]
    async with _map_feeds(tmp_path, routes, timeout=0.5) as (feeds, _index, queue):
        try:
            await wait_for(lambda: queue.qsize() == 1)
            source = feeds.sources["cut"]
            assert source.health.state is ConnectionState.CONNECTED
            assert source.health.reconnects == 0
        finally:
            release.set()  # the lookup's handler ends before the server stops
    [item] = queue.take_nowait(1)
    assert isinstance(item, MapEventItem)
    assert item.envelope.id == added["id"]
    assert len(connects) == 1  # one connect: the lookup never cut the stream


class _CountingBackoff(Backoff):
    """The real backoff with short waits, noting which attempt each wait was for."""

    def __init__(self) -> None:
        super().__init__(0.01, 0.08)
        self.asked: list[int] = []

    def next_delay(self) -> float:
        self.asked.append(self.attempt)
        return super().next_delay()


async def test_a_stream_closed_right_after_connected_each_time_backs_off(tmp_path: Path) -> None:
    """A server that says ``connected`` and closes at once, again and again: each reconnect
    waits longer than the one before (before, the ``connected`` frame started the waits over,
    so such a server was reconnected to every second, forever)."""
    ulid = UlidGenerator()
    connects: list[str | None] = []

    async def stream(request: Request) -> Response:
        connects.append(request.query_params.get("last_event_id"))
        closes = len(connects) <= 4

        async def frames() -> AsyncIterator[bytes]:
            yield _frame("connected", ulid.new(), {"map_id": MAP_ID, "server_time": "now"})
            if closes:
                return
            while True:
                await asyncio.sleep(0.05)
                yield b": keepalive\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    app = AppServer(Starlette(routes=[Route("/api/maps/{map}/events/stream", stream)]))
    await app.start()
    settings = map_settings(app.url)
    store = SqliteStore(tmp_path / "db.sqlite")
    http = HttpClient("map", timeout=5.0)
    backoff = _CountingBackoff()

    async def sink(item: Item) -> None:
        return None

    source = MapSseSource(
        "cut", settings.maps["cut"], http, store, sink, Metrics(), backoff=backoff
    )
    run = asyncio.create_task(source.run())
    try:
        await wait_for(
            lambda: len(connects) == 5 and source.health.state is ConnectionState.CONNECTED
        )
    finally:
        run.cancel()
        await asyncio.gather(run, return_exceptions=True)
        await http.aclose()
        await app.stop()
        store.close()
    assert backoff.asked == [0, 1, 2, 3]


def _retry_after_app(status: int, retry_after: str) -> Starlette:
    async def stream(request: Request) -> Response:
        body = {"error": "slow down", "status": status}
        return JSONResponse(body, status_code=status, headers={"retry-after": retry_after})

    return Starlette(routes=[Route("/api/maps/{map}/events/stream", stream)])


@pytest.mark.parametrize(
    ("status", "retry_after", "at_least", "at_most"),
    [
        (429, "120", 120.0, 120.0),
        (503, "90", 90.0, 90.0),
        # An HTTP date about five minutes ahead (the wait is counted from now).
        (503, "in-5-minutes", 250.0, 300.0),
        # A server asking for a day is waited for only up to the cap (10 minutes).
        (429, "86400", 600.0, 600.0),
    ],
)
async def test_a_refusal_with_retry_after_waits_at_least_that_long_and_says_so(
    tmp_path: Path, status: int, retry_after: str, at_least: float, at_most: float
) -> None:
    """429/503 with ``Retry-After`` (seconds or an HTTP date): the next connect waits at least
    what the server asked for (bounded by a cap; up to half as long again, jittered), not the
    stream's own short backoff, and the connection's status says how long and why."""
    if retry_after == "in-5-minutes":
        retry_after = email.utils.formatdate(time.time() + 300, usegmt=True)
    app = AppServer(_retry_after_app(status, retry_after))
    await app.start()
    settings = map_settings(app.url)
    store = SqliteStore(tmp_path / "db.sqlite")
    http = HttpClient("map", timeout=5.0)

    async def sink(item: Item) -> None:
        raise AssertionError("nothing may be delivered")

    source = MapSseSource(
        "cut", settings.maps["cut"], http, store, sink, Metrics(), backoff=Backoff(0.01, 0.02)
    )
    try:
        delay = await asyncio.wait_for(source._session(), 10)
    finally:
        await http.aclose()
        await app.stop()
        store.close()
    assert at_least <= delay <= at_most * 1.5  # jittered upwards, never sooner than asked
    snapshot = source.health.snapshot()
    assert snapshot["state"] == "reconnecting"
    assert f"HTTP {status}: slow down" in snapshot["last_error"]
    assert "server asked to wait " in snapshot["last_error"]
    assert f"s (Retry-After), retrying in {round(delay)} s" in snapshot["last_error"]


async def test_an_event_id_from_a_clock_running_ahead_does_not_pin_the_resume_cursor(
    tmp_path: Path,
) -> None:
    """The server's clock ran a day ahead for one event, then was put right: that id sorts
    after every real one. It is stored (and notified) but never becomes the resume cursor, so
    the next connect still asks for what came after the last real id, and the events made
    meanwhile (with real, smaller ids) are not lost."""
    real = UlidGenerator()
    ahead = UlidGenerator(clock=lambda: int((time.time() + 86_400) * 1000))

    def envelope(ident: str, system: int) -> dict[str, Any]:
        return {
            "id": ident,
            "type": "add_system",
            "map_id": MAP_ID,
            "payload": {"solar_system_id": system},
        }

    buffer = [envelope(real.new(), 1), envelope(ahead.new(), 2)]
    first_real, future = buffer[0]["id"], buffer[1]["id"]
    connects: list[str | None] = []
    release = asyncio.Event()

    async def stream(request: Request) -> Response:
        cursor = request.query_params.get("last_event_id")
        connects.append(cursor)
        first = len(connects) == 1

        async def frames() -> AsyncIterator[bytes]:
            yield _frame("connected", real.new(), {"map_id": MAP_ID, "server_time": "now"})
            # Like the server: the buffered events after the cursor, then live ones.
            for item in buffer:
                if cursor is None or item["id"] > cursor:
                    yield _frame(item["type"], item["id"], item)
            if first:
                await release.wait()
                return
            while True:
                await asyncio.sleep(0.05)
                yield b": keepalive\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    app = AppServer(Starlette(routes=[Route("/api/maps/{map}/events/stream", stream)]))
    await app.start()
    settings = map_settings(app.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(8, index, registry=metrics.registry)
    engine = Engine(settings, store, index, metrics)

    async def pipeline() -> None:
        while True:
            await engine.process(await queue.get())
            queue.task_done()

    http = HttpClient("map", timeout=5.0)
    source = MapSseSource(
        "cut", settings.maps["cut"], http, store, queue.put, metrics, backoff=Backoff(0.01, 0.02)
    )
    tasks = [asyncio.create_task(pipeline()), asyncio.create_task(source.run())]
    try:
        await wait_for(lambda: store.event_count() == 2)
        # The clock is put right: the events made while the stream was down have real ids.
        buffer += [envelope(real.new(), 3), envelope(real.new(), 4)]
        release.set()
        await wait_for(lambda: store.event_count() == 4, 10, "the events made meanwhile")
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        await app.stop()
    assert connects[:2] == [None, first_real]
    assert store.get_cursor("sse:cut") == buffer[-1]["id"] < future
    # Counted at each arrival (the resume's backfill repeats it, as it is after the cursor).
    assert metrics.value("wc_errors_total", component="sse:cut:future_id") >= 1
    store.close()


@pytest.mark.parametrize(
    ("app", "floor", "state"),
    [
        (_retry_after_app(429, "120"), 120.0, "reconnecting"),
        (_retry_after_app(503, "90"), 90.0, "reconnecting"),
        (_status_app(401, {"error": "Invalid API key"}), 60.0, "failed"),
        (_status_app(403, {"error": "Forbidden"}), 60.0, "failed"),
    ],
    ids=["429-retry-after", "503-retry-after", "401", "403"],
)
async def test_many_maps_refused_alike_do_not_all_come_back_in_the_same_instant(
    tmp_path: Path, app: Starlette, floor: float, state: str
) -> None:
    """Twenty maps' streams (one generator for their jitter, as in the runtime) refused with
    the same ``Retry-After``, or the same auth refusal: each waits at least what the server
    asked (or the slow auth retry), at most half as long again, and not all the same wait
    (before, every one waited exactly that long, so hundreds of hosted maps reconnected in
    the same instant)."""
    served = AppServer(app)
    await served.start()
    settings = map_settings(served.url)
    store = SqliteStore(tmp_path / "db.sqlite")
    http = HttpClient("map", timeout=5.0)
    rng = random.Random(7)

    async def sink(item: Item) -> None:
        raise AssertionError("nothing may be delivered")

    sources = [
        MapSseSource(
            "cut",
            settings.maps["cut"],
            http,
            store,
            sink,
            Metrics(),
            backoff=Backoff(0.01, 0.02, rng=rng),
        )
        for _ in range(20)
    ]
    try:
        delays = [await asyncio.wait_for(source._session(), 10) for source in sources]
    finally:
        await http.aclose()
        await served.stop()
        store.close()
    assert all(floor <= delay <= floor * 1.5 for delay in delays), delays
    assert len({round(delay, 3) for delay in delays}) > 10, delays
    assert max(delays) - min(delays) > floor / 10, delays
    for source in sources:
        assert source.health.snapshot()["state"] == state


def _silent_then_resumed(
    first: list[bytes], connects: list[str | None], ulid: UlidGenerator
) -> AppServer:
    """A map stream whose first connection sends ``first`` (after its ``connected`` frame, whose
    id is made then) and closes; later ones say ``connected`` and stay open, silent."""

    async def stream(request: Request) -> Response:
        connects.append(request.query_params.get("last_event_id"))
        again = len(connects) > 1

        async def frames() -> AsyncIterator[bytes]:
            yield _frame("connected", ulid.new(), {"map_id": MAP_ID, "server_time": "now"})
            if not again:
                for frame in first:
                    yield frame
                return
            while True:
                await asyncio.sleep(0.05)
                yield b": keepalive\n\n"

        return StreamingResponse(frames(), media_type="text/event-stream")

    return AppServer(Starlette(routes=[Route("/api/maps/{map}/events/stream", stream)]))


_Wired = tuple[
    SqliteStore,
    BoundedPriorityQueue[Item],
    PipelineWorker,
    MapSseSource,
    list["asyncio.Task[Any]"],
]


@contextlib.asynccontextmanager
async def _wired(app: AppServer, tmp_path: Path) -> AsyncIterator[_Wired]:
    """Map ``cut`` served by ``app`` (started here), its stream read by a source whose
    connected points go to a pipeline worker: ``(store, queue, worker, source, tasks)``. Nothing
    runs yet: the test starts the source and the worker in ``tasks``, which are cancelled
    afterwards, and everything is closed."""
    await app.start()
    settings = map_settings(app.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(8, index, registry=metrics.registry)
    worker = PipelineWorker(queue, Engine(settings, store, index, metrics))
    http = HttpClient("map", timeout=5.0)
    source = MapSseSource(
        "cut",
        settings.maps["cut"],
        http,
        store,
        queue.put,
        metrics,
        backoff=Backoff(0.01, 0.02),
        on_connected_point=worker.connected,
    )
    tasks: list[asyncio.Task[Any]] = []
    try:
        yield store, queue, worker, source, tasks
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        await app.stop()
        store.close()


async def test_a_stream_without_a_cursor_resumes_from_before_its_connect_not_from_now(
    tmp_path: Path,
) -> None:
    """A map that never sent an event has no event id to resume from: its first connect's
    point is kept, a little before the ``connected`` frame's id, so an event made before that
    frame and delivered live right after it (its id is older) is backfilled by the next
    connect if the stream dropped (here: the pipeline had not written it yet)."""
    ulid = UlidGenerator()
    early = ulid.new()  # made before the connected frame's id, delivered after it
    envelope = {
        "id": early,
        "type": "add_system",
        "map_id": MAP_ID,
        "payload": {"solar_system_id": 1},
    }
    connects: list[str | None] = []
    app = _silent_then_resumed([_frame("add_system", early, envelope)], connects, ulid)
    async with _wired(app, tmp_path) as (store, queue, worker, source, tasks):
        tasks.append(asyncio.create_task(source.run()))
        # The pipeline is not running: the event waits in the queue, unwritten, as at a crash.
        await wait_for(lambda: len(connects) == 2)
        assert queue.qsize() == 1
        resumed = connects[1]
        assert resumed is not None
        assert resumed < early  # the server backfills the early event
        assert store.get_cursor("sse:cut") == resumed
        tasks.append(asyncio.create_task(worker.run()))
        await wait_for(lambda: store.has_event("cut", early))
        assert store.get_cursor("sse:cut") == early  # the greatest kept: never moved back


async def test_a_connected_point_waits_for_the_events_queued_before_it(tmp_path: Path) -> None:
    """An event of the map's previous stream still waiting in the queue is older than a new
    connect's point: the point is kept as the cursor only once that event is written, so a
    crash in between resumes from before it, never past it."""
    ulid = UlidGenerator()
    connects: list[str | None] = []
    app = _silent_then_resumed([], connects, ulid)
    # The previous stream's last event, a minute ago.
    older = UlidGenerator(clock=lambda: int((time.time() - 60.0) * 1000)).new()
    envelope = {
        "id": older,
        "type": "add_system",
        "map_id": MAP_ID,
        "payload": {"solar_system_id": 2},
    }
    raw = orjson.dumps(envelope).decode()
    async with _wired(app, tmp_path) as (store, queue, worker, source, tasks):
        await queue.put(MapEventItem("cut", MapEnvelope.model_validate(envelope), raw, "sse:cut"))
        tasks.append(asyncio.create_task(source.run()))
        # The first stream closes after "connected"; the second stays open.
        await wait_for(
            lambda: len(connects) == 2 and source.health.state is ConnectionState.CONNECTED
        )
        # The older event is not written yet: neither connect's point is kept, and the
        # reconnect asked for no backfill either.
        assert connects == [None, None]
        assert store.get_cursor("sse:cut") is None
        tasks.append(asyncio.create_task(worker.run()))
        # Written in one step: the older event (its cursor), then the connect's point.
        await wait_for(lambda: store.has_event("cut", older))
        point = store.get_cursor("sse:cut")
        assert point is not None
        assert point > older


@pytest.mark.slow
async def test_a_resume_from_a_cursor_older_than_the_server_keeps_events_is_said_and_counted(
    tmp_path: Path,
) -> None:
    """The engine was down longer than the map server keeps events (~10 min): the backfill from
    the stored cursor silently misses what fell out of the server's buffer. Said as a warning
    and counted (``wc_map_stream_gaps_total{reason="restart"}``); a recent cursor is not. The
    age runs from the later of the cursor and the point the stream was last heard caught up:
    a quiet map's hour-old cursor heard a minute ago is no gap, heard 20 minutes ago it is."""

    def ago(minutes: float) -> str:
        return UlidGenerator(clock=lambda: int((time.time() - minutes * 60) * 1000)).new()

    async with Simulator(seed=17) as sim:
        settings = map_settings(sim.map_url, tenant=sim.map_slug, api_key=sim.map_api_key)
        http = HttpClient("map", timeout=5.0)
        found: dict[str, float] = {}
        cases = {"20 min": (20, None), "1 min": (1, None), "heard 20": (60, 20), "heard 1": (60, 1)}
        for case, (minutes, heard) in cases.items():
            store = SqliteStore(tmp_path / f"{case}.sqlite")
            store.set_cursor(f"sse:{sim.map_slug}", ago(minutes))
            if heard is not None:
                store.set_cursor(heard_stream(sim.map_slug), ago(heard))
            metrics = Metrics()
            source = MapSseSource(
                sim.map_slug,
                settings.maps[sim.map_slug],
                http,
                store,
                lambda item: asyncio.sleep(0),
                metrics,
                resync_after=540.0,
            )
            run = asyncio.create_task(source.run())
            try:
                await wait_for(lambda s=source: s.health.state is ConnectionState.CONNECTED)
            finally:
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
                store.close()
            found[case] = metrics.value(
                "wc_map_stream_gaps_total", source=f"sse:{sim.map_slug}", reason="restart"
            )
            error = source.health.last_error or ""
            assert ("older than the map server keeps events" in error) is (found[case] == 1.0)
        await http.aclose()
    assert found == {"20 min": 1.0, "1 min": 0.0, "heard 20": 1.0, "heard 1": 0.0}


@pytest.mark.slow
async def test_a_quiet_map_heard_until_a_graceful_stop_and_restarted_at_once_has_no_gap(
    tmp_path: Path,
) -> None:
    """A map quiet for an hour (its cursor an hour old) whose stream was heard (keepalives)
    until a graceful stop missed nothing when it starts again at once: no gap warning, no
    count, no error. Its first start, an hour after its last event with nothing heard since,
    is a real gap and is said."""
    async with Simulator(seed=19, keepalive_seconds=0.05) as sim:
        settings = _demo(sim, tmp_path)
        hour_ago = UlidGenerator(clock=lambda: int((time.time() - 3600) * 1000)).new()
        store = SqliteStore(tmp_path / DB_NAME)
        store.set_cursor(f"sse:{sim.map_slug}", hour_ago)
        store.close()
        gaps: list[float] = []
        errors: list[str | None] = []
        for _ in range(2):
            runtime = Runtime(settings, data_dir=tmp_path)
            await runtime.start()
            try:
                source = runtime.maps.sources[sim.map_slug]
                await wait_for(lambda s=source: s.health.state is ConnectionState.CONNECTED)
                # Heard caught up by the console itself (a keepalive read after the backfill).
                await wait_for(lambda s=source: s.heard_at is not None)
            finally:
                await runtime.stop()
            gaps.append(
                runtime.metrics.value(
                    "wc_map_stream_gaps_total", source=f"sse:{sim.map_slug}", reason="restart"
                )
            )
            errors.append(source.health.last_error)
    assert gaps == [1.0, 0.0]
    assert "older than the map server keeps events" in (errors[0] or "")
    assert errors[1] is None
