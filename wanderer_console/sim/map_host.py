"""Many fake Wanderer maps behind one server, as a hosted Wanderer serves them.

:class:`FakeMapHost` holds one :class:`~wanderer_console.sim.map_server.FakeMapServer` per map
(each with its own slug, map id, API key, state and SSE streams, all over one shared
:class:`~wanderer_console.sim.generator.DataGenerator` universe) and serves them from one
Starlette app: a request is routed by the map in its path to that map's handler. The host counts
what a console asks of it, per map (REST calls, stream connects) and in all (REST calls in flight
at once, their peak), and can answer REST slowly (``rest_delay``) to show how many loads a
console runs at once.

With a ``plugin_api_key`` it also serves the notifier-config endpoint of hosted / API multi-map
mode (``GET /api/plugins/notifier/config``, PARITY.md §3.11): one entry per map listed in
:attr:`FakeMapHost.notifier_config` (slug -> its ``discord``, ``features`` and ``settings``),
which a test edits between refreshes.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.universe import Character

__all__ = ["FakeMapHost"]

Handler = Callable[[Request], Awaitable[Response]]


class FakeMapHost:
    """Maps by slug on one server; ``app`` routes each request to its map."""

    def __init__(
        self, generator: DataGenerator, *, keepalive_seconds: float = 30.0, seed: int = 1
    ) -> None:
        self.generator = generator
        self.keepalive_seconds = keepalive_seconds
        self._rng = random.Random(seed * 7_919 + 3)
        self.maps: dict[str, FakeMapServer] = {}
        """Maps by slug."""
        self._by_ident: dict[str, FakeMapServer] = {}
        self._by_key: dict[str, FakeMapServer] = {}
        self.rest_calls: Counter[str] = Counter()
        """REST requests per map slug (``common`` for the shared static-info route)."""
        self.rest_delay = 0.0
        """Seconds every REST answer waits (a busy server)."""
        self.in_flight = 0
        """REST requests being answered now."""
        self.in_flight_peak = 0
        """The most REST requests ever answered at once."""
        self.plugin_api_key: str | None = None
        """Bearer the notifier-config endpoint accepts (``None``: the endpoint answers 404)."""
        self.notifier_config: dict[str, dict[str, Any]] = {}
        """Maps in the notifier config, by slug: ``discord``, ``features``, ``settings``."""
        self.config_requests = 0
        """Notifier-config requests answered 200."""
        self.notifier_config_status: int | None = None
        """Set: the notifier-config endpoint answers this status instead (a map server down
        behind its proxy: 502, 503)."""
        self.app = Starlette(
            routes=[
                Route("/api/maps/{map}/events/stream", self._sse, methods=["GET"]),
                Route("/api/maps/{map}/systems", self._rest("_systems"), methods=["GET"]),
                Route("/api/maps/{map}/systems/{system}", self._rest("_system"), methods=["GET"]),
                Route("/api/maps/{map}/connections", self._rest("_connections"), methods=["GET"]),
                Route(
                    "/api/maps/{map}/tracked-characters", self._rest("_tracked"), methods=["GET"]
                ),
                Route("/api/common/system-static-info", self._static_info, methods=["GET"]),
                Route("/api/plugins/notifier/config", self._notifier_config, methods=["GET"]),
            ]
        )

    def add_map(
        self,
        slug: str,
        systems: Iterable[int] = (),
        characters: Iterable[Character | int] = (),
        *,
        api_key: str | None = None,
    ) -> FakeMapServer:
        """A new map, seeded with ``systems`` and tracked ``characters`` (no events)."""
        if slug in self.maps:
            raise ValueError(f"map {slug!r} exists")
        map_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        key = api_key or f"sim-key-{slug}"
        fake = FakeMapServer(
            slug, key, map_id, keepalive_seconds=self.keepalive_seconds, generator=self.generator
        )
        fake.seed(systems, characters)
        self.maps[slug] = fake
        self._by_ident[slug] = self._by_ident[map_id] = fake
        self._by_key[key] = fake
        return fake

    def rename_map(self, slug: str, new_slug: str) -> FakeMapServer:
        """Change a map's slug, as its owner can in Wanderer: the same map (``map_id``, state,
        event ids, buffer) answers at ``new_slug`` only, the old slug is not found, its open
        streams end (a client must reconnect at the new address) and its notifier-config entry
        lists the new slug."""
        fake = self.maps.pop(slug)
        if new_slug in self.maps:
            self.maps[slug] = fake
            raise ValueError(f"map {new_slug!r} exists")
        fake.slug = new_slug
        self.maps[new_slug] = fake
        del self._by_ident[slug]
        self._by_ident[new_slug] = fake
        if slug in self.notifier_config:
            self.notifier_config[new_slug] = self.notifier_config.pop(slug)
        fake.drop_connections()
        return fake

    @property
    def open_streams(self) -> int:
        """SSE responses open over every map."""
        return sum(m.open_streams for m in self.maps.values())

    def streaming(self) -> int:
        """Maps with at least one SSE response open."""
        return sum(1 for m in self.maps.values() if m.open_streams)

    def stream_connects(self) -> Counter[str]:
        """SSE requests accepted per map slug."""
        return Counter({slug: len(m.connect_log) for slug, m in self.maps.items()})

    def close(self) -> None:
        """End every stream and refuse new ones (``AppServer(on_stop=...)``)."""
        for fake in self.maps.values():
            fake.close()

    # -- routing -----------------------------------------------------------------------------

    def _map(self, request: Request) -> FakeMapServer | None:
        return self._by_ident.get(request.path_params.get("map", ""))

    async def _sse(self, request: Request) -> Response:
        fake = self._map(request)
        if fake is None:
            return _not_found(request)
        return await fake._sse(request)

    def _rest(self, name: str) -> Handler:
        async def handle(request: Request) -> Response:
            fake = self._map(request)
            if fake is None:
                return _not_found(request)
            self.rest_calls[fake.slug] += 1
            handler: Handler = getattr(fake, name)
            return await self._timed(handler, request)

        return handle

    async def _static_info(self, request: Request) -> Response:
        _scheme, _, token = request.headers.get("authorization", "").partition(" ")
        fake = self._by_key.get(token.strip())
        if fake is None:
            return JSONResponse({"error": "Invalid API key"}, status_code=401)
        self.rest_calls["common"] += 1
        return await self._timed(fake._static_info, request)

    def set_notifier_config(
        self,
        slug: str,
        *,
        channels: dict[str, str] | None = None,
        bot_token: str | None = None,
        features: dict[str, Any] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        """List map ``slug`` in the notifier config (replacing its entry)."""
        if slug not in self.maps:
            raise ValueError(f"no map {slug!r}")
        discord: dict[str, Any] = {"channels": dict(channels or {})}
        if bot_token is not None:
            discord["bot_token"] = bot_token
        self.notifier_config[slug] = {
            "discord": discord,
            "features": dict(features or {}),
            "settings": dict(settings or {}),
        }

    async def _notifier_config(self, request: Request) -> Response:
        if self.notifier_config_status is not None:
            return JSONResponse({"error": "unavailable"}, status_code=self.notifier_config_status)
        if self.plugin_api_key is None:
            return JSONResponse({"error": "Not found"}, status_code=404)
        _scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if token.strip() != self.plugin_api_key:
            return JSONResponse({"error": "Invalid API key"}, status_code=401)
        self.config_requests += 1
        data = [
            {
                "slug": slug,
                "name": f"Map {slug}",
                "map_id": self.maps[slug].map_id,
                "owner": {"name": "sim"},
                **entry,
            }
            for slug, entry in self.notifier_config.items()
            if slug in self.maps
        ]
        return JSONResponse({"data": data})

    async def _timed(self, handler: Handler, request: Request) -> Response:
        self.in_flight += 1
        self.in_flight_peak = max(self.in_flight_peak, self.in_flight)
        try:
            if self.rest_delay > 0:
                await asyncio.sleep(self.rest_delay)
            return await handler(request)
        finally:
            self.in_flight -= 1


def _not_found(request: Request) -> Response:
    ident: Any = request.path_params.get("map")
    return JSONResponse({"error": f"Map not found for identifier: {ident}"}, status_code=404)
