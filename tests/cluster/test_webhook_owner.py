"""A map webhook reaching an engine that does not work the map (several engines on one
PostgreSQL database behind one address) is left to the map's owner.

The owner keeps the map's tracking from its own stream: if another engine took the event from
the webhook first, the owner's stream copy was a duplicate it skipped, so the owner never
tracked the system the event added (its kills went unnoticed) while the other engine, which
does not send the map, tracked it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.server.conftest import server_settings
from tests.server.test_webhook import envelope, signed
from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.base import DatabaseUrl, StoreLocation

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(60)]


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Path) -> Settings:
    settings = server_settings(sim, tmp_path)
    settings.cluster.lease_seconds = 3.0  # the lease taken below is noticed within a second
    return settings


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_a_webhook_for_a_map_another_engine_works_is_left_to_that_engine(
    sim: Simulator, runtime: Runtime, store_location: StoreLocation
) -> None:
    import psycopg

    tenant = sim.map_slug
    await wait_for(lambda: tenant in runtime.cluster.tenants(), 20, "the map leased here")
    assert isinstance(store_location, DatabaseUrl)
    with psycopg.connect(store_location.secret(), autocommit=True) as admin:
        admin.execute(  # another engine takes the map over (its lease, a newer token)
            "UPDATE leases SET owner = 'another-engine', token = token + 1, expires_at = %s"
            " WHERE resource = %s",
            (time.time() + 60, f"map:{tenant}"),
        )
    await wait_for(lambda: tenant not in runtime.cluster.tenants(), 20, "the map lost here")

    system = sim.generator.new_system(wormhole=True)
    event = envelope(sim, system.system_id, system.name)
    body = orjson.dumps(event)
    assert runtime.http is not None
    async with httpx.AsyncClient(base_url=runtime.http.url, timeout=10.0) as client:
        answer = await client.post(
            f"/api/v1/maps/{tenant}/webhook", content=body, headers=signed(body)
        )
    assert answer.status_code == 202, answer.text
    assert "another engine" in answer.json()["ignored"]
    await runtime.drain(timeout=2.0)
    assert not runtime.store.has_event(tenant, str(event["id"]))  # the owner's to take
    assert tenant not in runtime.index.maps_for_system(system.system_id)
