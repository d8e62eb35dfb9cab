"""Fake ESI (PROTOCOLS.md §6) answering from a :class:`DataGenerator`'s pool.

Routes: ``POST /universe/names`` (404 for the whole batch when one id is unknown, at most 1000
ids), ``GET /characters/{id}``, ``/corporations/{id}``, ``/alliances/{id}``,
``/universe/systems/{id}`` (with positions for the known systems), ``/universe/types/{id}``, and
``GET /route/{origin}/{destination}/`` over the simulator's small stargate graph
(:data:`~wanderer_console.sim.universe.STARGATES`; 404 "No route found" otherwise). Documents
carry ``Expires`` and ``ETag``; a matching ``If-None-Match`` gets ``304``. Every answer carries
the legacy error-limit headers; non-2xx/3xx answers spend the error budget and an exhausted
budget answers ``420`` until the window resets. Every route is also reachable under ``/latest``
with a trailing slash.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.universe import position_m, stargate_route

__all__ = ["FakeEsi"]

_NAMES_ERROR = "Ensure all IDs are valid before resolving."


class FakeEsi:
    """A Starlette app with ESI's public name and entity routes.

    Knobs (plain attributes, change them any time): ``expires_in`` seconds per document,
    ``error_limit``/``error_window`` for the error budget, ``force_status`` (answer every request
    with this status, e.g. 503 or 420), ``latency`` seconds added to each answer.
    """

    def __init__(
        self,
        generator: DataGenerator,
        *,
        expires_in: float = 3600.0,
        error_limit: int = 100,
        error_window: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.generator = generator
        self.expires_in = expires_in
        self.error_limit = error_limit
        self.error_window = error_window
        self.force_status: int | None = None
        self.latency = 0.0
        self._clock = clock
        self.hits: Counter[str] = Counter()
        """Requests per path (``/characters/2112000001``, ``/universe/names``)."""
        self.not_modified = 0
        self.names_bodies: list[list[int]] = []
        self.affiliation_bodies: list[list[int]] = []
        self.user_agents: Counter[str] = Counter()
        self.killmails: dict[int, dict[str, Any]] = {}
        """ESI killmails by id (``victim.items`` for notable loot); others answer 404."""
        self._errors_used = 0
        self._window_start = clock()
        routes: list[Route] = []
        for prefix in ("", "/latest"):
            slash = "/" if prefix else ""
            routes += [
                Route(f"{prefix}/universe/names{slash}", self._names, methods=["POST"]),
                Route(
                    f"{prefix}/characters/affiliation{slash}", self._affiliation, methods=["POST"]
                ),
                Route(f"{prefix}/characters/{{eid:int}}{slash}", self._character),
                Route(f"{prefix}/corporations/{{eid:int}}{slash}", self._corporation),
                Route(f"{prefix}/alliances/{{eid:int}}{slash}", self._alliance),
                Route(f"{prefix}/universe/systems/{{eid:int}}{slash}", self._system),
                Route(f"{prefix}/universe/types/{{eid:int}}{slash}", self._type),
                Route(f"{prefix}/route/{{origin:int}}/{{destination:int}}/", self._route),
                Route(f"{prefix}/route/{{origin:int}}/{{destination:int}}", self._route),
                Route(f"{prefix}/killmails/{{eid:int}}/{{hash}}{slash}", self._killmail),
            ]
        self.app = Starlette(routes=routes)

    @property
    def requests(self) -> int:
        """Total requests answered."""
        return sum(self.hits.values())

    # -- error budget --------------------------------------------------------------------------

    def _window(self) -> tuple[int, int]:
        now = self._clock()
        if now - self._window_start >= self.error_window:
            self._window_start = now
            self._errors_used = 0
        remain = max(0, self.error_limit - self._errors_used)
        reset = max(0, int(self._window_start + self.error_window - now + 0.999))
        return remain, reset

    def _limit_headers(self) -> dict[str, str]:
        remain, reset = self._window()
        return {"X-ESI-Error-Limit-Remain": str(remain), "X-ESI-Error-Limit-Reset": str(reset)}

    def _error(self, status: int, message: str) -> Response:
        if status != 420:
            self._errors_used += 1
        return Response(
            orjson.dumps({"error": message}),
            status_code=status,
            media_type="application/json",
            headers=self._limit_headers(),
        )

    async def _gate(self, request: Request) -> Response | None:
        self.hits[request.url.path.removeprefix("/latest").rstrip("/") or "/"] += 1
        self.user_agents[request.headers.get("user-agent", "")] += 1
        if self.latency:
            await asyncio.sleep(self.latency)
        remain, _ = self._window()
        if remain <= 0:
            return self._error(420, "This software has exceeded the error limit for ESI.")
        if self.force_status is not None:
            return self._error(self.force_status, "Injected failure")
        return None

    # -- routes --------------------------------------------------------------------------------

    async def _id_list(self, request: Request) -> list[int] | Response:
        """A bulk route's body (a JSON array of 1-1000 integer ids), or the answer refusing it
        (or the gate's)."""
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return self._error(400, "Invalid body")
        if (
            not isinstance(body, list)
            or not 1 <= len(body) <= 1000
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in body)
        ):
            return self._error(400, "Body must be an array of 1-1000 integer ids")
        return body

    async def _names(self, request: Request) -> Response:
        body = await self._id_list(request)
        if isinstance(body, Response):
            return body
        self.names_bodies.append(list(body))
        names, categories = self.generator.names, self.generator.categories
        if any(i not in names for i in body):
            return self._error(404, _NAMES_ERROR)
        rows = [{"id": i, "name": names[i], "category": categories[i]} for i in dict.fromkeys(body)]
        return Response(
            orjson.dumps(rows), media_type="application/json", headers=self._limit_headers()
        )

    async def _affiliation(self, request: Request) -> Response:
        """``POST /characters/affiliation``: each pilot's corporation and alliance, 1-1000 ids
        a body; one id the game does not know fails the whole body (404)."""
        body = await self._id_list(request)
        if isinstance(body, Response):
            return body
        self.affiliation_bodies.append(list(body))
        characters = self.generator.characters
        if any(i not in characters for i in body):
            return self._error(404, "Invalid character ID")
        rows: list[dict[str, int]] = []
        for eid in dict.fromkeys(body):
            char = characters[eid]
            row = {"character_id": eid, "corporation_id": char.corporation_id}
            if char.alliance_id is not None:
                row["alliance_id"] = char.alliance_id
            rows.append(row)
        return Response(
            orjson.dumps(rows), media_type="application/json", headers=self._limit_headers()
        )

    def _document(self, request: Request, doc: dict[str, Any] | None, kind: str) -> Response:
        if doc is None:
            return self._error(404, f"{kind} not found")
        content = orjson.dumps(doc)
        etag = f'"{hashlib.sha1(content).hexdigest()}"'
        headers = self._limit_headers()
        headers["ETag"] = etag
        headers["Expires"] = formatdate(self._clock() + self.expires_in, usegmt=True)
        headers["Last-Modified"] = formatdate(self._clock(), usegmt=True)
        headers["Cache-Control"] = "public"
        if request.headers.get("if-none-match") == etag:
            self.not_modified += 1
            return Response(status_code=304, headers=headers)
        return Response(content, media_type="application/json", headers=headers)

    async def _character(self, request: Request) -> Response:
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        eid = int(request.path_params["eid"])
        char = self.generator.characters.get(eid)
        doc: dict[str, Any] | None = None
        if char is not None:
            doc = {
                "name": char.name,
                "corporation_id": char.corporation_id,
                "birthday": "2015-03-24T11:37:00Z",
                "gender": "female" if eid % 2 else "male",
                "race_id": 1 + eid % 4,
                "bloodline_id": 1 + eid % 8,
                "security_status": round((eid % 200) / 20 - 5, 2),
            }
            if char.alliance_id is not None:
                doc["alliance_id"] = char.alliance_id
        return self._document(request, doc, "Character")

    async def _corporation(self, request: Request) -> Response:
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        eid = int(request.path_params["eid"])
        corp = self.generator.corporations.get(eid)
        doc: dict[str, Any] | None = None
        if corp is not None:
            members = [
                c.eve_id for c in self.generator.characters.values() if c.corporation_id == eid
            ]
            ceo = members[0] if members else 3_000_001
            doc = {
                "name": corp.name,
                "ticker": corp.ticker,
                "member_count": len(members),
                "ceo_id": ceo,
                "creator_id": ceo,
                "tax_rate": 0.1,
            }
            if corp.alliance_id is not None:
                doc["alliance_id"] = corp.alliance_id
        return self._document(request, doc, "Corporation")

    async def _alliance(self, request: Request) -> Response:
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        eid = int(request.path_params["eid"])
        alliance = self.generator.alliances.get(eid)
        doc: dict[str, Any] | None = None
        if alliance is not None:
            corps = sorted(
                c.id for c in self.generator.corporations.values() if c.alliance_id == eid
            )
            creator_corp = corps[0] if corps else 1_000_001
            doc = {
                "name": alliance.name,
                "ticker": alliance.ticker,
                "creator_id": 3_000_001,
                "creator_corporation_id": creator_corp,
                "date_founded": "2012-06-01T00:00:00Z",
            }
            if corps:
                doc["executor_corporation_id"] = creator_corp
        return self._document(request, doc, "Alliance")

    async def _system(self, request: Request) -> Response:
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        eid = int(request.path_params["eid"])
        system = self.generator.systems.get(eid)
        doc: dict[str, Any] | None = None
        if system is not None:
            doc = {
                "system_id": system.id,
                "name": system.name,
                "constellation_id": system.constellation_id,
                "security_status": system.security_status,
                "position": position_m(system.id),
            }
        return self._document(request, doc, "Solar system")

    async def _type(self, request: Request) -> Response:
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        eid = int(request.path_params["eid"])
        ship = self.generator.ship_types.get(eid)
        doc: dict[str, Any] | None = None
        if ship is not None:
            doc = {
                "type_id": ship.type_id,
                "name": ship.name,
                "description": f"A {ship.group_name}.",
                "group_id": ship.group_id,
                "published": True,
            }
        return self._document(request, doc, "Type")

    async def _killmail(self, request: Request) -> Response:
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        doc = self.killmails.get(int(request.path_params["eid"]))
        return self._document(request, doc, "Killmail")

    async def _route(self, request: Request) -> Response:
        blocked = await self._gate(request)
        if blocked is not None:
            return blocked
        origin = int(request.path_params["origin"])
        destination = int(request.path_params["destination"])
        path = stargate_route(origin, destination)
        if path is None:
            return self._error(404, "No route found")
        headers = self._limit_headers()
        headers["Expires"] = formatdate(self._clock() + self.expires_in, usegmt=True)
        return Response(orjson.dumps(path), media_type="application/json", headers=headers)
