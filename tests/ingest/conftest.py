"""Loopback fixtures for the kill sources: the fake R2Z2 feed and a fast-timed poller."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem, TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.ingest.r2z2 import R2z2Source, R2z2Timing
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.r2z2 import FakeR2z2
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

USER_AGENT = "WandererConsoleTests/0.1 (+https://example.org; tests@example.org)"

FAST = R2z2Timing(
    after_ok=0.03,
    catching_up=0.025,
    after_miss=0.35,
    error_base=0.05,
    error_cap=0.2,
    default_retry_after=0.3,
    ban=0.6,
    stale_after=0.5,
    stale_lead=100,
    request_timeout=2.0,
)
"""The §8.2 timings shrunk; the fake below is shrunk in proportion (20 ms, 300 ms cooldown)."""


@dataclass
class Feed:
    """A running fake feed plus what a poller needs."""

    fake: FakeR2z2
    url: str
    store: SqliteStore
    index: TrackingIndex
    gen: DataGenerator
    tracked_system: int
    untracked_system: int
    tracked_pilot: int
    items: list[KillItem] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)
    _clients: list[HttpClient] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def sink(self, item: Item) -> None:
        assert isinstance(item, KillItem)
        self.items.append(item)

    def source(self, timing: R2z2Timing = FAST, **kwargs: Any) -> R2z2Source:
        http = HttpClient("zkillboard", timeout=2.0)
        self._clients.append(http)
        return R2z2Source(
            http,
            self.store,
            self.index,
            kwargs.pop("sink", self.sink),
            self.metrics,
            url=self.url,
            user_agent=kwargs.pop("user_agent", USER_AGENT),
            timing=timing,
            **kwargs,
        )

    def start(self, source: R2z2Source) -> asyncio.Task[None]:
        task = asyncio.create_task(source.run())
        self._tasks.append(task)
        return task

    async def stop(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    def ids(self) -> list[int]:
        return [item.killmail.killmail_id for item in self.items]

    def tracked_kill(self) -> dict[str, Any]:
        return self.gen.make_killmail(system_id=self.tracked_system)

    def untracked_kill(self) -> dict[str, Any]:
        return self.gen.make_killmail(
            system_id=self.untracked_system, exclude_character_ids=[self.tracked_pilot]
        )

    async def close(self) -> None:
        for task in self._tasks:
            await self.stop(task)
        for client in self._clients:
            await client.aclose()


@pytest.fixture
def gen() -> DataGenerator:
    return DataGenerator(11)


@pytest.fixture
async def feed(gen: DataGenerator, store: SqliteStore) -> AsyncIterator[Feed]:
    fake = FakeR2z2(gen, min_interval=0.02, miss_cooldown=0.3, ban_seconds=60.0)
    server = AppServer(fake.app)
    await server.start()
    systems = sorted(gen.systems)
    index = TrackingIndex()
    pilot = sorted(gen.characters)[0]
    index.replace("demo", [TrackedSystem(systems[0])], [TrackedCharacter(pilot)])
    result = Feed(fake, server.url, store, index, gen, systems[0], systems[-1], pilot)
    try:
        yield result
    finally:
        await result.close()
        await server.stop()
