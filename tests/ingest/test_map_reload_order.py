"""A map reloaded over REST after a long stream outage, with events of before the outage still
queued: those older events must not undo what the reload found (real map server on 127.0.0.1,
the real map feeds, queue, engine and pipeline worker, SQLite)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ingest_faults.conftest import map_settings
from tests.support import wait_for
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.pipeline.worker import PipelineWorker
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(60)

MAP_ID = "5d0f7c2e-8a41-4c55-9f0b-2b6c1e7d9a10"
KEPT, DELETED, LATER, STAYS = 31_000_001, 31_000_002, 31_000_003, 31_000_004
PILOT = 2_112_000_001


@dataclass
class Rig:
    server: FakeMapServer
    feeds: MapFeeds
    index: TrackingIndex
    queue: BoundedPriorityQueue[Item]
    store: SqliteStore
    worker: PipelineWorker


@contextlib.asynccontextmanager
async def _rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """The map feeds of map ``cut`` reading a fake map server; every reconnect after the first
    connect reloads the map (``resync_after`` 0: any outage is "longer than the buffer"). The
    pipeline worker is not started: the test starts it when the queue should drain."""
    server = FakeMapServer("cut", "key", MAP_ID)
    server.seed([KEPT], [PILOT])
    app = AppServer(server.app, on_stop=server.close)
    await app.start()
    settings = map_settings(app.url)
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(64, index, registry=metrics.registry)
    tasks: list[asyncio.Task[None]] = []
    feeds = MapFeeds(
        index,
        store,
        queue.put,
        metrics,
        spawn=lambda name, run: tasks.append(asyncio.create_task(run())),
        on_loaded=lambda tenant: None,
        resync_after=lambda: 0.0,
    )
    feeds.jitter_per_map = 0.0
    worker = PipelineWorker(queue, Engine(settings, store, index, metrics))
    http = HttpClient("map", timeout=5.0)
    try:
        feeds.start("cut", settings.maps["cut"], http)
        yield Rig(server, feeds, index, queue, store, worker)
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        await app.stop()
        store.close()


async def test_events_queued_before_a_reload_do_not_undo_it_and_later_ones_apply(
    tmp_path: Path,
) -> None:
    """Before the outage the map adds two systems, deletes another and drops a pilot; the
    pipeline is behind, so the four events wait in the queue. During the outage (its events
    lost to the server's buffer) the map deletes one added system again, puts the deleted one
    back and tracks the pilot again; the reconnect reloads the map. The queued events are then
    decided: the map must stay as the reload found it, the system no longer on the map is not
    notified as added (the one still there is), and an event after the reload still applies
    and notifies (before, the stale events
    were applied over the reload: the deleted system came back and was notified, the system
    on the map and the pilot tracked were gone)."""
    async with _rig(tmp_path) as rig:
        server, index, store = rig.server, rig.index, rig.store
        source = await wait_for(lambda: rig.feeds.sources.get("cut"))
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        tracking = index.map("cut")
        assert set(tracking.systems) == {KEPT}
        assert set(tracking.characters) == {PILOT}

        stale_add = server.add_system(DELETED)["id"]
        still_there = server.add_system(STAYS)["id"]
        server.remove_system(KEPT)
        server.remove_character(PILOT)
        await wait_for(lambda: rig.queue.qsize() == 4, what="the four events queued")

        # The outage: what the map did meanwhile never reaches the stream.
        server.state.remove_system(DELETED)
        server.state.add_system(KEPT)
        server.state.track_pilot(server.generator.character(PILOT))
        server.clear_buffer()
        server.drop_connections()
        await wait_for(lambda: source.resyncs == 1, what="the reload after the outage")
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        tracking = index.map("cut")
        assert set(tracking.systems) == {KEPT, STAYS}
        assert set(tracking.characters) == {PILOT}

        work = asyncio.create_task(rig.worker.run())
        try:
            await wait_for(lambda: store.event_count() == 4, what="the queued events decided")
            assert set(index.map("cut").systems) == {KEPT, STAYS}
            assert set(index.map("cut").characters) == {PILOT}
            assert not store.has_notification("cut", f"system:{stale_add}")
            # Added before the outage and still on the map: not notified yet, so it is now.
            assert store.has_notification("cut", f"system:{still_there}")

            later = server.add_system(LATER)["id"]
            await wait_for(lambda: store.event_count() == 5, what="the event after the reload")
            assert set(index.map("cut").systems) == {KEPT, STAYS, LATER}
            assert store.has_notification("cut", f"system:{later}")
        finally:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
