"""A store that cannot write (a full disk, a database held by another process) does not keep the
hosted maps from running: a map first seen runs under its slug's key, kept at a later refresh.

The engine runs on with a store that cannot write (its writes kept and tried again); the hosted
maps' keys are written at each refresh that sees a new map. A refresh that failed for it applied
nothing: started so, the engine ran no hosted map at all (every event and kill of theirs missed)
until the store could write again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

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
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.telemetry.metrics import Metrics


class FullStore:
    """The hosted maps' keys in a store that reads, and writes only once ``full`` is False."""

    def __init__(self) -> None:
        self.full = True
        self.kept: dict[str, str] = {}

    def hosted_map_keys(self) -> dict[str, str]:
        return dict(self.kept)

    def keep_hosted_map_keys(self, keys: Mapping[str, tuple[str, str]]) -> dict[str, str]:
        if self.full:
            raise StoreWriteError(
                Path("/data/wanderer.db"),
                "keep hosted map keys",
                OSError("database or disk is full"),
            )
        for map_id, (key, _slug) in keys.items():
            if map_id not in self.kept and key not in self.kept.values():
                self.kept[map_id] = key
        return dict(self.kept)


async def test_hosted_maps_run_while_the_store_cannot_keep_their_keys() -> None:
    entries = [{"slug": "home", "name": "Home", "map_id": "m1"}]

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
    store = FullStore()
    hosted = HostedMaps(LiveSettings(settings), lambda: http, apply, Metrics(), keys=store)
    try:
        first = await hosted.refresh("start")
        assert first.ok, first.error
        assert hosted.applied
        assert list(applied) == ["home"]
        store.full = False  # the disk has room again: the key is kept at the next refresh
        assert (await hosted.refresh("timer")).ok
        assert store.kept == {"m1": "home"}
        assert list(applied) == ["home"]
    finally:
        await http.aclose()
        await app.stop()
