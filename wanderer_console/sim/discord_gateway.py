"""Fake Discord gateway: the bot websocket (API v10, JSON) on 127.0.0.1.

It speaks what the console's gateway client relies on: ``HELLO`` with a heartbeat interval,
``IDENTIFY`` checked against the bot token (a wrong one is closed with 4004, as Discord does),
``READY`` with a session id and ``resume_gateway_url``, a ``GUILD_CREATE`` per guild with its
channels, AFK channel and voice states, heartbeat acks, and ``RESUME`` replaying every dispatch
of the session after the client's sequence, then ``RESUMED``. Dispatches made while no socket
of the session is open are kept and replayed on resume, as Discord does.

Test hooks: :meth:`FakeGateway.drop_connections` (a network cut), ``refuse_connections`` (the
gateway unreachable: sockets aborted on arrival), ``withhold_acks`` (a zombie connection),
:meth:`FakeGateway.invalidate_session`, :meth:`FakeGateway.close_all` (any close code, e.g.
4004), :meth:`FakeGateway.inject_interaction` (a slash command as Discord sends it) and
:meth:`FakeGateway.set_voice` (someone joins, moves or leaves voice).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from wanderer_console.domain.clock import Clock, SystemClock

__all__ = ["FakeGateway", "FakeGuild", "Interaction"]

_DISPATCH, _HEARTBEAT, _IDENTIFY, _PRESENCE, _RESUME = 0, 1, 2, 3, 6
_INVALID_SESSION, _HELLO, _ACK = 9, 10, 11
BOT_USER_ID: Final = "1100000000000000001"
APPLICATION_ID: Final = "1200000000000000001"


@dataclass(slots=True)
class FakeGuild:
    """A guild the bot is in: its voice channels, AFK channel and who is in voice."""

    id: str
    afk_channel_id: str | None = None
    voice_channels: list[str] = field(default_factory=list)
    voice: dict[str, str] = field(default_factory=dict)
    """user id -> channel id."""

    def guild_create(self) -> dict[str, Any]:
        """The ``GUILD_CREATE`` payload."""
        channels = [{"id": c, "type": 2, "name": f"voice-{c[-3:]}"} for c in self.voice_channels]
        if self.afk_channel_id and self.afk_channel_id not in self.voice_channels:
            channels.append({"id": self.afk_channel_id, "type": 2, "name": "AFK"})
        return {
            "id": self.id,
            "name": "Sim Guild",
            "afk_channel_id": self.afk_channel_id,
            "channels": channels,
            "members": [],
            "voice_states": [
                {"user_id": user, "channel_id": channel, "guild_id": self.id}
                for user, channel in self.voice.items()
            ],
            "unavailable": False,
        }


@dataclass(slots=True)
class Interaction:
    """A slash command the fake sent, and what the console answered."""

    id: str
    token: str
    payload: dict[str, Any]
    sent_at: float
    """Wall time (UNIX seconds) on the gateway's clock when it was sent; Discord's 3-second
    answer window runs from here."""
    responses: list[dict[str, Any]] = field(default_factory=list)
    """Each callback body (``type`` 4 or 5) and each edit of the original (``type`` "edit")."""
    answered_at: float | None = None
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once the answer carries its text (a type-4 reply, or the edit of a deferral)."""

    def record(self, response: dict[str, Any]) -> None:
        """Keep one callback or edit; :attr:`answered` is set once there is text."""
        self.responses.append(response)
        if self.final_text() is not None:
            self.answered.set()

    def final_text(self) -> str | None:
        """What the user sees: the last edit's content, else the type-4 reply's content."""
        for response in reversed(self.responses):
            data = response.get("data") or {}
            if response.get("type") in ("edit", 4) and "content" in data:
                return str(data["content"])
        return None


@dataclass(eq=False, slots=True)
class _Session:
    id: str
    events: list[tuple[int, str, Any]] = field(default_factory=list)
    seq: int = 0
    conn: ServerConnection | None = None
    valid: bool = True


