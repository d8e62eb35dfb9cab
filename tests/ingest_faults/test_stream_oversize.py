"""Oversize stream input (issue 14, item 6): skipped or reset, always counted and told.

Map SSE: a line or event over its limit is skipped without being held, the stream goes on and
the cursor stays right. Killstream: a frame over ``max_frame_bytes`` resets the socket (the
WebSocket protocol has no skipping a frame), counted and logged; the rejoin's preload and the
live pushes after it still deliver the kills.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support import wait_for
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item, KillItem, MapEventItem
from wanderer_console.ingest.killstream import KillstreamSource
from wanderer_console.ingest.map_sse import MapSseSource
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import item_queue
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import LOBBY, FakeKillstream
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

from .conftest import map_settings

pytestmark = pytest.mark.timeout(90)

MAP_ID = "5d0f7c2e-8a41-4c55-9f0b-2b6c1e7d9a10"
REPO = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
FRAME_LIMIT = 4 * MiB
"""The documented default of ``[killstream] max_frame_bytes``."""


@pytest.fixture
async def map_server() -> AsyncIterator[tuple[FakeMapServer, str]]:
    fake = FakeMapServer("cut", "key", MAP_ID, keepalive_seconds=0.5)
    app = AppServer(fake.app, on_stop=fake.close)
    await app.start()
    try:
        yield fake, app.url
    finally:
        await app.stop()


@pytest.mark.slow
async def test_64_mib_sse_line_is_skipped_unbuffered_counted_and_the_next_event_arrives(
    map_server: tuple[FakeMapServer, str], tmp_path: Path
) -> None:
    fake, url = map_server
    # The client alone in a child process, so its memory is measured without the server's.
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.ingest_faults.sse_memory_child",
        url,
        "cut",
        "key",
        str(tmp_path / "db.sqlite"),
        cwd=REPO,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"ready"
        skipped = fake.inject_oversize(64 * MiB)  # one line, no newline for 64 MiB
        after = fake.add_system(31_000_001)["id"]
        child.stdin.write(after.encode() + b"\n")
        await child.stdin.drain()
        result: dict[str, Any] = json.loads(await asyncio.wait_for(child.stdout.readline(), 60))
        assert await asyncio.wait_for(child.wait(), 30) == 0
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    # Before: the line was held whole (and copied to join it): +130 MiB and more at the peak.
    assert result["peak_growth"] < 16 * MiB, result
    assert result["rss_growth"] < 16 * MiB, result
    assert result["oversize"] == 1
    assert result["ids"] == [after]  # the event after it arrived, and nothing in its place
    assert skipped not in result["ids"]
    assert result["state"] == "connected"
    assert result["reconnects"] == 0
    assert f"line of {64 * MiB + len('data: ')} bytes" in result["last_error"]
    assert len(fake.connect_log) == 1


async def test_oversize_event_of_many_normal_lines_is_skipped_counted_and_the_cursor_moves_on(
    map_server: tuple[FakeMapServer, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = map_server
    settings = map_settings(url)
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
        "cut", settings.maps["cut"], http, store, queue.put, metrics, backoff=Backoff(0.01, 0.02)
    )
    tasks = [asyncio.create_task(pipeline()), asyncio.create_task(source.run())]
    caplog.set_level(logging.WARNING, logger="wanderer_console.ingest.map_sse")
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        first = fake.add_system(31_000_001)["id"]
        # 2 MiB of data in 1 KiB lines: every line is normal, the event is twice the 1 MiB cap.
        skipped = fake.inject_oversize(2 * MiB, line_bytes=1024)
        after = fake.add_system(31_000_002)["id"]
        await wait_for(lambda: after in processed and queue.empty())
        assert store.get_cursor("sse:cut") == after  # past the skipped event, on what was taken
        # A resume starts from there: nothing is replayed, the next live event arrives.
        fake.drop_connections()
        await wait_for(lambda: len(fake.connect_log) == 2)
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        last = fake.add_system(31_000_003)["id"]
        await wait_for(lambda: last in processed and queue.empty())
    finally:
        await cancel_and_wait(tasks)
        await http.aclose()
        store.close()
    assert processed == [first, after, last]
    assert skipped not in processed
    assert fake.connect_log[1]["last_event_id"] == after
    oversize = metrics.value("wc_stream_oversize_total", source="sse:cut", reason="event")
    assert oversize == 1
    assert metrics.total("wc_events_invalid_total") == 0  # skipped unparsed, not "malformed"
    [record] = [r for r in caplog.records if r.getMessage() == "oversize map event skipped"]
    assert record.levelno == logging.WARNING
    ctx = record.ctx  # type: ignore[attr-defined]
    assert ctx["reason"] == "event"
    assert ctx["limit"] == MiB
    assert ctx["size"] > 2 * MiB
    assert ctx["event"] == "add_system"
    assert ctx["last_event_id"] == skipped


SYSTEM = 31_000_005


@pytest.fixture
async def killstream() -> AsyncIterator[FakeKillstream]:
    server = FakeKillstream(duplicate_realtime=False)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _kill_source(server: FakeKillstream, metrics: Metrics, seen: list[int]) -> KillstreamSource:
    async def sink(item: Item) -> None:
        if isinstance(item, KillItem):
            seen.append(item.killmail.killmail_id)

    return KillstreamSource("systems", server.url, lambda: {SYSTEM}, sink, metrics)


def _giant_frame(kill: dict[str, Any], size: int) -> str:
    padded = {**kill, "padding": "x" * size}
    payload = {"system_id": SYSTEM, "killmails": [padded], "preload": False}
    return orjson.dumps([None, None, LOBBY, "killmail_update", payload]).decode()


@pytest.mark.parametrize("compressed", [True, False], ids=["deflated", "plain"])
async def test_oversize_killstream_frame_is_counted_and_reported_and_later_kills_arrive(
    killstream: FakeKillstream, compressed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    generator = DataGenerator(seed=3)
    before, during, after, giant = (generator.make_killmail(system_id=SYSTEM) for _ in range(4))
    metrics = Metrics()
    seen: list[int] = []
    source = _kill_source(killstream, metrics, seen)
    caplog.set_level(logging.WARNING, logger="wanderer_console.ingest.killstream")
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        await killstream.push_kill(before)
        await wait_for(lambda: before["killmail_id"] in seen)
        frame = _giant_frame(giant, 20_000_000)  # the 20 MB frame of the report
        if compressed:
            await killstream.broadcast_raw([frame])
        else:
            killstream.write_wire(killstream.wire_frames([frame], compress=False))
        await killstream.push_kill(during)  # lands in the reset: the rejoin's preload has it
        await wait_for(lambda: len(killstream.joins) == 2 and killstream.joined_clients == 1)
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        await killstream.push_kill(after)
        await wait_for(lambda: after["killmail_id"] in seen)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(seen) == sorted(k["killmail_id"] for k in (before, during, after))
    assert giant["killmail_id"] not in seen
    source_name = "killstream:systems"
    oversize = metrics.value("wc_stream_oversize_total", source=source_name, reason="frame")
    assert oversize == 1
    assert source.health.reconnects == 1
    limit = FRAME_LIMIT
    error = source.health.last_error or ""  # still shown once connected again
    assert f"over the {limit}-byte limit" in error
    [record] = [r for r in caplog.records if "frame over the size limit" in r.getMessage()]
    assert record.levelno == logging.WARNING
    ctx = record.ctx  # type: ignore[attr-defined]
    assert ctx["limit"] == limit
    # Deflated, websockets stops inflating at the limit: the size is known only when plain.
    assert ctx["size"] == (None if compressed else len(frame.encode()))


@pytest.mark.slow
async def test_oversize_frame_repeated_on_every_join_backs_off_instead_of_a_hot_loop(
    killstream: FakeKillstream,
) -> None:
    giant = DataGenerator(seed=4).make_killmail(system_id=SYSTEM)
    killstream.seed_kills([{**giant, "padding": "x" * (FRAME_LIMIT + 1)}])
    metrics = Metrics()
    seen: list[int] = []
    source = _kill_source(killstream, metrics, seen)
    task = asyncio.create_task(source.run())
    try:
        await asyncio.sleep(3.5)  # each join replays the preload, each preload resets the socket
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    resets = metrics.value("wc_stream_oversize_total", source="killstream:systems", reason="frame")
    # The backoff starts at 0.1 s: without a wait of its own this reconnected within a second.
    assert 2 <= resets <= 4
    assert killstream.connections <= 4
    assert seen == []
