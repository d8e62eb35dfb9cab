"""The Discord gateway protocol (API v10, JSON encoding), without I/O.

Like :mod:`~wanderer_console.ingest.phoenix` for the killstream, this module only turns incoming
text into decisions and builds outgoing frames; :mod:`~wanderer_console.ingest.gateway` moves
the strings over a websocket and keeps the time. What it keeps is the session: the sequence
number of the last dispatch, the session id and ``resume_gateway_url`` from ``READY``, and
whether the last heartbeat was acknowledged.

The life of a connection (Discord's "Gateway" documentation):

1. The server sends ``HELLO`` (op 10) with ``heartbeat_interval``; the first heartbeat goes
   after ``interval * jitter`` (a random fraction), then one every interval.
2. A fresh session sends ``IDENTIFY`` (op 2) with the token and the intents; a session that
   dropped sends ``RESUME`` (op 6) with its session id and sequence to ``resume_gateway_url``,
   and the server replays what was missed, then sends ``RESUMED``.
3. Every heartbeat (op 1, the last sequence) must be acknowledged (op 11) before the next is
   due; a missing ack means a zombie connection: close it with a code other than 1000/1001
   (those end the session) and resume.
4. ``RECONNECT`` (op 7): reconnect and resume. ``INVALID_SESSION`` (op 9): ``d`` says whether
   the session may be resumed; if not, wait 1-5 s and identify afresh.
5. Close codes say whether to reconnect at all (:data:`FATAL_CLOSE_CODES` never do: a wrong
   token or intents the application may not use fail the same way every time).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import orjson

__all__ = [
    "FATAL_CLOSE_CODES",
    "FRESH_CLOSE_CODES",
    "GatewayLocation",
    "INTENTS",
    "CloseVerdict",
    "Dispatch",
    "GatewayError",
    "GatewaySession",
    "HeartbeatAck",
    "HeartbeatNow",
    "Hello",
    "InvalidSession",
    "Op",
    "ReconnectAsked",
    "close_verdict",
    "presence",
]


class GatewayError(ValueError):
    """An incoming frame is not a gateway payload."""


class Op(IntEnum):
    """Gateway opcodes used here."""

    DISPATCH = 0
    HEARTBEAT = 1
    IDENTIFY = 2
    PRESENCE_UPDATE = 3
    RESUME = 6
    RECONNECT = 7
    INVALID_SESSION = 9
    HELLO = 10
    HEARTBEAT_ACK = 11


INTENT_GUILDS: Final = 1 << 0
INTENT_GUILD_VOICE_STATES: Final = 1 << 7
INTENTS: Final = INTENT_GUILDS | INTENT_GUILD_VOICE_STATES
"""The minimum the console needs: guilds (``GUILD_CREATE`` with its voice states and AFK
channel) and voice states (``VOICE_STATE_UPDATE``). Interactions arrive without an intent; no
privileged intent is asked for, so none has to be enabled in the developer portal."""

FATAL_CLOSE_CODES: Final[dict[int, str]] = {
    4004: "authentication failed: the bot token is wrong (discord.bot_token / DISCORD_BOT_TOKEN)",
    4010: "invalid shard sent when identifying",
    4011: "sharding required: the bot is in too many guilds for one connection",
    4012: "invalid gateway API version",
    4013: "invalid intents",
    4014: (
        "disallowed intents: the application may not use an intent asked for (enable it for the"
        " bot in the Discord developer portal)"
    ),
}
"""Close codes after which reconnecting would fail the same way: the operator must act."""

FRESH_CLOSE_CODES: Final = frozenset({4007, 4009})
"""Invalid sequence, session timed out: reconnect, but identify afresh (the session is gone)."""


_LONGEST_START_WAIT: Final = 86_400.0
"""Discord's session start window is a day: a longer ``reset_after`` is not believed."""


