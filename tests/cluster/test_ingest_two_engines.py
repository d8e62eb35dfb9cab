"""The ingest API served by two engines sharing one PostgreSQL database: a client's retry may
reach either, at once or later, and each event is still stored and posted to Discord once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from tests.server.conftest import server_settings
from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.base import DatabaseUrl, StoreLocation

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(120)]


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Path) -> Settings:
    return server_settings(sim, tmp_path / "first")


@pytest.fixture
async def second(
    sim: Simulator, runtime: Runtime, store_location: StoreLocation, tmp_path: Path
) -> AsyncIterator[Runtime]:
    """Another engine on the same database, its own data directory, serving the API too."""
    assert isinstance(store_location, DatabaseUrl)
    settings = server_settings(sim, tmp_path / "second")
    settings.store.url = SecretStr(store_location.secret())
    engine = Runtime(settings, data_dir=tmp_path / "second")
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()


def _titles(sim: Simulator) -> Counter[str]:
    return Counter(str(embed.get("title")) for embed in sim.discord.embeds)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_same_event_posted_to_two_engines_is_stored_and_posted_once(
    sim: Simulator, runtime: Runtime, second: Runtime
) -> None:
    assert runtime.http is not None
    assert second.http is not None
    key = runtime.http.tenants.add(sim.map_slug)
    auth = {"authorization": f"Bearer {key}"}
    events = [
        {"event_id": f"twice-{n}", "title": f"Twice {n}", "notification_type": "system"}
        for n in range(12)
    ]
    async with (
        httpx.AsyncClient(base_url=runtime.http.url, timeout=30.0) as one,
        httpx.AsyncClient(base_url=second.http.url, timeout=30.0) as two,
    ):
        answers = await asyncio.gather(
            *(
                client.post("/api/v1/events", json=e, headers=auth)
                for e in events
                for client in (one, two)
            )
        )
        # Later retries, each to the engine that did not answer first.
        retries = [await two.post("/api/v1/events", json=e, headers=auth) for e in events]
        retries += [await one.post("/api/v1/events", json=e, headers=auth) for e in events]
    statuses = [a.json()["results"][0]["status"] for a in answers]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    for n in range(12):
        assert sorted(statuses[2 * n : 2 * n + 2]) == ["accepted", "duplicate"], statuses
    assert all(r.status_code == 200 and r.json()["duplicate"] == 1 for r in retries)
    expected = {f"Twice {n}" for n in range(12)}
    await wait_for(lambda: expected <= set(_titles(sim)), 30, "every event posted")
    await runtime.drain(timeout=3.0)
    await second.drain(timeout=3.0)
    posted = _titles(sim)
    assert {t: posted[t] for t in expected} == dict.fromkeys(expected, 1)
