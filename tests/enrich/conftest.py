"""Fake ESI served over real loopback, plus an EsiClient pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from wanderer_console.enrich.esi import EsiClient
from wanderer_console.http.client import HttpClient
from wanderer_console.sim.esi import FakeEsi
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.server import AppServer

USER_AGENT = "WandererConsole/0.1.0 (ops@example.org; +https://example.org/wanderer-console)"


@dataclass
class EsiEnv:
    gen: DataGenerator
    fake: FakeEsi
    url: str
    http: HttpClient

    def client(self) -> EsiClient:
        """A fresh client (own Expires/ETag memory), like after a process restart."""
        return EsiClient(self.http, self.url, USER_AGENT)


@pytest.fixture
async def esi_env() -> AsyncIterator[EsiEnv]:
    gen = DataGenerator(7, systems=30, characters=60)
    fake = FakeEsi(gen)
    server = AppServer(fake.app)
    await server.start()
    http = HttpClient("esi", timeout=5.0)
    try:
        yield EsiEnv(gen, fake, server.url, http)
    finally:
        await http.aclose()
        await server.stop()
