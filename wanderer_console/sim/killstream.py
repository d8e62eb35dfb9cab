"""Fake wanderer-kills: a Phoenix channels V2 WebSocket serving ``killmails:lobby``.

Wire behaviour follows PROTOCOLS.md §3.1-3.7: array frames ``[join_ref, ref, topic, event,
payload]``, heartbeats on ``phoenix``, join validation, preload of up to five recent kills per
system, real-time ``killmail_update`` pushes sent twice, ``phx_error`` on unknown events and
``phx_close`` when a topic is joined twice. Fault injection helpers simulate crashes and cuts.

**Limits.** One socket follows at most ``max_systems`` systems and ``max_characters``
characters (10,000 and 50,000, the real server's, PROTOCOLS.md §3.3; tests shrink them): a join
over them is answered with the server's validation error, and a subscribe that would take the
socket over them crashes the channel (``phx_error``, like every subscribe error: §3.4), so a
client that does not shard its subscription fails loudly. Both are counted
(``refused_joins``, ``limit_crashes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame as WireFrame
from websockets.frames import Opcode
from websockets.http11 import Request, Response

from wanderer_console.sim.killstream_rules import (
    LOBBY,
    MAX_CHARACTERS,
    MAX_SYSTEMS,
    client_identifier,
    validate_ids,
    validate_join,
)
from wanderer_console.sim.map_state import iso_now

__all__ = ["LOBBY", "FakeKillstream"]

_PATH: Final = "/socket/websocket"
_MAX_FRAME: Final = 131_072
_PRELOAD_WINDOW: Final = timedelta(hours=24)
Frame = list[Any]


@dataclass(eq=False)
class _Client:
    """One socket and the state of its (at most one) ``killmails:lobby`` join."""

    conn: ServerConnection
    identifier: str
    join_ref: str | None = None
    subscription_id: str | None = None
    systems: dict[int, None] = field(default_factory=dict)
    """Systems followed, in subscription order (a dict: ordered, O(1) look-up)."""
    characters: dict[int, None] = field(default_factory=dict)
    """Characters followed, in subscription order."""
    connected_at: str = field(default_factory=iso_now)

    def reset(self) -> None:
        """Forget the join (the channel process died)."""
        self.join_ref = None
        self.subscription_id = None
        self.systems = {}
        self.characters = {}


def _involved(killmail: dict[str, Any]) -> set[int]:
    victim = killmail.get("victim") or {}
    ids = {victim.get("character_id")}
    ids.update(a.get("character_id") for a in killmail.get("attackers") or [])
    return {i for i in ids if isinstance(i, int)}


def _kill_time(killmail: dict[str, Any]) -> datetime | None:
    raw = killmail.get("kill_time")
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class FakeKillstream:
    """A wanderer-kills WebSocket endpoint at ``/socket/websocket`` on 127.0.0.1."""

    def __init__(
        self,
        *,
        preload_per_system: int = 5,
        duplicate_realtime: bool = True,
        max_systems: int = MAX_SYSTEMS,
        max_characters: int = MAX_CHARACTERS,
    ) -> None:
        self.preload_per_system = preload_per_system
        self.duplicate_realtime = duplicate_realtime
        self.max_systems = max_systems
        """Systems one socket may follow (its join, then its subscribes)."""
        self.max_characters = max_characters
        """Characters one socket may follow."""
        self.refused_joins = 0
        """Joins answered with an error (over the limits, invalid ids)."""
        self.limit_crashes = 0
        """Subscribes that would have taken a socket over the limits (its channel crashed)."""
        self.subscribe_reply_delay = 0.0
        """Seconds between applying a subscribe and replying to it (a slow server): the socket
        already receives the new ids' kills meanwhile; its client cannot know yet."""
        self.join_reply_delay = 0.0
        """Seconds between applying an accepted join and replying to it: the socket already
        receives its systems' kills meanwhile; its client cannot know yet."""
        self.refuse_subscribes = 0
        """Subscribes to answer with an error reply (and not apply), as a server that refuses
        one cleanly (a rate limit) would."""
        self.preload_before_reply = False
        """When true, a join's preload is sent before its reply (the server's channel process
        may push before the reply reaches the socket)."""
        self.hang_joins = False
        """When true, joins are recorded but neither applied nor answered (a server whose
        channel process hangs on the join, while the socket still answers heartbeats)."""
        self.withhold_heartbeats = False
        """When true, heartbeats are counted but never answered (a silently dead server)."""
        self.refuse_connections = False
        """When true, new sockets are refused with 503: with :meth:`drop_connections`, a server
        that is down for a while (kills pushed meanwhile reach only the REST API's history)."""
        self.joins: list[dict[str, Any]] = []
        """Payload of every ``phx_join`` received on ``killmails:lobby``."""
        self.heartbeats = 0
        """Heartbeats received."""
        self.connections = 0
        """WebSocket connections accepted since start (reconnects count again)."""
        self.client_identifiers: list[str] = []
        """Sanitised ``client_identifier`` of each accepted connection."""
        self.pushed: deque[dict[str, Any]] = deque(maxlen=10_000)
        """Recent killmails given to :meth:`push_kill` (newest last)."""
        self.sent: deque[Frame] = deque(maxlen=10_000)
        """Recent frames sent to any client (newest last)."""
        self._recent: dict[int, deque[dict[str, Any]]] = {}
        self._clients: set[_Client] = set()
        self._server: Server | None = None
        self._port: int | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0 = any free port)."""
        self._server = await serve(
            self._handler,
            host,
            port,
            process_request=self._check_path,
            max_size=_MAX_FRAME,
            # permessage-deflate as the real server has it, but each message compressed on its
            # own (no context takeover on our side): frames can then be compressed ahead of
            # time and written straight to a socket (write_wire), for benchmarks.
            compression=None,
            extensions=[
                ServerPerMessageDeflateFactory(
                    server_no_context_takeover=True, server_max_window_bits=12
                )
            ],
        )
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT`` (append ``/socket/websocket?vsn=2.0.0``)."""
        if self._port is None:
            raise RuntimeError("killstream not started")
        return f"ws://127.0.0.1:{self._port}"

    @property
    def socket_url(self) -> str:
        """Full socket URL including path and ``vsn=2.0.0``."""
        return f"{self.url}{_PATH}?vsn=2.0.0"

    @property
    def active_connections(self) -> int:
        """Sockets currently open."""
        return len(self._clients)

    @property
    def joined_clients(self) -> int:
        """Sockets with a live ``killmails:lobby`` join."""
        return sum(1 for c in self._clients if c.join_ref is not None)

    def subscriptions(self) -> list[tuple[list[int], list[int]]]:
        """``(systems, characters)`` each joined socket follows now."""
        return [
            (list(c.systems), list(c.characters)) for c in self._clients if c.join_ref is not None
        ]

    async def stop(self) -> None:
        """Close every socket and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)

    # -- Python API ------------------------------------------------------------------------
    async def push_kill(self, killmail: dict[str, Any]) -> int:
        """Record a kill for preload and push it in real time; return sockets it reached."""
        system_id = killmail.get("system_id", killmail.get("solar_system_id"))
        self.pushed.append(killmail)
        self._remember(killmail)
        involved = _involved(killmail)
        delivered = 0
        for client in list(self._clients):
            if client.join_ref is None:
                continue
            if client.systems:
                matches = system_id in client.systems
            else:
                matches = not involved.isdisjoint(client.characters)
            if not matches:
                continue
            payload = {
                "system_id": system_id,
                "killmails": [killmail],
                "timestamp": iso_now(),
                "preload": False,
            }
            frame = [client.join_ref, None, LOBBY, "killmail_update", payload]
            for _ in range(2 if self.duplicate_realtime else 1):
                await self._send(client, frame)
            delivered += 1
        return delivered

    async def broadcast_raw(self, frames: Iterable[str]) -> int:
        """Send pre-encoded V2 frames to every socket following systems; return frames sent.

        For benchmarks: the frames should use the broadcast form ``[null, null, topic, ...]``,
        and nothing is recorded, so the fake's own cost stays out of the measurement.
        """
        targets = [c.conn for c in self._clients if c.join_ref is not None and c.systems]
        sent = 0
        for frame in frames:
            for conn in targets:
                with contextlib.suppress(ConnectionClosed):
                    await conn.send(frame)
                    sent += 1
        return sent

    def wire_frames(
        self, frames: Sequence[str], *, compress: bool = True
    ) -> dict[ServerConnection, bytes]:
        """``frames`` as WebSocket wire bytes for each socket following systems.

        Each text frame is compressed with that socket's negotiated permessage-deflate (each
        message on its own, so the order of writes cannot upset it) and framed unmasked, as a
        server sends it. Building this is the fake's cost; :meth:`write_wire` then costs
        nothing per frame, so a benchmark charges the console only for what it does itself.
        ``compress=False`` frames them plain (allowed under permessage-deflate), for faults.
        """
        wires: dict[ServerConnection, bytes] = {}
        for client in self._clients:
            if client.join_ref is None or not client.systems:
                continue
            extensions = client.conn.protocol.extensions if compress else []
            wires[client.conn] = b"".join(
                WireFrame(Opcode.TEXT, frame.encode()).serialize(mask=False, extensions=extensions)
                for frame in frames
            )
        return wires

    def write_wire(self, wires: dict[ServerConnection, bytes]) -> int:
        """Write what :meth:`wire_frames` built to its sockets at once; return sockets written."""
        written = 0
        for conn, data in wires.items():
            if conn.transport.is_closing():
                continue
            conn.transport.write(data)
            written += 1
        return written

    def seed_kills(self, killmails: Iterable[dict[str, Any]]) -> None:
        """Record kills for preload only, without pushing them."""
        for killmail in killmails:
            self._remember(killmail)

    def _remember(self, killmail: dict[str, Any]) -> None:
        system_id = killmail.get("system_id", killmail.get("solar_system_id"))
        if isinstance(system_id, int):
            size = max(1, self.preload_per_system)
            self._recent.setdefault(system_id, deque(maxlen=size)).append(killmail)

    async def send_phx_error(self) -> int:
        """Crash every joined channel (``phx_error``); return how many were crashed."""
        return await self._end_channels("phx_error")

    async def send_phx_close(self) -> int:
        """Close every joined channel (``phx_close``); return how many were closed."""
        return await self._end_channels("phx_close")

    async def drop_connections(self) -> int:
        """Abort every socket without a close frame (a network cut); return how many."""
        clients = list(self._clients)
        for client in clients:
            client.conn.transport.abort()
        return len(clients)

    # -- internals -------------------------------------------------------------------------
    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != _PATH:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        if self.refuse_connections:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable\n")
        return None

    async def _end_channels(self, event: str) -> int:
        count = 0
        for client in list(self._clients):
            if client.join_ref is not None:
                ref = client.join_ref
                client.reset()
                await self._send(client, [ref, ref, LOBBY, event, {}])
                count += 1
        return count

    async def _send(self, client: _Client, frame: Frame) -> None:
        self.sent.append(frame)
        with contextlib.suppress(ConnectionClosed):
            await client.conn.send(orjson.dumps(frame).decode())

    async def _reply(
        self, client: _Client, frame: Frame, status: str, response: dict[str, Any]
    ) -> None:
        join_ref, ref, topic = frame[0], frame[1], frame[2]
        reply = {"status": status, "response": response}
        await self._send(client, [join_ref, ref, topic, "phx_reply", reply])

    async def _handler(self, conn: ServerConnection) -> None:
        query = parse_qs(urlsplit(conn.request.path if conn.request else "").query)
        raw_id = next(
            (query[k][0] for k in ("client_identifier", "client_id", "identifier") if k in query),
            "",
        )
        client = _Client(conn, client_identifier(raw_id))
        self.connections += 1
        self.client_identifiers.append(client.identifier)
        self._clients.add(client)
        try:
            async for message in conn:
                frame = self._decode(message)
                if frame is None:
                    await conn.close(1003, "invalid frame")
                    break
                await self._dispatch(client, frame)
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)

    @staticmethod
    def _decode(message: str | bytes) -> Frame | None:
        try:
            frame = orjson.loads(message)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(frame, list) or len(frame) != 5 or not isinstance(frame[2], str):
            return None
        if not isinstance(frame[3], str) or not isinstance(frame[4], dict):
            return None
        return frame

    async def _dispatch(self, client: _Client, frame: Frame) -> None:
        join_ref, ref, topic, event, _payload = frame
        if topic == "phoenix" and event == "heartbeat":
            self.heartbeats += 1
            if not self.withhold_heartbeats:
                await self._send(client, [None, ref, "phoenix", "phx_reply", _OK_EMPTY])
            return
        if event == "phx_join" and topic == LOBBY:
            await self._join(client, frame)
        elif event == "phx_join" and topic.startswith("killmails:"):
            await self._reply(client, frame, "error", {"reason": "join crashed"})
        elif topic != LOBBY or client.join_ref is None:
            unmatched = {"status": "error", "response": {"reason": "unmatched topic"}}
            await self._send(client, [None, ref, topic, "phx_reply", unmatched])
        elif event == "phx_leave":
            await self._reply(client, frame, "ok", {})
            client.reset()
            await self._send(client, [join_ref, join_ref, LOBBY, "phx_close", {}])
        elif event == "get_status":
            await self._reply(client, frame, "ok", self._status(client))
        elif event in _SUBSCRIPTION_EVENTS:
            await self._subscription(client, frame)
        else:
            await self._crash(client)

    async def _crash(self, client: _Client) -> None:
        ref = client.join_ref
        client.reset()
        await self._send(client, [ref, ref, LOBBY, "phx_error", {}])

    def _status(self, client: _Client) -> dict[str, Any]:
        return {
            "subscription_id": client.subscription_id,
            "subscribed_systems": list(client.systems),
            "subscribed_characters": list(client.characters),
            "connected_at": client.connected_at,
            "user_id": None,
        }

    async def _join(self, client: _Client, frame: Frame) -> None:
        join_ref, payload = frame[0], frame[4]
        if client.join_ref is not None:
            old = client.join_ref
            client.reset()
            await self._send(client, [old, old, LOBBY, "phx_close", {}])
        self.joins.append(payload)
        if self.hang_joins:
            return
        result = validate_join(
            payload, max_systems=self.max_systems, max_characters=self.max_characters
        )
        if isinstance(result, str):
            self.refused_joins += 1
            await self._reply(client, frame, "error", {"reason": result})
            return
        client.join_ref = join_ref
        client.subscription_id = secrets.token_urlsafe(16)
        client.systems = dict.fromkeys(result[0])
        client.characters = dict.fromkeys(result[1])
        if self.preload_before_reply:
            await self._preload(client, list(client.systems))
        if self.join_reply_delay > 0:
            await asyncio.sleep(self.join_reply_delay)
        await self._reply(
            client,
            frame,
            "ok",
            {
                "subscription_id": client.subscription_id,
                "subscribed_systems": list(client.systems),
                "subscribed_characters": list(client.characters),
                "status": "connected",
            },
        )
        if not self.preload_before_reply:
            await self._preload(client, list(client.systems))

    async def _subscription(self, client: _Client, frame: Frame) -> None:
        event, payload = frame[3], frame[4]
        kind = "systems" if event.endswith("_systems") else "character_ids"
        limit = self.max_systems if kind == "systems" else self.max_characters
        ids = validate_ids(payload.get(kind), kind, limit)
        if isinstance(ids, str):
            await self._crash(client)  # the real error reply cannot be encoded (§3.4)
            return
        noun = "systems" if kind == "systems" else "characters"
        current = client.systems if kind == "systems" else client.characters
        if event.startswith("subscribe") and self.refuse_subscribes > 0:
            self.refuse_subscribes -= 1
            await self._reply(client, frame, "error", {"reason": "try again later"})
            return
        if event.startswith("subscribe"):
            added = [i for i in ids if i not in current]
            if not added:
                msg = f"Already subscribed to all requested {noun}"
                await self._reply(client, frame, "ok", {"message": msg})
                return
            if len(current) + len(added) > limit:
                self.limit_crashes += 1
                await self._crash(client)
                return
            current.update(dict.fromkeys(added))
            if self.subscribe_reply_delay > 0:
                await asyncio.sleep(self.subscribe_reply_delay)
            await self._reply(client, frame, "ok", {f"subscribed_{noun}": list(current)})
            if kind == "systems":
                await self._preload(client, added)
            return
        removed = set(ids) & set(current)
        if not removed:
            msg = f"Not subscribed to any of the requested {noun}"
            await self._reply(client, frame, "ok", {"message": msg})
            return
        for i in removed:
            del current[i]
        await self._reply(client, frame, "ok", {f"subscribed_{noun}": list(current)})

    async def _preload(self, client: _Client, systems: list[int]) -> None:
        cutoff = datetime.now(UTC) - _PRELOAD_WINDOW
        for system_id in systems:
            recent = self._recent.get(system_id)
            if not recent:
                continue
            kills = [k for k in recent if (_kill_time(k) or cutoff) >= cutoff]
            kills = kills[-self.preload_per_system :] if self.preload_per_system > 0 else []
            if not kills or client.join_ref is None:
                continue
            payload = {
                "system_id": system_id,
                "killmails": kills,
                "timestamp": iso_now(),
                "preload": True,
            }
            await self._send(client, [client.join_ref, None, LOBBY, "killmail_update", payload])


_OK_EMPTY: Final = {"status": "ok", "response": {}}
_SUBSCRIPTION_EVENTS: Final = frozenset(
    {"subscribe_systems", "unsubscribe_systems", "subscribe_characters", "unsubscribe_characters"}
)
