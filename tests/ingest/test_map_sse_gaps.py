"""Map SSE resume gaps: what a reconnect's backfill can leave out, against the fake map server."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.ingest_faults.conftest import map_settings
from tests.support import wait_for
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.map_sse import MapSseSource
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import item_queue
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(90)

MAP_ID = "5d0f7c2e-8a41-4c55-9f0b-2b6c1e7d9a10"


@dataclass
class Rig:
    """A fake map server, a map stream reading it and the real pipeline writing to SQLite."""

    server: FakeMapServer
    source: MapSseSource
    store: SqliteStore


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with _rig(tmp_path) as made:
        yield made


@contextlib.asynccontextmanager
async def _rig(
    tmp_path: Path, *, keepalive_seconds: float = 30.0, **source_options: Any
) -> AsyncIterator[Rig]:
    """The rig running; ``source_options`` go to :class:`MapSseSource`."""
    # The real server keeps ten minutes of events, however many: a busy map has thousands.
    server = FakeMapServer(
        "cut", "key", MAP_ID, buffer_limit=10_000, keepalive_seconds=keepalive_seconds
    )
    app = AppServer(server.app, on_stop=server.close)
    await app.start()
    settings = map_settings(app.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(64, index, registry=metrics.registry)
    engine = Engine(settings, store, index, metrics)

    async def pipeline() -> None:
        while True:
            await engine.process(await queue.get())
            queue.task_done()

    http = HttpClient("map", timeout=5.0)
    source_options.setdefault("backoff", Backoff(0.01, 0.02))
    source = MapSseSource(
        "cut", settings.maps["cut"], http, store, queue.put, metrics, **source_options
    )
    tasks = [asyncio.create_task(pipeline()), asyncio.create_task(source.run())]
    try:
        yield Rig(server, source, store)
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        await app.stop()
        store.close()


async def test_an_outage_with_more_events_than_one_backfill_sends_loses_none(rig: Rig) -> None:
    """The server backfills at most 1000 events per connect, then goes live. 1200 events
    during a short outage, then a live one: the 200 after the first 1000 must still come (the
    stream resumes again from the 1000th), not be passed over by the live event's cursor."""
    server, store = rig.server, rig.store
    await wait_for(lambda: rig.source.health.state is ConnectionState.CONNECTED)
    server.add_system(31_000_000)
    await wait_for(lambda: store.event_count() == 1)
    server.drop_connections()
    missed = [server.add_system(31_000_001 + n)["id"] for n in range(1200)]
    await wait_for(lambda: store.event_count() >= 1001, 30, "the first backfill")
    live = server.add_system(32_000_000)["id"]
    await wait_for(lambda: live in {e.event_id for e in store.events_since(0)}, 10, "live event")
    # Whatever reconnects come later resume from the stored cursor.
    server.drop_connections()
    await wait_for(lambda: server.open_streams == 1, 10, "the stream back")
    await wait_for(lambda: store.event_count() == 1202, 15, "every event stored")
    stored = {e.event_id for e in store.events_since(0)}
    assert set(missed) <= stored


async def test_a_stream_connected_but_silent_past_the_idle_timeout_is_reconnected(
    tmp_path: Path,
) -> None:
    """The server keeps the connection open but sends nothing, not even a keepalive: the
    stream is declared lost after ``idle_timeout`` and resumed, and the event published while
    it was dead arrives by the resume's backfill."""
    async with _rig(tmp_path, keepalive_seconds=3600.0, idle_timeout=0.5) as rig:
        server, store = rig.server, rig.store
        await wait_for(lambda: rig.source.health.state is ConnectionState.CONNECTED)
        first = server.add_system(31_000_000)["id"]
        await wait_for(lambda: store.event_count() == 1)
        await wait_for(lambda: len(server.connect_log) >= 2, 10, "a reconnect")
        assert server.connect_log[1]["last_event_id"] == first
        assert rig.source.health.reconnects >= 1
        server.add_system(31_000_001)
        await wait_for(lambda: store.event_count() == 2, 10, "the later event")


async def test_the_outage_of_a_silent_stream_counts_from_the_last_byte_heard(
    tmp_path: Path,
) -> None:
    """A dead connection is noticed only ``idle_timeout`` after its last byte, but events were
    being lost from that byte on: whether the server still buffers them (the reload after
    ``resync_after``) is judged from the last byte, not from when the silence was noticed."""
    idle, resync_after = 2.0, 100.0
    offset = [0.0]
    resyncs: list[float] = []

    async def resync() -> None:
        resyncs.append(time.monotonic())

    async with _rig(
        tmp_path,
        keepalive_seconds=3600.0,
        idle_timeout=idle,
        on_resync=resync,
        resync_after=resync_after,
        over_limit_delay=0.01,
        clock=lambda: time.monotonic() + offset[0],
    ) as rig:
        server, store = rig.server, rig.store
        await wait_for(lambda: rig.source.health.state is ConnectionState.CONNECTED)
        server.add_system(31_000_000)
        await wait_for(lambda: store.event_count() == 1)
        server.over_limit = True  # the silence is noticed; the server then refuses a while
        await wait_for(lambda: len(server.connect_log) >= 2, 10, "the silence noticed")
        # Since the last byte: resync_after + idle / 2; since the silence was noticed, less.
        offset[0] += resync_after - idle / 2
        server.over_limit = False
        await wait_for(lambda: rig.source.health.state is ConnectionState.CONNECTED, 10)
        assert resyncs, "an outage longer than resync_after since the last byte: reload"
        assert rig.source.resyncs == 1
