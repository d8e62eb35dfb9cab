"""Gap backfill over loopback: after every new join the poller asks the fake wanderer-kills REST
API for the kills since the gap began (``since_hours``), bounded, retried, and the watermark
never moves past a gap it has not filled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import wait_for
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.fallback import BackfillPolicy, FallbackPoller
from wanderer_console.ingest.items import Item, KillItem
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
    joins: int = 0
    marks: list[float] = field(default_factory=list)

    async def sink(self, item: Item) -> None:
        assert isinstance(item, KillItem)
        self.items.append(item)

    def poller(self, resume_from: float | None = None, **policy: Any) -> FallbackPoller:
        return FallbackPoller(
            self.http,
            self.rest_url,
            lambda: set(self.systems),
            lambda: True,  # the socket is up: no polling, only gaps
            self.sink,
            Metrics(),
            after=3600.0,
            interval=0.1,
            check=0.02,
            joins=lambda: self.joins,
            resume_from=resume_from,
            mark_seen=self.marks.append,
            policy=BackfillPolicy(**{"mark_every": 0.05, **policy}),
        )

    def kill(self, system_id: int, age: float) -> dict[str, Any]:
        when = datetime.now(UTC) - timedelta(seconds=age)
        return self.gen.make_killmail(system_id=system_id, kill_time=when)

    def ids(self) -> list[int]:
        return sorted(i.killmail.killmail_id for i in self.items)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    gen = DataGenerator(31)
    killstream = FakeKillstream()
    await killstream.start()
    rest = FakeKillstreamRest(killstream)
    server = AppServer(rest.app)
    await server.start()
    http = HttpClient("killstream", timeout=2.0)
    try:
        yield Rig(killstream, rest, server.url, http, gen, set(sorted(gen.systems)[:12]))
    finally:
        await http.aclose()
        await server.stop()
        await killstream.stop()


@contextlib.asynccontextmanager
async def running(poller: FallbackPoller) -> AsyncIterator[None]:
    task = asyncio.create_task(poller.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_reconnect_backfills_the_gap_within_its_reach_once(rig: Rig) -> None:
    tracked = sorted(rig.systems)
    poller = rig.poller(overlap=60.0)
    rig.joins = 1
    async with running(poller):
        await wait_for(lambda: rig.marks)  # first join of a first run: no gap, a watermark
        assert rig.rest.requests == []
        gap_began = rig.marks[-1]
        # Published while the socket was away: nine in one system, one in another.
        gap = [rig.kill(tracked[0], age=0) for _ in range(9)] + [rig.kill(tracked[11], age=0)]
        late = rig.kill(tracked[3], age=time.time() - gap_began + 30)  # inside the overlap
        stale = rig.kill(tracked[3], age=time.time() - gap_began + 600)  # before the reach
        for kill in [*gap, late, stale]:
            await rig.killstream.push_kill(kill)
        marks = len(rig.marks)
        rig.joins = 2
        await wait_for(lambda: poller.counters["gaps_filled"] == 1)
        assert len(rig.marks) == marks  # not past the gap until it was filled
        await wait_for(lambda: len(rig.marks) > marks)
        await asyncio.sleep(0.2)
    expected = sorted(k["killmail_id"] for k in [*gap, late])
    assert rig.ids() == expected  # each once, the stale one left out
    assert {i.source for i in rig.items} == {"backfill"}
    assert [len(r["system_ids"]) for r in rig.rest.requests] == [10, 2]
    assert {r["since_hours"] for r in rig.rest.requests} == {1}
    assert {r["limit"] for r in rig.rest.requests} == {200}
    assert poller.counters["backfill_too_old"] == 1


async def test_the_first_join_after_a_restart_backfills_from_the_watermark(rig: Rig) -> None:
    system = sorted(rig.systems)[4]
    seen = time.time() - 2 * 3600  # down for two hours
    during = [rig.kill(system, age=a) for a in (3000, 600, 5)]
    too_old = rig.kill(system, age=5400)  # older than max_age: never asked for, never fed
    for kill in [*during, too_old]:
        await rig.killstream.push_kill(kill)
    poller = rig.poller(resume_from=seen, max_age=3600.0)
    async with running(poller):
        await asyncio.sleep(0.2)
        assert rig.items == []  # no join yet, no backfill
        rig.joins = 1
        await wait_for(lambda: poller.counters["gaps_filled"] == 1)
    assert rig.ids() == sorted(k["killmail_id"] for k in during)
    assert {r["since_hours"] for r in rig.rest.requests} == {1}  # reach capped by max_age


@pytest.mark.slow
async def test_a_failing_backfill_is_retried_then_given_up(rig: Rig) -> None:
    kill = rig.kill(sorted(rig.systems)[0], age=10)
    await rig.killstream.push_kill(kill)
    poller = rig.poller(resume_from=time.time() - 60, attempts=3)
    rig.rest.fail_next = 2  # the first try's two requests fail
    rig.joins = 1
    async with running(poller):
        await wait_for(lambda: poller.counters["gaps_filled"] == 1)
    assert rig.ids() == [kill["killmail_id"]]
    assert len(rig.rest.requests) == 4  # the second try asked for the same systems again

    rig.items.clear()
    rig.rest.requests.clear()
    rig.rest.fail_next = 1_000
    rig.marks.clear()
    poller = rig.poller(resume_from=time.time() - 60, attempts=3)
    async with running(poller):
        await wait_for(lambda: poller.counters["gaps_abandoned"] == 1)
        assert rig.marks == []  # nothing marked while the gap was open
        await wait_for(lambda: rig.marks)  # given up: the watermark moves on
    assert len(rig.rest.requests) == 3 * 2  # three tries of two requests, then no more
    assert poller.counters["gaps_filled"] == 0


async def test_the_rest_fake_honours_since_hours_and_limit(rig: Rig) -> None:
    system = sorted(rig.systems)[2]
    kills = [rig.kill(system, age=a) for a in (10, 20, 2 * 3600 + 60, 30)]
    for kill in kills:
        await rig.killstream.push_kill(kill)
    body = {"system_ids": [system], "since_hours": 1, "limit": 2}
    answer = (await rig.http.post(f"{rig.rest_url}/api/v1/kills/systems", json=body)).json()
    got = answer["data"]["systems_kills"][str(system)]
    assert [k["killmail_id"] for k in got] == [kills[3]["killmail_id"], kills[1]["killmail_id"]]
    body = {"system_ids": [system], "since_hours": 3, "limit": 10}
    answer = (await rig.http.post(f"{rig.rest_url}/api/v1/kills/systems", json=body)).json()
    assert len(answer["data"]["systems_kills"][str(system)]) == 4
