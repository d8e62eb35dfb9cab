"""A huge notifier-config answer full of unusable entries: said, but bounded.

A map server bug that lists thousands of entries without ``map_id`` must not write a warning
line per entry at every refresh, nor carry every line in the snapshot the consoles read.
"""

from __future__ import annotations

import logging

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from wanderer_console.config.hosted import HostedMapsDiff, diff_maps
from wanderer_console.config.live import LiveSettings
from wanderer_console.config.model import MapSettings, Settings
from wanderer_console.http.client import HttpClient
from wanderer_console.ingest.hosted import HostedMaps
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

BAD = 5000


async def test_thousands_of_unusable_entries_are_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    entries = [{"slug": "good", "name": "Good", "map_id": "m1"}]
    entries += [{"slug": f"bad-{n}", "name": "Bad"} for n in range(BAD)]

    async def config(request: Request) -> JSONResponse:
        return JSONResponse({"data": entries})

    app = AppServer(Starlette(routes=[Route("/api/plugins/notifier/config", config)]))
    await app.start()
    http = HttpClient("map", timeout=10.0)
    applied: dict[str, MapSettings] = {}

    async def apply(maps: dict[str, MapSettings]) -> HostedMapsDiff:
        diff = diff_maps(applied, maps)
        applied.clear()
        applied.update(maps)
        return diff

    settings = Settings.model_validate(
        {"hosted": {"api_key": "plugin-key", "url": app.url, "map_api_key": "map-key"}}
    )
    hosted = HostedMaps(LiveSettings(settings), lambda: http, apply, Metrics())
    try:
        with caplog.at_level(logging.WARNING, logger="wanderer_console.ingest.hosted"):
            result = await hosted.refresh("test")
    finally:
        await http.aclose()
        await app.stop()
    assert result.ok
    assert list(applied) == ["good"]
    left_out = [r for r in caplog.records if r.getMessage() == "hosted map left out"]
    assert 0 < len(left_out) <= 25
    problems = hosted.snapshot()["last"]["problems"]
    assert 0 < len(problems) <= 25
    assert problems[0] == "entry 1 (bad-0): missing map_id"
    assert f"{BAD - 20} more" in problems[-1]
