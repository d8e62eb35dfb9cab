"""Fake wanderer-kills HTTP API (PROTOCOLS.md §3.9): ``POST /api/v1/kills/systems``.

A tiny Starlette app over a :class:`~wanderer_console.sim.killstream.FakeKillstream`'s kills
(every kill given to ``push_kill``), served beside the WebSocket with
:class:`~wanderer_console.sim.server.AppServer`. Answers
``{"data": {"systems_kills": {"<id>": [killmail...]}, "timestamp": ...}, "timestamp": ...}``
with the newest kills first, at most ``limit`` per system, within ``since_hours``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.sim.map_state import iso_now

__all__ = ["FakeKillstreamRest"]

_MAX_SYSTEMS = 100


class FakeKillstreamRest:
    """``POST /api/v1/kills/systems`` answered from the fake killstream's pushed kills."""

    def __init__(self, killstream: FakeKillstream) -> None:
        self.killstream = killstream
        self.requests: list[dict[str, Any]] = []
        """Body of every request (valid or not)."""
        self.fail_next = 0
        """Answer the next N requests with 500."""
        self.app = Starlette(
            routes=[Route("/api/v1/kills/systems", self._systems, methods=["POST"])]
        )

    async def _systems(self, request: Request) -> Response:
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return _error(400, "invalid JSON body", "INVALID_FORMAT")
        self.requests.append(body if isinstance(body, dict) else {"body": body})
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(500, "internal error", "INTERNAL_ERROR")
        ids = body.get("system_ids") if isinstance(body, dict) else None
        if (
            not isinstance(ids, list)
            or not ids
            or len(ids) > _MAX_SYSTEMS
            or not all(isinstance(i, int) and 1 <= i <= 50_000_000 for i in ids)
        ):
            return _error(400, "system_ids must be 1..100 system ids", "INVALID_SYSTEM_ID")
        since_hours = body.get("since_hours", 24)
        limit = body.get("limit", 50)
        if not isinstance(since_hours, int | float) or not isinstance(limit, int) or limit < 1:
            return _error(400, "since_hours and limit must be numbers", "INVALID_FORMAT")
        cutoff = datetime.now(UTC) - timedelta(hours=float(since_hours))
        out: dict[str, list[dict[str, Any]]] = {}
        for system_id in ids:
            kills = [
                k
                for k in reversed(self.killstream.pushed)
                if k.get("system_id", k.get("solar_system_id")) == system_id
                and (_time(k) or cutoff) >= cutoff
            ]
            out[str(system_id)] = kills[:limit]
        now = iso_now()
        payload = {"data": {"systems_kills": out, "timestamp": now}, "timestamp": now}
        return Response(orjson.dumps(payload), media_type="application/json")


def _time(killmail: dict[str, Any]) -> datetime | None:
    raw = killmail.get("kill_time")
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _error(status: int, message: str, code: str) -> Response:
    body = {"error": message, "code": code, "details": None, "timestamp": iso_now()}
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
