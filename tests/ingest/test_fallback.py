"""FallbackPoller over loopback: REST polling starts when the socket is down, stops when back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support import wait_for
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.fallback import FallbackPoller
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.ingest.killstream import KillstreamSource
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.killstream_rest import FakeKillstreamRest
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(60)


@dataclass
class Rig:
    killstream: FakeKillstream
    rest: FakeKillstreamRest
    rest_url: str
    http: HttpClient
    gen: DataGenerator
    systems: set[int]
    items: list[KillItem] = field(default_factory=list)
    up: bool = True

    async def sink(self, item: Item) -> None:
        assert isinstance(item, KillItem)
        self.items.append(item)

    def poller(self, socket_up: object = None, **kwargs: Any) -> FallbackPoller:
        return FallbackPoller(
            self.http,
            self.rest_url,
            lambda: set(self.systems),
            socket_up if callable(socket_up) else (lambda: self.up),
            self.sink,
            Metrics(),
            **{"after": 0.3, "interval": 0.2, "check": 0.02, **kwargs},
        )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    gen = DataGenerator(21)
    killstream = FakeKillstream()
    await killstream.start()
    rest = FakeKillstreamRest(killstream)
    server = AppServer(rest.app)
    await server.start()
    http = HttpClient("killstream", timeout=2.0)
    systems = set(sorted(gen.systems)[:23])  # three calls of at most 10
    try:
        yield Rig(killstream, rest, server.url, http, gen, systems)
    finally:
        await http.aclose()
        await server.stop()
        await killstream.stop()


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@pytest.mark.slow
async def test_polls_after_the_threshold_and_stops_when_the_socket_is_back(rig: Rig) -> None:
    tracked = sorted(rig.systems)
    kills = [rig.gen.make_killmail(system_id=s) for s in (tracked[0], tracked[15], tracked[22])]
    for kill in kills:
        await rig.killstream.push_kill(kill)
    poller = rig.poller()
    task = asyncio.create_task(poller.run())
    try:
        await asyncio.sleep(0.2)
        assert rig.rest.requests == []  # the socket is up: no polling
        rig.up = False
        loop = asyncio.get_running_loop()
        went_down = loop.time()
        await wait_for(lambda: rig.rest.requests)
        assert loop.time() - went_down >= 0.3 - 0.02
        await wait_for(lambda: len(rig.items) == 3)
        assert sorted(i.killmail.killmail_id for i in rig.items) == sorted(
            k["killmail_id"] for k in kills
        )
        assert {i.source for i in rig.items} == {"fallback"}
        first_round = rig.rest.requests[:3]
        assert [len(r["system_ids"]) for r in first_round] == [10, 10, 3]
        assert all(r["since_hours"] == 1 for r in first_round)
        assert poller.active
        await wait_for(lambda: poller.polls >= 2)
        assert len(rig.items) == 3  # kills already fed are not fed again
        late = rig.gen.make_killmail(system_id=tracked[5])
        await rig.killstream.push_kill(late)
        await wait_for(lambda: len(rig.items) == 4)
        rig.up = True
        await wait_for(lambda: not poller.active)
        assert poller.health.state is ConnectionState.STOPPED
        count = len(rig.rest.requests)
        await asyncio.sleep(0.5)
        assert len(rig.rest.requests) == count
    finally:
        await _cancel(task)


async def test_a_short_outage_does_not_start_polling(rig: Rig) -> None:
    # The poller's own clock, moved only by its own waits: the socket is down for exactly
    # 0.25 s of the 0.5 s allowed, however late the event loop runs (on the wall clock, a
    # loop stalled past 0.5 s made the outage look long and polling start).
    now = 0.0
    watched = asyncio.Event()

    def clock() -> float:
        return now

    async def sleep(seconds: float) -> None:
        nonlocal now
        now += seconds
        if now >= 0.25:
            rig.up = True
        if now >= 1.0:
            watched.set()
        await asyncio.sleep(0)

    poller = rig.poller(after=0.5, clock=clock, sleep=sleep)
    rig.up = False
    task = asyncio.create_task(poller.run())
    try:
        await asyncio.wait_for(watched.wait(), 30)
        assert rig.rest.requests == []
        assert poller.counters["activations"] == 0
    finally:
        await _cancel(task)


async def test_rest_errors_are_counted_and_polling_goes_on(rig: Rig) -> None:
    kill = rig.gen.make_killmail(system_id=sorted(rig.systems)[0])
    await rig.killstream.push_kill(kill)
    rig.rest.fail_next = 3
    rig.up = False
    poller = rig.poller(after=0.0)
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: rig.items)
        assert poller.counters["errors"] == 3
        await wait_for(lambda: poller.polls >= 2)
        assert poller.health.state is ConnectionState.CONNECTED
    finally:
        await _cancel(task)


@pytest.mark.slow
async def test_fallback_follows_a_real_killstream_socket(rig: Rig) -> None:
    tracked = sorted(rig.systems)
    source = KillstreamSource(
        "systems",
        rig.killstream.url,
        lambda: set(rig.systems),
        rig.sink,
        Metrics(),
        backoff=Backoff(0.05, 0.1),
    )
    poller = rig.poller(lambda: source.health.state is ConnectionState.CONNECTED)
    socket_task = asyncio.create_task(source.run())
    poll_task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        port = int(rig.killstream.url.rsplit(":", 1)[1])
        await rig.killstream.stop()
        # Kills the socket missed while the killstream's WebSocket is unreachable.
        missed = rig.gen.make_killmail(system_id=tracked[3])
        await rig.killstream.push_kill(missed)
        await wait_for(lambda: poller.active)
        await wait_for(lambda: any(i.source == "fallback" for i in rig.items))
        assert [i.killmail.killmail_id for i in rig.items if i.source == "fallback"] == [
            missed["killmail_id"]
        ]
        await rig.killstream.start(port=port)
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        await wait_for(lambda: not poller.active)
    finally:
        await _cancel(poll_task)
        await _cancel(socket_task)
