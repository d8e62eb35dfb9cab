"""Killstream frames of unexpected shapes, over a real socket from the fake wanderer-kills: each
is skipped and counted, the socket stays up, and the kills after it still arrive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import orjson
import pytest

from tests.support import wait_for
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.ingest.killstream import _CHUNK, TOPIC, KillstreamSource
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(30)

SYSTEM = 30000142


@pytest.fixture
async def server() -> AsyncIterator[FakeKillstream]:
    killstream = FakeKillstream()
    await killstream.start()
    try:
        yield killstream
    finally:
        await killstream.stop()


def _invalid(metrics: Metrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "wc_events_invalid_total", {"source": "killstream", "reason": reason}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        # A reply whose ref is not a string (a list, an object): not one of our refs.
        ([None, [1], TOPIC, "phx_reply", {"status": "ok", "response": {}}], "frame"),
        ([None, {"r": 1}, TOPIC, "phx_reply", {"status": "ok", "response": {}}], "frame"),
        ([None, [1], "phoenix", "phx_reply", {"status": "ok", "response": {}}], "frame"),
        # A kill update without a list of kills.
        ([None, None, TOPIC, "killmail_update", {"killmails": None}], "payload"),
        ([None, None, TOPIC, "killmail_update", {"killmails": {"1": {}}}], "payload"),
        # A number no JSON double holds.
        ([None, None, TOPIC, "killmail_update", {"killmails": [{"killmail_id": "HUGE"}]}], "frame"),
    ],
)
async def test_a_frame_of_an_unexpected_shape_is_skipped_and_counted(
    server: FakeKillstream, frame: list[object], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Each is also a warning in the log (before, a kill update without a list of kills was
    only counted: nothing said what was skipped)."""
    caplog.set_level(logging.WARNING, logger="wanderer_console.ingest.killstream")
    items: list[Item] = []

    async def sink(item: Item) -> None:
        items.append(item)

    metrics = Metrics()
    source = KillstreamSource("systems", server.url, lambda: {SYSTEM}, sink, metrics)
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        text = orjson.dumps(frame).decode().replace('"HUGE"', "1e400")
        assert await server.broadcast_raw([text]) == 1
        kill = DataGenerator(3).make_killmail(system_id=SYSTEM)
        await server.push_kill(kill)
        await wait_for(lambda: items, timeout=5, what="the next kill")
        assert isinstance(items[0], KillItem)
        assert items[0].killmail.killmail_id == kill["killmail_id"]
        assert _invalid(metrics, reason) == 1
        assert [r.getMessage() for r in caplog.records] == ["bad killstream frame skipped"]
        assert server.connections == 1  # the socket was never reset
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_refused_subscribes_of_several_chunks_are_asked_again_once_per_wait(
    server: FakeKillstream,
) -> None:
    """A subscription change of two chunks that the server keeps refusing is asked again once
    per wait, not once per refused chunk: before, each refusal scheduled its own resend of
    every chunk, so the resends doubled each round (at the 60 s cap, without end)."""
    desired = {SYSTEM}
    added = set(range(30_100_001, 30_100_001 + _CHUNK + 1))  # two subscribe frames

    async def sink(item: Item) -> None:
        return None

    source = KillstreamSource(
        "systems",
        server.url,
        lambda: set(desired),
        sink,
        Metrics(),
        resubscribe=Backoff(base=0.5, cap=0.5),  # 0.25 to 0.5 s between asks
    )
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.confirmed == {SYSTEM})
        server.refuse_subscribes = 1_000_000
        desired |= added
        source.refresh()
        await wait_for(lambda: _refusals(server) >= 2)
        # A measuring window, not a synchronisation: how many asks the refusals lead to.
        await asyncio.sleep(3.0)
        # Once per wait (at least 0.25 s): two frames a round, at most 12 rounds in 3 s.
        assert _refusals(server) <= 2 + 2 * 12
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _refusals(server: FakeKillstream) -> int:
    return sum(
        1 for frame in server.sent if frame[3] == "phx_reply" and frame[4]["status"] == "error"
    )


async def test_a_socket_following_more_characters_than_one_frame_holds_still_joins(
    server: FakeKillstream,
) -> None:
    """20,000 characters (under the 50,000 a socket may follow) are more than a 128 KiB frame
    holds as one join: the join carries one chunk and the rest is subscribed in chunks (before,
    the join frame was over the server's frame limit: the server closed the socket on every
    join, and the socket never followed anything)."""
    characters = set(range(2_112_000_001, 2_112_000_001 + 20_000))
    items: list[Item] = []

    async def sink(item: Item) -> None:
        items.append(item)

    source = KillstreamSource("characters", server.url, lambda: set(characters), sink, Metrics())
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.confirmed == characters, timeout=10, what="all confirmed")
        [(_systems, followed)] = server.subscriptions()
        assert set(followed) == characters
        assert server.connections == 1
        kill = DataGenerator(3).make_killmail(victim_character_id=2_112_019_999)
        assert await server.push_kill(kill) == 1
        await wait_for(lambda: items, timeout=5, what="the kill")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
