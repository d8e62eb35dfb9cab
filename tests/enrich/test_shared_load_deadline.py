"""A load two callers share ends by the later of their deadlines, and each caller stops waiting
at its own (http/deadline.py).

The shared load ran under the deadline of the caller that started it: a second caller with a
longer bound (or none) got the first one's timeout although it would have waited for the
answer. The ESI here answers nothing until the test opens its gate, so which caller gets what
does not depend on how fast anything is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import wait_for
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient, EsiError
from wanderer_console.http.client import HttpClient
from wanderer_console.http.deadline import deadline
from wanderer_console.sim.esi import FakeEsi
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.server import AppServer

from .conftest import USER_AGENT

SHORT = 0.3
"""The impatient caller's bound, seconds: its request times out long before the gate opens."""
LONG = 60.0
"""The patient caller's bound, seconds: longer than any wait of the test."""
SAFETY = 10.0
"""Bound on the test's own waits (a safety net, not what is tested)."""


@dataclass
class Gate:
    """ASGI middleware: every request waits until :attr:`open` is set."""

    app: ASGIApp
    open: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.arrived += 1
            await self.open.wait()
        await self.app(scope, receive, send)


@dataclass
class Env:
    gate: Gate
    fake: FakeEsi
    cache: CacheFacade
    character: int


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    gen = DataGenerator(7, systems=30, characters=60)
    fake = FakeEsi(gen)
    gate = Gate(fake.app)
    server = AppServer(gate)
    await server.start()
    http = HttpClient("esi", timeout=2 * LONG)
    try:
        cache = CacheFacade(EsiClient(http, server.url, USER_AGENT))
        yield Env(gate, fake, cache, next(iter(gen.characters)))
    finally:
        gate.open.set()
        await http.aclose()
        await server.stop()


async def _ask(cache: CacheFacade, character: int, bound: float | None) -> Any:
    if bound is None:
        return await cache.get_character(character)
    with deadline(bound):
        return await cache.get_character(character)


@pytest.mark.parametrize("longer", [LONG, None], ids=["longer-bound", "no-bound"])
async def test_a_caller_with_a_longer_bound_gets_the_answer_the_first_gave_up_on(
    env: Env, longer: float | None
) -> None:
    first = asyncio.create_task(_ask(env.cache, env.character, SHORT))
    await wait_for(lambda: env.gate.arrived >= 1, SAFETY, "the first caller's request")
    second = asyncio.create_task(_ask(env.cache, env.character, longer))

    with pytest.raises(EsiError):
        await asyncio.wait_for(first, SAFETY)
    env.gate.open.set()
    doc = await asyncio.wait_for(second, SAFETY)

    assert doc is not None
    assert doc["name"] == env.fake.generator.characters[env.character].name


async def test_a_caller_with_a_shorter_bound_stops_at_it_and_leaves_the_load_running(
    env: Env,
) -> None:
    first = asyncio.create_task(_ask(env.cache, env.character, LONG))
    await wait_for(lambda: env.gate.arrived >= 1, SAFETY, "the first caller's request")

    with pytest.raises(EsiError):  # its own deadline, not its bounded()'s cancellation later
        await asyncio.wait_for(_ask(env.cache, env.character, SHORT), SAFETY)
    assert not first.done()  # the shared load was not cancelled with the short wait
    env.gate.open.set()
    doc = await asyncio.wait_for(first, SAFETY)

    assert doc is not None
    assert env.fake.hits[f"/characters/{env.character}"] == 1  # still one load for both


async def test_callers_with_different_bounds_still_share_one_request(env: Env) -> None:
    """Each kill's enrichment runs under its own bound, so callers of one key arrive with
    deadlines a little later each: they wait for the load under way, not start their own."""
    callers = [
        asyncio.create_task(_ask(env.cache, env.character, bound))
        for bound in (LONG, LONG + 1, None, LONG + 2)
    ]
    await wait_for(
        lambda: env.cache.telemetry.namespaces["character"].coalesced == len(callers) - 1,
        SAFETY,
        "every caller waiting",
    )
    env.gate.open.set()
    docs = await asyncio.wait_for(asyncio.gather(*callers), SAFETY)

    assert len({doc["name"] for doc in docs}) == 1
    assert env.gate.arrived == 1
