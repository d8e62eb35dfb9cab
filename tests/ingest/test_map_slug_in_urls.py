"""A map's slug is one segment of the map API's paths, whatever characters it holds.

A slug is the map server's (a hosted map host's config lists it as the server has it, or an
operator copies it into ``slug``): one with ``#``, ``?`` or ``%`` was put into the URL as it was,
so ``#`` began a fragment, ``?`` a query and ``%`` an escape, and the REST load and the event
stream asked for another path than the map's (a 404 every retry, the map never loaded).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import connected
from wanderer_console.config.model import Settings
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.map_rest import MapRestClient
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.timeout(60)

SLUG = "ops #2?50%"


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 5, "map_slug": SLUG}


class _Named:
    """The simulator, its map keyed ``home`` in the demo config (a TOML key cannot be SLUG)."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    map_slug = "home"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sim, name)


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Any) -> Settings:
    settings = demo_settings(_Named(sim), data_dir=tmp_path)
    settings.maps["home"].slug = SLUG
    return settings


async def test_the_rest_api_is_asked_for_the_maps_own_path(
    sim: Simulator, runtime_settings: Settings
) -> None:
    http = HttpClient("map")
    try:
        client = MapRestClient(http, runtime_settings.maps["home"])
        systems = await client.systems()
    finally:
        await http.aclose()
    assert {s.solar_system_id for s in systems} == set(sim.tracked_system_ids)


async def test_the_event_stream_connects_to_the_maps_own_path(runtime: Runtime) -> None:
    await connected(runtime)
    (stream,) = [c for c in runtime.snapshot()["connections"] if c["name"].startswith("sse:")]
    assert stream["state"] == "connected"
