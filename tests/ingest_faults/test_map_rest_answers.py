"""The map REST load under malformed answers: never read as "the map is empty".

A map reloaded after a long outage (a resync) replaces its tracking with what REST says. An
answer that is not the documented shape (``data`` without ``systems``, a ``data`` of the wrong
type) must fail the load, so the map keeps the systems and characters it had and the resync is
tried again, rather than wiping the map's tracking until the next resync. So must a list of
which not one row is usable; a list with some unusable rows loads the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.ingest_faults.conftest import map_settings
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

SYSTEM = 31000005
CHARACTER = 2112000001
GOOD_SYSTEMS: dict[str, Any] = {"data": {"systems": [{"solar_system_id": SYSTEM, "name": "J1"}]}}
GOOD_CHARACTERS: dict[str, Any] = {
    "data": [{"character_id": "c1", "character": {"eve_id": str(CHARACTER), "name": "Pilot"}}]
}


@pytest.mark.parametrize(
    ("systems", "characters"),
    [
        ({"data": {"error": "upstream timeout"}}, GOOD_CHARACTERS),
        ({"data": {"systems": None}}, GOOD_CHARACTERS),
        ({"data": "maintenance"}, GOOD_CHARACTERS),
        (GOOD_SYSTEMS, {"data": None}),
        (GOOD_SYSTEMS, {"data": {"error": "upstream timeout"}}),
        # Lists whose every row is unusable (a renamed field, nulls, not objects): read as
        # "no systems" or "no pilots", they emptied the map's tracking.
        ({"data": {"systems": [{"id": SYSTEM, "name": "J1"}]}}, GOOD_CHARACTERS),
        ({"data": [{"solar_system_id": None}, "J1", 7]}, GOOD_CHARACTERS),
        (GOOD_SYSTEMS, {"data": [{"character_id": "c1", "character": {"id": "x"}}]}),
        (GOOD_SYSTEMS, {"data": [{"character_id": "c1", "character": None}, None]}),
    ],
)
async def test_a_malformed_answer_fails_the_reload_and_keeps_the_tracking(
    tmp_path: Path, systems: dict[str, Any], characters: dict[str, Any]
) -> None:
    answers = {"systems": GOOD_SYSTEMS, "characters": GOOD_CHARACTERS}

    async def systems_route(request: Request) -> JSONResponse:
        return JSONResponse(answers["systems"])

    async def characters_route(request: Request) -> JSONResponse:
        return JSONResponse(answers["characters"])

    async def sink(item: Item) -> None:
        raise AssertionError("a load queues nothing")

    app = AppServer(
        Starlette(
            routes=[
                Route("/api/maps/{map}/systems", systems_route),
                Route("/api/maps/{map}/tracked-characters", characters_route),
            ]
        )
    )
    await app.start()
    store = SqliteStore(tmp_path / "db.sqlite")
    http = HttpClient("map", timeout=5.0)
    index = TrackingIndex()
    feeds = MapFeeds(
        index,
        store,
        sink,
        Metrics(),
        spawn=lambda name, run: None,
        on_loaded=lambda tenant: None,
        resync_after=lambda: 540.0,
    )
    try:
        settings = map_settings(app.url)
        feeds.rest["cut"] = MapRestClient(http, settings.maps["cut"])
        await feeds.load("cut")
        assert SYSTEM in index.map("cut").systems
        assert CHARACTER in index.map("cut").characters

        answers.update(systems=systems, characters=characters)
        with pytest.raises(MapApiError, match="malformed answer"):
            await feeds.load("cut")
        assert SYSTEM in index.map("cut").systems
        assert CHARACTER in index.map("cut").characters
    finally:
        await http.aclose()
        await app.stop()
        store.close()


async def test_rows_without_an_id_among_good_ones_are_skipped() -> None:
    """Only a list of which no row is usable fails: one bad row among good ones is skipped, so a
    map is not refused for ever over one entry; pilots the map stopped tracking are no fault."""
    systems = {"data": {"systems": [{"solar_system_id": SYSTEM, "name": "J1"}, {"id": 1}]}}
    characters = {
        "data": [
            *GOOD_CHARACTERS["data"],
            {"character_id": "c2", "character": None},
            {"character_id": "c3", "tracked": False, "character": {"eve_id": "2112000003"}},
        ]
    }

    async def systems_route(request: Request) -> JSONResponse:
        return JSONResponse(systems)

    async def characters_route(request: Request) -> JSONResponse:
        return JSONResponse(characters)

    app = AppServer(
        Starlette(
            routes=[
                Route("/api/maps/{map}/systems", systems_route),
                Route("/api/maps/{map}/tracked-characters", characters_route),
            ]
        )
    )
    await app.start()
    http = HttpClient("map", timeout=5.0)
    try:
        rest = MapRestClient(http, map_settings(app.url).maps["cut"])
        assert [s.solar_system_id for s in await rest.systems()] == [SYSTEM]
        assert [c.eve_id for c in await rest.tracked_characters()] == [CHARACTER]
        characters["data"] = [characters["data"][2]]  # only a pilot no longer tracked
        assert await rest.tracked_characters() == []
    finally:
        await http.aclose()
        await app.stop()