@dataclass(frozen=True, slots=True)
class GatewayLocation:
    """``GET /gateway/bot``: where the gateway is, and how many sessions may still start.

    Every ``IDENTIFY`` spends one of ``session_start_limit.total`` starts per day (1000 for most
    bots); one sent when ``remaining`` is 0 makes Discord reset the bot's token, which stops the
    bot until the operator sets a new one. So with none left the client waits ``reset_after``
    before identifying. ``max_concurrency`` (shards that may identify together) is not read:
    the console runs one shard, which identifies alone whatever it says.
    """

    url: str
    remaining: int | None = None
    """Session starts left in the window (``None``: the answer did not say)."""
    reset_after: float = 0.0
    """Seconds until the window starts again (at most a day)."""

    @classmethod
    def from_answer(cls, data: Any) -> GatewayLocation:
        """Read Discord's answer; :class:`GatewayError` without a websocket URL in it."""
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise GatewayError(f"no websocket URL in the answer ({data!r:.200})")
        limit = data.get("session_start_limit")
        limit = limit if isinstance(limit, dict) else {}
        remaining = limit.get("remaining")
        if not isinstance(remaining, int) or isinstance(remaining, bool) or remaining < 0:
            remaining = None
        reset_ms = limit.get("reset_after")
        reset_after = 0.0
        if (
            isinstance(reset_ms, int | float)
            and not isinstance(reset_ms, bool)
            and math.isfinite(reset_ms)
            and reset_ms > 0
        ):
            reset_after = min(reset_ms / 1000.0, _LONGEST_START_WAIT)
        return cls(url, remaining, reset_after)


class CloseVerdict(IntEnum):
    """What to do after the socket closed."""

    RESUME = 1
    IDENTIFY = 2
    FATAL = 3


def close_verdict(code: int | None) -> CloseVerdict:
    """Whether a close with ``code`` (``None``: the connection just died) allows a resume."""
    if code is not None and code in FATAL_CLOSE_CODES:
        return CloseVerdict.FATAL
    if code is not None and code in FRESH_CLOSE_CODES:
        return CloseVerdict.IDENTIFY
    return CloseVerdict.RESUME


@dataclass(frozen=True, slots=True)
class Hello:
    """``HELLO``: start heartbeating (first after ``first_delay``), then identify or resume."""

    interval: float
    first_delay: float
    identify: str
    """The frame to send now: ``IDENTIFY`` or ``RESUME``."""
    resuming: bool


@dataclass(frozen=True, slots=True)
class Dispatch:
    """An event (op 0): ``READY``, ``GUILD_CREATE``, ``INTERACTION_CREATE`` …"""

    name: str
    data: Any
    seq: int | None


@dataclass(frozen=True, slots=True)
class HeartbeatAck:
    """The last heartbeat was acknowledged (op 11)."""


@dataclass(frozen=True, slots=True)
class HeartbeatNow:
    """The server asked for a heartbeat at once (op 1): send :meth:`GatewaySession.heartbeat`."""


@dataclass(frozen=True, slots=True)
class ReconnectAsked:
    """``RECONNECT`` (op 7): close and resume."""


@dataclass(frozen=True, slots=True)
class InvalidSession:
    """``INVALID_SESSION`` (op 9): resume if ``resumable``, else identify afresh after a wait."""

    resumable: bool


Event = Hello | Dispatch | HeartbeatAck | HeartbeatNow | ReconnectAsked | InvalidSession | None


