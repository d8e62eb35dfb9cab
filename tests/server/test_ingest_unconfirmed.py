"""``POST /api/v1/events`` when the pipeline cannot confirm an event in time (the store is held
by another process): the answer says "retry", not "your event is invalid", and the event the
engine kept is still stored once the store writes again."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests.ingest_faults.conftest import map_settings
from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.ingest.items import Item
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.pipeline.worker import PipelineWorker
from wanderer_console.server.ingest import IngestEndpoint
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


class _Engine:
    """The part of the engine surface the ingest endpoint uses, over a real queue."""

    def __init__(self, settings: Settings, metrics: Metrics, queue: BoundedPriorityQueue[Item]):
        self.settings = settings
        self.metrics = metrics
        self._queue = queue

    async def enqueue(self, item: Item) -> None:
        await self._queue.put(item)

    def offer(self, items: Sequence[Item]) -> bool:
        return self._queue.offer(items)


async def test_an_event_the_store_cannot_write_yet_gets_503_not_422_and_is_stored_later(
    tmp_path: Path,
) -> None:
    settings = map_settings("http://127.0.0.1:9")
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(64, index, registry=metrics.registry)
    worker = PipelineWorker(queue, Engine(settings, store, index, metrics))
    tenants = TenantRegistry(store.path)
    key = tenants.add("cut")
    endpoint = IngestEndpoint(_Engine(settings, metrics, queue), tenants)
    server = AppServer(
        Starlette(routes=[Route("/api/v1/events", endpoint.post_events, methods=["POST"])])
    )
    await server.start()
    # Another process holds the database's write lock (an sqlite3 shell left in a transaction).
    holder = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    pipeline = asyncio.create_task(worker.run())
    event = {
        "event_id": "ops-1",
        "title": "Fleet forming",
        "body": "Form up in J123456",
        "severity": "info",
        "notification_type": "system",
    }
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
            response = await client.post(
                "/api/v1/events", json=event, headers={"authorization": f"Bearer {key}"}
            )
        holder.execute("ROLLBACK")  # the other process lets go
        await wait_for(lambda: store.has_event("cut", "api:ops-1"))
    finally:
        holder.close()
        pipeline.cancel()
        await asyncio.gather(pipeline, return_exceptions=True)
        await server.stop()
        tenants.close()
        store.close()
    # Not a client error: the event was valid, and the engine kept it and wrote it later.
    assert response.status_code == 503, response.text
    assert response.headers.get("retry-after")
    [result] = response.json()["results"]
    assert result["event_id"] == "ops-1"
    assert "retry with the same event_id" in result["reason"]
    refused = metrics.value("wc_server_refusals_total", endpoint="ingest", reason="not_processed")
    assert refused == 1
    invalid = metrics.value("wc_server_refusals_total", endpoint="ingest", reason="invalid_events")
    assert invalid == 0


async def test_a_full_queue_gets_503_within_the_request_time_instead_of_hanging(
    tmp_path: Path,
) -> None:
    """The pipeline is stalled and its queue full: a request neither hangs until its client
    gives up (and retries an event that may then be queued twice) nor waits once per event."""
    settings = map_settings("http://127.0.0.1:9")
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    queue = item_queue(1, TrackingIndex(), registry=metrics.registry)  # no worker takes from it
    tenants = TenantRegistry(store.path)
    key = tenants.add("cut")
    endpoint = IngestEndpoint(_Engine(settings, metrics, queue), tenants, timeout=0.5)
    server = AppServer(
        Starlette(routes=[Route("/api/v1/events", endpoint.post_events, methods=["POST"])])
    )
    await server.start()
    events = [
        {"event_id": f"ops-{n}", "title": "Fleet", "body": "Form up", "notification_type": "rally"}
        for n in range(3)
    ]
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
            first = await client.post(
                "/api/v1/events", json=events[0], headers={"authorization": f"Bearer {key}"}
            )
            assert queue.full()  # the first event waits in the queue, never confirmed
            batch = await client.post(
                "/api/v1/events",
                json={"events": events[1:]},
                headers={"authorization": f"Bearer {key}"},
            )
    finally:
        await server.stop()
        tenants.close()
        store.close()
    assert first.status_code == 503, first.text
    assert batch.status_code == 503, batch.text
    assert batch.headers.get("retry-after")
    for result in batch.json()["results"]:
        assert result["status"] == "rejected"
        assert "queue is full" in result["reason"]
        assert "retry with the same event_id" in result["reason"]
    assert queue.qsize() == 1  # nothing of the refused batch was queued behind the answer


async def test_a_database_that_cannot_grow_gets_503_a_line_per_outage_and_the_events_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The database cannot grow (SQLITE_FULL, ``PRAGMA max_page_count`` on the store's own
    connection): each request is answered 503 with Retry-After, never 2xx, and the log said
    "ingest event not processed" once per event of every request (a client posting batches of
    50 every few seconds wrote hundreds of lines a minute). One line now says it per tenant and
    interval, with the error; once the database grows again the kept events are stored and a
    retry is answered "duplicate"."""
    settings = map_settings("http://127.0.0.1:9")
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(64, index, registry=metrics.registry)
    worker = PipelineWorker(queue, Engine(settings, store, index, metrics))
    tenants = TenantRegistry(store.path)
    key = tenants.add("cut")
    endpoint = IngestEndpoint(_Engine(settings, metrics, queue), tenants, timeout=2.0)
    server = AppServer(
        Starlette(routes=[Route("/api/v1/events", endpoint.post_events, methods=["POST"])])
    )
    await server.start()
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    pipeline = asyncio.create_task(worker.run())
    batch = {
        "events": [
            {"event_id": f"ops-{n}", "title": "Fleet", "body": "x" * 4000, "severity": "info"}
            for n in range(10)
        ]
    }
    auth = {"authorization": f"Bearer {key}"}
    caplog.set_level(logging.INFO, logger="wanderer_console.server.ingest")
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
            first = await client.post("/api/v1/events", json=batch, headers=auth)
            again = await client.post("/api/v1/events", json=batch, headers=auth)
            assert store.write_fault is not None
            store._conn.execute("PRAGMA max_page_count = 1000000")  # room again
            await wait_for(lambda: store.has_event("cut", "api:ops-9"), 30, "kept events stored")
            retried = await client.post("/api/v1/events", json=batch, headers=auth)
    finally:
        pipeline.cancel()
        await asyncio.gather(pipeline, return_exceptions=True)
        await server.stop()
        tenants.close()
        store.close()
    for response in (first, again):
        assert response.status_code == 503, response.text
        assert response.headers.get("retry-after")
        assert {r["status"] for r in response.json()["results"]} == {"rejected"}
    assert retried.status_code == 200, retried.text
    assert retried.json()["duplicate"] == 10
    said = [r for r in caplog.records if r.name == "wanderer_console.server.ingest"]
    unconfirmed = [r for r in said if r.getMessage() == "ingest event not processed"]
    assert len(unconfirmed) == 1, [r.getMessage() for r in unconfirmed]
    assert "full" in unconfirmed[0].ctx["error"]  # type: ignore[attr-defined]


