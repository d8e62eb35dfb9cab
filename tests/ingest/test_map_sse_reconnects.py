"""Many map streams turned away at once must not all come back at the same instant."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from tests.ingest_faults.conftest import map_settings
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.map_sse import MapSseSource
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(60)

MAP_ID = "5d0f7c2e-8a41-4c55-9f0b-2b6c1e7d9a10"


async def test_streams_closed_over_the_limit_together_come_back_spread_out(
    tmp_path: Path,
) -> None:
    """A server back from a restart is rushed by every map and closes the ones over its
    connection limit before ``connected``. Each waits at least the over-limit delay (30 s),
    but not exactly that: all coming back in the same instant would hit the limit again."""
    server = FakeMapServer("cut", "key", MAP_ID)
    server.over_limit = True
    app = AppServer(server.app, on_stop=server.close)
    await app.start()
    settings = map_settings(app.url)
    store = SqliteStore(tmp_path / "db.sqlite")
    http = HttpClient("map", timeout=5.0)

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
            backoff=Backoff(1.0, 30.0, rng=random.Random(seed)),
        )
        for seed in range(10)
    ]
    try:
        delays = await asyncio.gather(*(source._session() for source in sources))
    finally:
        await http.aclose()
        await app.stop()
        store.close()
    assert len(server.connect_log) == 10
    assert min(delays) >= 30.0
    assert max(delays) - min(delays) >= 3.0, f"all came back together: {delays}"
