"""Fake Wanderer map server: SSE event stream plus the REST routes a notifier reads.

Wire formats follow PROTOCOLS.md §1.2-1.6 (SSE framing, envelope, backfill by ``last_event_id``,
keepalive comments) and §2 (REST bodies). Everything runs inside the caller's event loop; the
Python API (:meth:`FakeMapServer.publish` and friends) must be called from that same loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.map_state import (
    SSE_EVENT_TYPES,
    MapState,
    iso_now,
    map_kill_payload,
    static_info,
)
from wanderer_console.sim.ulid import UlidGenerator, is_valid_ulid
from wanderer_console.sim.universe import Character

__all__ = ["SSE_EVENT_TYPES", "FakeMapServer"]

_BACKFILL_LIMIT: Final = 1000


@dataclass(frozen=True, slots=True)
class _Oversize:
    """A fault: an event too big to build, written in 64 KiB pieces when its turn comes."""

    head: bytes
    size: int
    line_bytes: int | None
    """``None``: one ``data:`` line of ``size`` bytes; else ``data:`` lines of this length."""

    def pieces(self) -> Iterator[bytes]:
        """The event's bytes, about 64 KiB at a time (the same filler object each time)."""
        yield self.head
        filler = b"x" * _PIECE
        if self.line_bytes is None:
            full, rest = divmod(self.size, _PIECE)
            yield b"data: "
            yield from itertools.repeat(filler, full)
            yield filler[:rest] + b"\n\n"
            return
        line = b"data: " + b"x" * self.line_bytes + b"\n"
        per = max(1, _PIECE // len(line))
        full, rest = divmod(-(-self.size // self.line_bytes), per)
        yield from itertools.repeat(line * per, full)
        yield line * rest + b"\n"


_PIECE: Final = 65_536


@dataclass(eq=False, slots=True)
class _Stream:
    """One open SSE response: its queue, event filter and cut flag."""

    types: frozenset[str]
    queue: asyncio.Queue[bytes | _Oversize | None] = field(
        default_factory=lambda: asyncio.Queue(10_000)
    )
    cut: bool = False


def _frame(envelope: dict[str, Any]) -> bytes:
    data = orjson.dumps(envelope)
    return b"event: %s\nid: %s\ndata: %s\n\n" % (
        envelope["type"].encode(),
        envelope["id"].encode(),
        data,
    )


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class FakeMapServer:
    """A Wanderer map with one map (``slug`` / ``map_id``) and one public API key.

    ``app`` is the Starlette application; serve it with
    :class:`wanderer_console.sim.server.AppServer` and pass :meth:`close` as its ``on_stop``.
    """

    def __init__(
        self,
        slug: str,
        api_key: str,
        map_id: str,
        *,
        keepalive_seconds: float = 30.0,
        buffer_limit: int = 1000,
        generator: DataGenerator | None = None,
    ) -> None:
        self.slug = slug
        self.api_key = api_key
        self.map_id = map_id
        self.keepalive_seconds = keepalive_seconds
        self.generator = generator or DataGenerator()
        self.state = MapState(map_id, self.generator, random.Random(self.generator.seed + 7))
        self.events: list[dict[str, Any]] = []
        """Every envelope ever published, in order."""
        self.connect_log: list[dict[str, Any]] = []
        """Per accepted stream request: ``last_event_id``, ``events``, ``query``, ``at``."""
        self.extra_event_types: frozenset[str] = frozenset()
        """Types streamed besides the real server's list (a newer server, for tests)."""
        self._buffer: deque[dict[str, Any]] = deque(maxlen=buffer_limit)
        self._streams: set[_Stream] = set()
        self._ulid = UlidGenerator()
        self._closed = False
        self.over_limit = False
        """When true, streams answer 200 and close at once without ``connected`` (§1.7)."""
        self.static_info_delay = 0.0
        """Seconds ``system-static-info`` takes to answer (a slow map API, for tests)."""
        self.stream_gate: asyncio.Event | None = None
        """When set by a test: every stream request waits here (once logged in
        :attr:`connect_log`) until the event is set, as a slow server would answer late."""
        self.static_info_calls = 0
        self.static_info_in_flight = 0
        self.app = Starlette(
            routes=[
                Route("/api/maps/{map}/events/stream", self._sse, methods=["GET"]),
                Route("/api/maps/{map}/systems", self._systems, methods=["GET"]),
                Route("/api/maps/{map}/systems/{system}", self._system, methods=["GET"]),
                Route("/api/maps/{map}/connections", self._connections, methods=["GET"]),
                Route("/api/maps/{map}/tracked-characters", self._tracked, methods=["GET"]),
                Route("/api/common/system-static-info", self._static_info, methods=["GET"]),
            ]
        )

    # -- observability ---------------------------------------------------------------------
    @property
    def open_streams(self) -> int:
        """Number of SSE responses currently open."""
        return len(self._streams)

    @property
    def tracked_system_ids(self) -> list[int]:
        """Solar system ids currently on the map."""
        return [s for s, obj in self.state.systems.items() if obj["visible"]]

    @property
    def tracked_character_ids(self) -> list[int]:
        """EVE ids of the currently tracked pilots."""
        return [entry.eve_id for entry in self.state.tracked.values()]

    # -- publishing ------------------------------------------------------------------------
    def publish(self, type: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Build an envelope, apply it to the map state, buffer it and push it to live streams.

        State follows ``add_system``, ``deleted_system``, ``character_added``/``_removed`` (by
        internal UUID of a pilot tracked before), ``connection_*`` and
        ``system_metadata_changed``; other types are only delivered.
        """
        envelope = {
            "id": self._ulid.new(),
            "type": type,
            "map_id": self.map_id,
            "timestamp": iso_now(),
            "payload": payload,
        }
        self._apply(type, payload)
        self._buffer.append(envelope)
        self.events.append(envelope)
        frame = _frame(envelope)
        for stream in list(self._streams):
            if type not in stream.types or stream.cut:
                continue
            try:
                stream.queue.put_nowait(frame)
            except asyncio.QueueFull:
                stream.cut = True  # a stalled client is dropped, as a real server would
        return envelope

    def _apply(self, type: str, payload: dict[str, Any]) -> None:
        state = self.state
        if type == "add_system" and isinstance(payload.get("solar_system_id"), int):
            x, y = payload.get("position_x"), payload.get("position_y")
            position = (x, y) if isinstance(x, int) and isinstance(y, int) else None
            state.add_system(payload["solar_system_id"], payload.get("name"), position)
        elif type == "deleted_system" and isinstance(payload.get("solar_system_id"), int):
            state.remove_system(payload["solar_system_id"])
        elif type == "character_added" and payload.get("id"):
            state.track_known(str(payload["id"]))
        elif type == "character_removed" and payload.get("id"):
            state.untrack(str(payload["id"]))
        elif type in ("connection_added", "connection_updated"):
            state.apply_connection_added(payload)
        elif type == "connection_removed":
            state.apply_connection_removed(payload)
        elif type == "system_metadata_changed":
            system = state.systems.get(payload.get("solar_system_id", -1))
            if system is not None:
                keys = ("temporary_name", "labels", "description", "status", "locked")
                system.update({k: payload[k] for k in keys if k in payload})
                display = system["temporary_name"] or system["custom_name"]
                system["name"] = display or system["original_name"]

    def add_system(
        self,
        solar_system_id: int,
        name: str | None = None,
        *,
        include_name: bool = True,
        position: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """Publish ``add_system`` (``name`` defaults to the generator's; omitted if not wanted)."""
        name = name or self.state.system_name(solar_system_id)
        x, y = position or self.state.random_position()
        payload: dict[str, Any] = {"solar_system_id": solar_system_id}
        if include_name:
            payload["name"] = name
        payload.update(position_x=x, position_y=y)
        return self.publish("add_system", payload)

    def remove_system(self, solar_system_id: int) -> dict[str, Any]:
        """Publish ``deleted_system`` (every field but the id is ``null``)."""
        payload = {
            "solar_system_id": solar_system_id,
            "name": None,
            "position_x": None,
            "position_y": None,
        }
        return self.publish("deleted_system", payload)

    def add_character(
        self,
        eve_id: int,
        name: str,
        corporation_id: int | None = None,
        corporation_ticker: str | None = None,
        alliance_id: int | None = None,
        alliance_ticker: str | None = None,
    ) -> dict[str, Any]:
        """Track a pilot and publish ``character_added`` (payload: internal ``id`` and ``name``).

        Missing affiliation is filled in from the generator when it knows the pilot.
        """
        known = self.generator.characters.get(eve_id)
        if known is not None:
            corporation_id = corporation_id or known.corporation_id
            alliance_id = alliance_id or known.alliance_id
        corporation_ticker = corporation_ticker or self.generator.ticker(corporation_id)
        alliance_ticker = alliance_ticker or self.generator.ticker(alliance_id)
        entry = self.state.track(
            eve_id, name, corporation_id, corporation_ticker, alliance_id, alliance_ticker
        )
        return self.publish("character_added", {"id": entry.character_uuid, "name": entry.name})

    def remove_character(self, eve_id: int) -> dict[str, Any] | None:
        """Publish ``character_removed`` for a tracked pilot; ``None`` if it is not tracked."""
        entry = self.state.by_eve_id(eve_id)
        if entry is None:
            return None
        return self.publish("character_removed", {"id": entry.character_uuid, "name": entry.name})

    def add_rally(
        self,
        solar_system_id: int | None = None,
        character_eve_id: int | None = None,
        message: str | None = "Rally here!",
    ) -> dict[str, Any]:
        """Publish ``rally_point_added`` for a map system and a tracked pilot (§1.5 fields).

        Defaults: the first system on the map and the first tracked pilot (else a generated one).
        The system is added to the map first if needed; an untracked pilot is tracked silently.
        """
        state = self.state
        if solar_system_id is None:
            if not state.systems:
                raise ValueError("the map has no systems to rally in")
            solar_system_id = next(iter(state.systems))
        if solar_system_id not in state.systems:
            state.add_system(solar_system_id)
        system = state.systems[solar_system_id]
        if character_eve_id is None and state.tracked:
            entry = next(iter(state.tracked.values()))
        else:
            tracked = None if character_eve_id is None else state.by_eve_id(character_eve_id)
            entry = tracked or self.state.track_pilot(self.generator.character(character_eve_id))
        payload = {
            "rally_point_id": state.new_uuid(),
            "solar_system_id": solar_system_id,
            "system_id": system["id"],
            "character_id": entry.character_uuid,
            "character_name": entry.name,
            "character_eve_id": str(entry.eve_id),
            "system_name": system["name"],
            "message": message,
            "created_at": iso_now(),
        }
        return self.publish("rally_point_added", payload)

    def publish_map_kill(self, killmails: list[dict[str, Any]]) -> dict[str, Any]:
        """Publish a ``map_kill`` ``killmail_update`` batch of flattened killmails (§1.5.1)."""
        return self.publish("map_kill", map_kill_payload(killmails, self.generator))

    def seed(self, systems: Iterable[int], characters: Iterable[Character | int]) -> None:
        """Pre-populate systems and tracked pilots without publishing events.

        ``characters`` are generator pilots or EVE ids (looked up in / added to the generator).
        """
        for system_id in systems:
            self.state.add_system(system_id)
        for character in characters:
            if isinstance(character, int):
                character = self.generator.character(character)
            self.state.track_pilot(character)

    # -- stream control --------------------------------------------------------------------
    def inject_oversize(self, size: int, *, line_bytes: int | None = None) -> str:
        """Stream an ``add_system`` event of ``size`` data bytes to live streams; return its id.

        One line (``line_bytes`` ``None``) or ``data:`` lines of ``line_bytes``, written in
        pieces, never built whole, and not kept for backfill.
        """
        ident = self._ulid.new()
        fault = _Oversize(b"event: add_system\nid: %s\n" % ident.encode(), size, line_bytes)
        for stream in list(self._streams):
            if not stream.cut:
                with contextlib.suppress(asyncio.QueueFull):
                    stream.queue.put_nowait(fault)
        return ident

    def drop_connections(self) -> int:
        """End every open SSE response (a simulated cut); return how many were open."""
        streams = list(self._streams)
        for stream in streams:
            stream.cut = True
            # On a full queue the stream sees ``cut`` when it takes the next item.
            with contextlib.suppress(asyncio.QueueFull):
                stream.queue.put_nowait(None)
        return len(streams)

    def clear_buffer(self) -> None:
        """Forget buffered envelopes, like a server restart (later backfills come up empty)."""
        self._buffer.clear()

    def close(self) -> None:
        """End all streams and refuse new ones (use as ``AppServer(on_stop=...)``)."""
        self._closed = True
        self.drop_connections()

    # -- HTTP handlers ---------------------------------------------------------------------
    def _authorize(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "Missing or invalid authorization header")
        ident = request.path_params.get("map")
        if ident is not None and ident not in (self.slug, self.map_id):
            return _error(404, f"Map not found for identifier: {ident}")
        if token.strip() != self.api_key:
            return _error(401, "Invalid API key")
        return None

    def _rest_guard(self, request: Request) -> Response | None:
        denied = self._authorize(request)
        if denied is not None:
            return denied
        accept = request.headers.get("accept", "*/*")
        if "json" not in accept and "*/*" not in accept:
            return _error(406, "Not Acceptable")
        return None

    async def _sse(self, request: Request) -> Response:
        denied = self._authorize(request)
        if denied is not None:
            return denied
        if self._closed:
            return Response("Server-Sent Events are disabled on this server", status_code=503)
        query = request.query_params
        self.connect_log.append(
            {
                "last_event_id": query.get("last_event_id"),
                "events": query.get("events"),
                "query": dict(query),
                "at": time.time(),
            }
        )
        if self.stream_gate is not None:
            await self.stream_gate.wait()
        raw = query.get("events")
        known = SSE_EVENT_TYPES | self.extra_event_types
        if raw is None or raw.strip() in ("", "*"):
            types = known
        else:
            types = frozenset(t.strip() for t in raw.split(",")) & known
        headers = {"cache-control": "no-cache", "access-control-allow-origin": "*"}
        if self.over_limit:
            return Response(b"", media_type="text/event-stream", headers=headers)
        body = self._frames(_Stream(types), query.get("last_event_id"))
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    async def _frames(self, stream: _Stream, cursor: str | None) -> AsyncIterator[bytes]:
        # Register for live events *before* reading the backfill, like the real server.
        self._streams.add(stream)
        try:
            backfill: list[dict[str, Any]] = []
            if cursor is not None and is_valid_ulid(cursor):
                newer = (e for e in self._buffer if e["id"] > cursor and e["type"] in stream.types)
                for envelope in newer:
                    backfill.append(envelope)
                    if len(backfill) >= _BACKFILL_LIMIT:
                        break
            connected = {"map_id": self.map_id, "server_time": iso_now()}
            yield b"event: connected\nid: %s\ndata: %s\n\n" % (
                self._ulid.new().encode(),
                orjson.dumps(connected),
            )
            for envelope in backfill:
                yield _frame(envelope)
            while not stream.cut and not self._closed:
                try:
                    async with asyncio.timeout(self.keepalive_seconds):
                        item = await stream.queue.get()
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if item is None or stream.cut:
                    break
                if isinstance(item, _Oversize):
                    for piece in item.pieces():
                        yield piece
                    continue
                yield item
        finally:
            self._streams.discard(stream)

    async def _systems(self, request: Request) -> Response:
        return self._rest_guard(request) or JSONResponse(self.state.systems_payload())

    async def _system(self, request: Request) -> Response:
        denied = self._rest_guard(request)
        if denied is not None:
            return denied
        key = request.path_params["system"]
        for system in self.state.systems.values():
            if key in (system["id"], str(system["solar_system_id"])):
                return JSONResponse({"data": system})
        return _error(404, "System not found")

    async def _connections(self, request: Request) -> Response:
        denied = self._rest_guard(request)
        body = {"data": list(self.state.connections.values())}
        return denied or JSONResponse(body)

    async def _tracked(self, request: Request) -> Response:
        return self._rest_guard(request) or JSONResponse(self.state.tracked_payload())

    async def _static_info(self, request: Request) -> Response:
        denied = self._rest_guard(request)
        if denied is not None:
            return denied
        raw = request.query_params.get("id", "")
        if not raw.isdigit():
            return _error(400, "Missing or invalid id parameter")
        self.static_info_calls += 1
        if self.static_info_delay > 0:
            self.static_info_in_flight += 1
            try:
                await asyncio.sleep(self.static_info_delay)
            finally:
                self.static_info_in_flight -= 1
        data = static_info(self.generator, int(raw))
        if data is None:
            return _error(404, "System not found")
        return JSONResponse({"data": data})