async def test_a_repeat_of_an_event_not_yet_written_is_not_answered_duplicate(
    tmp_path: Path,
) -> None:
    """The same event_id twice in one request (or a retry racing the first copy into one batch)
    while the database cannot grow: the repeat was answered "duplicate" as soon as it was
    decided, before the first copy's write, and the answer was 200 while nothing was stored (a
    crash then lost the event the client was told was kept). The repeat now waits on the first
    copy's write and shares its outcome: not confirmed, so 503 and "retry"."""
    settings = map_settings("http://127.0.0.1:9")
    metrics = Metrics()
    store = SqliteStore(tmp_path / "db.sqlite")
    index = TrackingIndex()
    queue = item_queue(64, index, registry=metrics.registry)
    worker = PipelineWorker(queue, Engine(settings, store, index, metrics))
    tenants = TenantRegistry(store.path)
    key = tenants.add("cut")
    endpoint = IngestEndpoint(_Engine(settings, metrics, queue), tenants, timeout=2.0)
    server = AppServer(
        Starlette(routes=[Route("/api/v1/events", endpoint.post_events, methods=["POST"])])
    )
    await server.start()
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages}")
    pipeline = asyncio.create_task(worker.run())
    events = [
        {"event_id": f"ops-{n}", "title": "Fleet", "body": "x" * 4000, "severity": "info"}
        for n in range(4)
    ]
    batch = {"events": [*events, events[0]]}  # ops-0 again, last
    auth = {"authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
            first = await client.post("/api/v1/events", json=batch, headers=auth)
            assert store.write_fault is not None
            stored_then = store.has_event("cut", "api:ops-0")
            store._conn.execute("PRAGMA max_page_count = 1000000")  # room again
            await wait_for(lambda: store.has_event("cut", "api:ops-3"), 30, "kept events stored")
            retried = await client.post("/api/v1/events", json=batch, headers=auth)
    finally:
        pipeline.cancel()
        await asyncio.gather(pipeline, return_exceptions=True)
        await server.stop()
        tenants.close()
        store.close()
    assert not stored_then
    assert first.status_code == 503, first.text
    assert [r["status"] for r in first.json()["results"]] == ["rejected"] * 5
    assert retried.status_code == 200, retried.text
    assert retried.json()["duplicate"] == 5
