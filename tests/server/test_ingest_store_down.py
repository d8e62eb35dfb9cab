"""``POST /api/v1/events`` when the database the tenant keys live in fails the key look-up (a
PostgreSQL restart or failover ended the registry's connection): the client is told to retry,
not handed a bare 500, and the next request works once the pool has reconnected."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from tests.ingest_faults.conftest import map_settings
from tests.store.pgtest import end_connections, fresh_schema
from wanderer_console.config.model import Settings
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.ingest.items import Item
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.pipeline.worker import PipelineWorker
from wanderer_console.server.ingest import IngestEndpoint
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.sim.server import AppServer
from wanderer_console.store.base import DatabaseUrl
from wanderer_console.store.postgres import PostgresStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.postgresql]


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


async def test_a_lost_database_connection_gets_503_with_retry_after_not_a_500() -> None:
    with fresh_schema() as base:
        name = f"wc-{uuid.uuid4().hex[:10]}"
        url = DatabaseUrl(f"{base.secret()}&application_name={name}")
        settings = map_settings("http://127.0.0.1:9")
        metrics = Metrics()
        store = PostgresStore(base)  # its connections are not ended
        index = TrackingIndex()
        queue = item_queue(64, index, registry=metrics.registry)
        pipeline = asyncio.create_task(
            PipelineWorker(queue, Engine(settings, store, index, metrics)).run()
        )
        tenants = TenantRegistry(url)
        key = tenants.add("cut")
        endpoint = IngestEndpoint(_Engine(settings, metrics, queue), tenants)
        server = AppServer(
            Starlette(routes=[Route("/api/v1/events", endpoint.post_events, methods=["POST"])])
        )
        await server.start()
        headers = {"authorization": f"Bearer {key}"}
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=10.0) as client:
                # The server restarts: every connection of the registry's pool is ended.
                assert end_connections(url) >= 1
                failed = await client.post(
                    "/api/v1/events", json={"title": "Fleet"}, headers=headers
                )
                again = await client.post(
                    "/api/v1/events", json={"title": "Fleet"}, headers=headers
                )
        finally:
            pipeline.cancel()
            await asyncio.gather(pipeline, return_exceptions=True)
            await server.stop()
            tenants.close()
            store.close()
    assert failed.status_code == 503, failed.text
    assert failed.headers.get("retry-after")
    error = failed.json()["error"]
    assert "retry" in error
    assert "terminating connection" not in error  # the database's own words stay in the log
    refused = metrics.value("wc_server_refusals_total", endpoint="ingest", reason="store")
    assert refused == 1
    assert again.status_code == 200, again.text  # the pool reconnected
