"""A burst of 10,000 kills into a deliberately slow pipeline: nothing dropped, sources pause."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support import wait_for
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import KillItem
from wanderer_console.ingest.killstream import KillstreamSource
from wanderer_console.pipeline.queue import item_queue
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

BURST = 10_000
BOUND = 64
SYSTEM = 30000142


async def test_burst_of_10000_kills_into_a_slow_pipeline_drops_nothing() -> None:
    generator = DataGenerator(5)
    template = generator.make_killmail(system_id=SYSTEM)
    kills = [{**template, "killmail_id": 100_000_000 + n} for n in range(BURST)]
    server = FakeKillstream(duplicate_realtime=False)
    await server.start()
    metrics = Metrics()
    index = TrackingIndex()
    index.put_system("m", TrackedSystem(SYSTEM))
    queue = item_queue(BOUND, index, registry=metrics.registry)
    seen: list[int] = []
    depth_seen: list[int] = []

    async def slow_pipeline() -> None:
        while True:
            item = await queue.get()
            depth_seen.append(queue.qsize())
            assert isinstance(item, KillItem)
            seen.append(item.killmail.killmail_id)
            if len(seen) % 50 == 0:
                await asyncio.sleep(0.005)  # a slow engine: far slower than the socket
            queue.task_done()

    source = KillstreamSource("systems", server.url, lambda: {SYSTEM}, queue.put, metrics)
    tasks = [asyncio.create_task(slow_pipeline()), asyncio.create_task(source.run())]
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)

        async def burst() -> None:
            for killmail in kills:
                await server.push_kill(killmail)

        started = time.monotonic()
        await asyncio.wait_for(burst(), 40)
        await wait_for(lambda: len(seen) == BURST, timeout=40)
        elapsed = time.monotonic() - started
    finally:
        await cancel_and_wait(tasks)
        await server.stop()

    assert sorted(seen) == [k["killmail_id"] for k in kills]  # 0 dropped, none twice
    assert queue.high_water <= BOUND  # the bound held
    assert max(depth_seen) < BOUND
    paused = metrics.value("wc_source_paused_seconds_total", source="killstream")
    assert paused > 0  # the source waited for room …
    assert queue.paused_seconds["killstream"] == pytest.approx(paused)
    assert metrics.value("wc_source_pauses_total", source="killstream") >= 1
    assert queue.paused_sources() == []  # … and resumed
    assert source.health.reconnects == 0  # pausing is not mistaken for a dead socket
    assert metrics.value("wc_queue_wait_seconds_count") == BURST
    assert elapsed < 40