class GatewaySession:
    """One gateway session across its connections: sequence, session id, heartbeat acks."""

    def __init__(
        self,
        token: str,
        *,
        intents: int = INTENTS,
        presence: dict[str, Any] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._token = token
        self.intents = intents
        self.presence = presence
        self._rng = rng or random.Random()
        self.seq: int | None = None
        """The last dispatch's sequence number (sent with heartbeats and resumes)."""
        self.session_id: str | None = None
        self.resume_url: str | None = None
        """``resume_gateway_url`` from ``READY``: where a resume connects."""
        self.heartbeat_acked = True
        self.user: dict[str, Any] = {}
        """The bot user from ``READY``."""

    # -- connection life cycle -----------------------------------------------------------------

    @property
    def can_resume(self) -> bool:
        """A session exists to resume."""
        return self.session_id is not None and self.seq is not None

    def change_token(self, token: str) -> None:
        """Identify with ``token`` from now on (a new token is a new bot: no session to resume)."""
        self._token = token
        self.forget()

    def forget(self) -> None:
        """Drop the session: the next connection identifies afresh."""
        self.session_id = None
        self.resume_url = None
        self.seq = None

    def connection_lost(self) -> None:
        """The socket is gone: a new one starts with no heartbeat outstanding."""
        self.heartbeat_acked = True

    @staticmethod
    def _encode(op: Op, data: Any) -> str:
        return orjson.dumps({"op": int(op), "d": data}).decode()

    def identify(self) -> str:
        """``IDENTIFY`` with the token, the intents and the initial presence."""
        data: dict[str, Any] = {
            "token": self._token,
            "intents": self.intents,
            "properties": {
                "os": "linux",
                "browser": "wanderer-console",
                "device": "wanderer-console",
            },
        }
        if self.presence is not None:
            data["presence"] = self.presence
        return self._encode(Op.IDENTIFY, data)

    def resume(self) -> str:
        """``RESUME`` with the session id and the last sequence."""
        data = {"token": self._token, "session_id": self.session_id, "seq": self.seq}
        return self._encode(Op.RESUME, data)

    def heartbeat(self) -> str:
        """A heartbeat carrying the last sequence; it is outstanding until acknowledged."""
        self.heartbeat_acked = False
        return self._encode(Op.HEARTBEAT, self.seq)

    def presence_update(self, text: str) -> str:
        """``PRESENCE_UPDATE`` (op 3): online, "Watching ``text``"."""
        self.presence = presence(text)
        return self._encode(Op.PRESENCE_UPDATE, self.presence)

    # -- incoming --------------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> Event:
        """Decode one payload and update the session; ``None`` for ones that need nothing."""
        try:
            payload = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise GatewayError(f"not JSON: {exc}") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("op"), int):
            raise GatewayError("a gateway payload is an object with an integer 'op'")
        op, data = payload["op"], payload.get("d")
        if op == Op.DISPATCH:
            seq = payload.get("s")
            name = payload.get("t")
            if not isinstance(name, str):
                raise GatewayError("a dispatch needs a string 't'")
            if isinstance(seq, int) and (self.seq is None or seq > self.seq):
                self.seq = seq
            if name == "READY" and isinstance(data, dict):
                self.session_id = str(data.get("session_id") or "") or None
                url = data.get("resume_gateway_url")
                self.resume_url = str(url) if url else None
                user = data.get("user")
                self.user = user if isinstance(user, dict) else {}
            return Dispatch(name, data, seq if isinstance(seq, int) else None)
        if op == Op.HELLO:
            beat = data.get("heartbeat_interval") if isinstance(data, dict) else None
            # A bool is an int to Python (1 ms); with 0 or negative the heartbeat task beats
            # again before any ack can come, and closes every connection to resume.
            if (
                not isinstance(beat, int | float)
                or isinstance(beat, bool)
                or not math.isfinite(beat)
                or beat <= 0
            ):
                raise GatewayError(
                    f"HELLO needs a positive number of ms as heartbeat_interval, got {beat!r}"
                )
            interval = float(beat) / 1000.0
            resuming = self.can_resume
            frame = self.resume() if resuming else self.identify()
            return Hello(interval, interval * self._rng.random(), frame, resuming)
        if op == Op.HEARTBEAT_ACK:
            self.heartbeat_acked = True
            return HeartbeatAck()
        if op == Op.HEARTBEAT:
            return HeartbeatNow()
        if op == Op.RECONNECT:
            return ReconnectAsked()
        if op == Op.INVALID_SESSION:
            resumable = bool(data)
            if not resumable:
                self.forget()
            return InvalidSession(resumable)
        return None  # an opcode a client never receives, or a newer one: nothing to do

    def identify_wait(self) -> float:
        """How long to wait before identifying after a non-resumable ``INVALID_SESSION``."""
        return 1.0 + 4.0 * self._rng.random()


def presence(text: str) -> dict[str, Any]:
    """A presence: online, "Watching ``text``" (activity type 3), at most 128 characters."""
    return {
        "since": None,
        "activities": [{"name": text[:128] or "Wanderer", "type": 3}],
        "status": "online",
        "afk": False,
    }
