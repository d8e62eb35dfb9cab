"""The killstream watermark (the next run's resume point) is saved by the pipeline worker once
every kill read before it has been decided, never before, busy or idle.

A real engine on a real store, the runtime's queue and the real worker; the load is a source
that always has kills queued when the watermark is offered, as at a busy hour of all of EVE.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.ingest.map_sse import heard_stream
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.pipeline.startup import SEEN_CURSOR, decode_seen, ulid_at
from wanderer_console.pipeline.worker import PipelineWorker
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

WH = 31002238
UNTRACKED = 30000142
_ids = itertools.count(1)


def _settings() -> Settings:
    return Settings.model_validate(
        {
            "esi": {"enabled": False},
            "maps": {
                "home": {
                    "url": "http://127.0.0.1:1",
                    "api_key": "k",
                    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/t"},
                }
            },
        }
    )


def _kill() -> KillItem:
    """A kill somewhere no map tracks (the bulk of a busy hour's stream)."""
    wire = {
        "killmail_id": next(_ids),
        "kill_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "system_id": UNTRACKED,
        "victim": {"ship_type_id": 587, "damage_taken": 10},
        "attackers": [{"damage_done": 10, "final_blow": True}],
    }
    return KillItem(Killmail.from_wire(wire), "{}", "killstream")


def _saved(store: Store) -> float | None:
    return decode_seen(store.get_cursor(SEEN_CURSOR))


@pytest.fixture
async def pipeline(
    store: Store,
) -> AsyncIterator[tuple[BoundedPriorityQueue[Item], PipelineWorker]]:
    index = TrackingIndex()
    index.replace("home", [TrackedSystem(WH, "J154624")], [])
    engine = Engine(_settings(), store, index, Metrics())
    queue = item_queue(64, index)
    worker = PipelineWorker(queue, engine)
    task = asyncio.create_task(worker.run())
    try:
        yield queue, worker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_the_watermark_is_saved_while_kills_keep_arriving(
    store: Store, pipeline: tuple[BoundedPriorityQueue[Item], PipelineWorker]
) -> None:
    """The queue is never empty when the watermark is offered (kills keep arriving faster than
    it drains), yet the watermark is saved once the kills read before it are decided; before,
    it waited for an empty queue, so a crash at a busy hour resumed from hours back."""
    queue, worker = pipeline
    offered: list[float] = []
    empty_at_offer: list[bool] = []

    async def busy_hour() -> None:
        while True:
            for _ in range(4):
                await queue.put(_kill())
            offered.append(time.time())
            empty_at_offer.append(queue.empty())
            worker.stream_seen(offered[-1])  # what the REST poller does every few seconds
            await asyncio.sleep(0.005)  # the next kills' arrival (pacing, not synchronisation)

    load = asyncio.create_task(busy_hour())
    try:
        await wait_for(lambda: _saved(store) is not None, timeout=10, what="watermark saved")
    finally:
        load.cancel()
        await asyncio.gather(load, return_exceptions=True)
    assert not any(empty_at_offer)
    assert _saved(store) in [pytest.approx(at, abs=1e-3) for at in offered]


async def test_the_watermark_waits_for_the_kill_being_decided(store: Store) -> None:
    """A kill taken from the queue but not yet written (the worker is mid-batch) holds the
    watermark back, even though the queue itself is empty; marking it done lets it move."""
    index = TrackingIndex()
    engine = Engine(_settings(), store, index, Metrics())
    queue = item_queue(8, index)
    worker = PipelineWorker(queue, engine)  # not run: the test takes from the queue itself
    queue.put_nowait(_kill())
    queue.get_nowait()  # the pipeline took the kill and is deciding it
    assert queue.empty()
    worker.stream_seen(1000.0)
    assert _saved(store) is None
    queue.task_done()  # written
    worker.stream_seen(1005.0)
    assert _saved(store) == pytest.approx(1005.0, abs=1e-3)


async def test_no_watermark_passes_a_kill_still_waiting_for_room_in_the_queue(store: Store) -> None:
    """A socket reader holding a kill it read, blocked on a full queue: the kill is in no
    checkpoint yet, so a watermark offered meanwhile (the REST poller's timer) must not be
    saved once the queue's earlier kills are done, or a crash would resume past that kill."""
    index = TrackingIndex()
    engine = Engine(_settings(), store, index, Metrics())
    queue = item_queue(1, index)
    worker = PipelineWorker(queue, engine)  # not run: the test takes from the queue itself
    queue.put_nowait(_kill())
    held = asyncio.create_task(queue.put(_kill()))  # the reader, waiting for room
    await wait_for(lambda: queue.paused_sources(), what="the reader blocked")
    worker.stream_seen(1000.0)
    queue.get_nowait()
    queue.task_done()  # the kill queued before the offer is written; the held one is not
    await wait_for(lambda: held.done(), what="the held kill queued")
    worker.stream_seen(1001.0)  # the next offer: the held kill is still queued
    assert _saved(store) is None
    queue.get_nowait()
    queue.task_done()
    worker.stream_seen(1002.0)
    assert _saved(store) == pytest.approx(1002.0, abs=1e-3)


async def test_a_map_stream_heard_point_waits_for_the_queue_and_never_moves_the_cursor(
    store: Store,
) -> None:
    """A map stream heard caught up while an item it read before waits in the queue: the point
    is kept only once that item is written (a crash before must not say it was received), and
    beside the cursor, never in it (a resume starts from the last event written)."""
    index = TrackingIndex()
    engine = Engine(_settings(), store, index, Metrics())
    queue = item_queue(64, index)
    worker = PipelineWorker(queue, engine)
    store.set_cursor("sse:home", ulid_at(time.time() - 3600))
    cursor = store.get_cursor("sse:home")
    await queue.put(_kill())
    at = time.time()
    worker.heard("home", at)
    assert store.get_cursor(heard_stream("home")) is None  # the item is not written yet
    task = asyncio.create_task(worker.run())
    try:
        await wait_for(lambda: store.get_cursor(heard_stream("home")) is not None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert store.get_cursor(heard_stream("home")) == ulid_at(at)
    assert store.get_cursor("sse:home") == cursor