class FakeGateway:
    """A Discord gateway for one bot token (see the module docstring)."""

    def __init__(
        self,
        *,
        bot_token: str = "sim-bot-token",
        heartbeat_interval_ms: int = 41_250,
        guilds: list[FakeGuild] | None = None,
        application_id: str = APPLICATION_ID,
        clock: Clock | None = None,
    ) -> None:
        self.bot_token = bot_token
        self._clock = clock or SystemClock()
        """Dates each interaction (``sent_at``, wall time): give it the fake Discord's clock so
        the answer window is measured on one clock."""
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.guilds = {g.id: g for g in guilds or ()}
        self.application_id = application_id
        self.withhold_acks = False
        """While true, heartbeats are counted but never acknowledged (a zombie connection)."""
        self.refuse_connections = False
        """While true, a new socket is aborted before ``HELLO`` (the gateway unreachable)."""
        self.identifies = 0
        self.resumes = 0
        self.heartbeats = 0
        self.connections = 0
        self.closed_4004 = 0
        self.presences: list[dict[str, Any]] = []
        """Every ``PRESENCE_UPDATE`` (and identify presence) received, oldest first."""
        self.identify_payloads: list[dict[str, Any]] = []
        self.interactions: dict[str, Interaction] = {}
        self._sessions: dict[str, _Session] = {}
        self._conns: set[ServerConnection] = set()
        self._server: Server | None = None
        self._port: int | None = None
        self._next_id = 1_300_000_000_000_000_000

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port)."""
        self._server = await serve(self._handler, host, port, compression=None)
        self._port = int(next(iter(self._server.sockets)).getsockname()[1])

    @property
    def url(self) -> str:
        """``ws://127.0.0.1:PORT`` (what ``GET /gateway/bot`` answers)."""
        if self._port is None:
            raise RuntimeError("gateway not started")
        return f"ws://127.0.0.1:{self._port}"

    async def stop(self) -> None:
        """Close every socket and stop listening."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5)

    @property
    def active_connections(self) -> int:
        """Sockets open now."""
        return len(self._conns)

    # -- test hooks ------------------------------------------------------------------------
    async def dispatch(self, name: str, data: Any) -> int:
        """Send a dispatch to every live session (kept for replay if its socket is gone);
        returns its sequence number in the last session."""
        seq = 0
        for session in self._sessions.values():
            if session.valid:
                seq = await self._dispatch(session, name, data)
        return seq

    def drop_connections(self) -> int:
        """Abort every socket without a close frame (a network cut); return how many."""
        conns = list(self._conns)
        for conn in conns:
            conn.transport.abort()
        return len(conns)

    async def close_all(self, code: int, reason: str = "") -> int:
        """Close every socket with ``code`` (4004: authentication failed …)."""
        conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(ConnectionClosed):
                await conn.close(code, reason)
        return len(conns)

    async def invalidate_session(self, resumable: bool = False) -> int:
        """Send ``INVALID_SESSION``; a non-resumable one forgets the sessions."""
        count = 0
        for session in list(self._sessions.values()):
            if session.conn is not None:
                if not resumable:
                    session.valid = False
                with contextlib.suppress(ConnectionClosed):
                    await session.conn.send(_frame(_INVALID_SESSION, resumable))
                count += 1
        return count

    async def inject_interaction(
        self,
        options: list[dict[str, Any]],
        *,
        guild_id: str | None = None,
        user_id: str = "1400000000000000001",
        roles: list[str] | None = None,
        direct_message: bool = False,
    ) -> Interaction:
        """Send ``INTERACTION_CREATE`` for ``/notifier`` with ``options`` (as Discord nests
        sub-command groups, sub-commands and their values); ``direct_message``: as sent from a
        DM with the bot (no guild, no member: the user at the top)."""
        self._next_id += 1
        interaction = Interaction(
            id=str(self._next_id),
            token=f"aW50ZXJhY3Rpb24{secrets.token_hex(16)}",
            payload={},
            sent_at=self._clock.wall(),
        )
        guild = guild_id or next(iter(self.guilds), None)
        interaction.payload = {
            "id": interaction.id,
            "application_id": self.application_id,
            "type": 2,
            "token": interaction.token,
            "version": 1,
            "guild_id": guild,
            "channel_id": "1500000000000000001",
            "member": {
                "user": {"id": user_id, "username": "pilot", "global_name": "Sim Pilot"},
                "roles": list(roles or []),
            },
            "data": {
                "id": "1600000000000000001",
                "name": "notifier",
                "type": 1,
                "options": options,
            },
        }
        if direct_message:
            del interaction.payload["guild_id"]
            interaction.payload["user"] = interaction.payload.pop("member")["user"]
        self.interactions[interaction.id] = interaction
        await self.dispatch("INTERACTION_CREATE", interaction.payload)
        return interaction

    async def set_voice(self, guild_id: str, user_id: str, channel_id: str | None) -> None:
        """Someone joins or moves to ``channel_id`` (``None``: leaves voice)."""
        guild = self.guilds.setdefault(guild_id, FakeGuild(guild_id))
        if channel_id is None:
            guild.voice.pop(user_id, None)
        else:
            guild.voice[user_id] = channel_id
        await self.dispatch(
            "VOICE_STATE_UPDATE",
            {
                "guild_id": guild_id,
                "channel_id": channel_id,
                "user_id": user_id,
                "session_id": secrets.token_hex(8),
                "member": {"user": {"id": user_id, "username": f"user{user_id[-3:]}"}},
            },
        )

    # -- protocol ----------------------------------------------------------------------------
    async def _dispatch(self, session: _Session, name: str, data: Any) -> int:
        session.seq += 1
        session.events.append((session.seq, name, data))
        conn = session.conn
        if conn is not None:
            with contextlib.suppress(ConnectionClosed):
                await conn.send(_frame(_DISPATCH, data, seq=session.seq, name=name))
        return session.seq

    async def _handler(self, conn: ServerConnection) -> None:
        if self.refuse_connections:
            conn.transport.abort()
            return
        self.connections += 1
        self._conns.add(conn)
        session: _Session | None = None
        try:
            await conn.send(_frame(_HELLO, {"heartbeat_interval": self.heartbeat_interval_ms}))
            async for message in conn:
                try:
                    payload = orjson.loads(message)
                    op, data = payload["op"], payload.get("d")
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    await conn.close(4002, "Error while decoding payload.")
                    break
                if op == _HEARTBEAT:
                    self.heartbeats += 1
                    if not self.withhold_acks:
                        await conn.send(_frame(_ACK, None))
                elif op == _IDENTIFY:
                    session = await self._identify(conn, data)
                elif op == _RESUME:
                    session = await self._resume(conn, data)
                elif op == _PRESENCE:
                    self.presences.append(data)
                else:
                    await conn.close(4001, "Unknown opcode.")
                    break
        except ConnectionClosed:
            pass
        finally:
            self._conns.discard(conn)
            if session is not None and session.conn is conn:
                session.conn = None

    async def _identify(self, conn: ServerConnection, data: Any) -> _Session | None:
        self.identifies += 1
        self.identify_payloads.append(data if isinstance(data, dict) else {})
        if not isinstance(data, dict) or data.get("token") != self.bot_token:
            self.closed_4004 += 1
            await conn.close(4004, "Authentication failed.")
            return None
        if isinstance(data.get("presence"), dict):
            self.presences.append(data["presence"])
        session = _Session(secrets.token_hex(16))
        self._sessions[session.id] = session
        session.conn = conn
        ready = {
            "v": 10,
            "user": {"id": BOT_USER_ID, "username": "WandererSim", "bot": True},
            "guilds": [{"id": g, "unavailable": True} for g in self.guilds],
            "session_id": session.id,
            "resume_gateway_url": self.url,
            "application": {"id": self.application_id, "flags": 0},
        }
        await self._dispatch(session, "READY", ready)
        for guild in self.guilds.values():
            await self._dispatch(session, "GUILD_CREATE", guild.guild_create())
        return session

    async def _resume(self, conn: ServerConnection, data: Any) -> _Session | None:
        session_id = data.get("session_id") if isinstance(data, dict) else None
        session = self._sessions.get(str(session_id))
        if (
            session is None
            or not session.valid
            or not isinstance(data, dict)
            or data.get("token") != self.bot_token
        ):
            await conn.send(_frame(_INVALID_SESSION, False))
            return None
        self.resumes += 1
        session.conn = conn
        raw_seq = data.get("seq")
        after = raw_seq if isinstance(raw_seq, int) else 0
        for seq, name, payload in list(session.events):
            if seq > after:
                await conn.send(_frame(_DISPATCH, payload, seq=seq, name=name))
        await self._dispatch(session, "RESUMED", {})
        return session


def _frame(op: int, data: Any, *, seq: int | None = None, name: str | None = None) -> str:
    return orjson.dumps({"op": op, "d": data, "s": seq, "t": name}).decode()
