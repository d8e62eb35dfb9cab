"""Phoenix channels, serializer V2 (PROTOCOLS.md §3.1), without I/O.

Frames are JSON arrays ``[join_ref, ref, topic, event, payload]``. This module builds outgoing
frames, keeps refs and the join state, and turns incoming text into typed messages; the socket
code around it only moves strings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

__all__ = [
    "ChannelClosed",
    "ChannelErrored",
    "ChannelState",
    "FrameError",
    "Inbound",
    "PhoenixChannel",
    "Push",
    "Reply",
]


class FrameError(ValueError):
    """An incoming frame is not a valid V2 message."""


class ChannelState(StrEnum):
    """Join life cycle of the channel."""

    CLOSED = "closed"
    JOINING = "joining"
    JOINED = "joined"
    ERRORED = "errored"


@dataclass(frozen=True, slots=True)
class Reply:
    """``phx_reply`` to one of our pushes."""

    ref: str | None
    topic: str
    status: str
    response: dict[str, Any]
    is_join: bool
    is_heartbeat: bool


@dataclass(frozen=True, slots=True)
class Push:
    """A server push on our channel (``killmail_update`` …)."""

    topic: str
    event: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChannelErrored:
    """The server-side channel crashed: rejoin with the full state."""

    topic: str


@dataclass(frozen=True, slots=True)
class ChannelClosed:
    """The server closed the channel (or a duplicate join replaced it): rejoin."""

    topic: str


Inbound = Reply | Push | ChannelErrored | ChannelClosed


class PhoenixChannel:
    """One channel topic on one socket: refs, join state and frame codec."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.state = ChannelState.CLOSED
        self.join_ref: str | None = None
        self._ref = 0
        self._pending_heartbeat: str | None = None

    def _next_ref(self) -> str:
        self._ref += 1
        return str(self._ref)

    @staticmethod
    def _encode(frame: list[Any]) -> str:
        return orjson.dumps(frame).decode()

    def join(self, payload: dict[str, Any]) -> str:
        """A ``phx_join`` frame with a fresh join_ref; the state becomes JOINING."""
        ref = self._next_ref()
        self.join_ref = ref
        self.state = ChannelState.JOINING
        return self._encode([ref, ref, self.topic, "phx_join", payload])

    def push(self, event: str, payload: dict[str, Any]) -> tuple[str, str]:
        """A channel event frame; returns ``(ref, frame)``."""
        if self.state is not ChannelState.JOINED:
            raise RuntimeError(f"cannot push {event!r}: channel is {self.state.value}")
        ref = self._next_ref()
        return ref, self._encode([self.join_ref, ref, self.topic, event, payload])

    def heartbeat(self) -> tuple[str, str]:
        """A heartbeat frame on topic ``phoenix``; remembers its ref."""
        ref = self._next_ref()
        self._pending_heartbeat = ref
        return ref, self._encode([None, ref, "phoenix", "heartbeat", {}])

    @property
    def heartbeat_pending(self) -> bool:
        """True while the last heartbeat has not been answered (dead socket if still so)."""
        return self._pending_heartbeat is not None

    def reset(self) -> None:
        """Forget the join (the socket is gone); refs keep increasing."""
        self.state = ChannelState.CLOSED
        self.join_ref = None
        self._pending_heartbeat = None

    def receive(self, text: str | bytes) -> Inbound | None:
        """Decode one frame and update the state; ``None`` for frames of other joins."""
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FrameError(f"not JSON: {exc}") from exc
        if not isinstance(frame, list) or len(frame) != 5:
            raise FrameError("a V2 frame is a 5-element array")
        join_ref, ref, topic, event, payload = frame
        if not isinstance(topic, str) or not isinstance(event, str):
            raise FrameError("topic and event must be strings")
        if not (join_ref is None or isinstance(join_ref, str)) or not (
            ref is None or isinstance(ref, str)
        ):
            # Refs are ours echoed back (strings) or null; another shape (a list, an object)
            # is no reply to anything, and as a dict key it would end the socket's reader.
            raise FrameError("join_ref and ref must be strings or null")
        if not isinstance(payload, dict):
            raise FrameError("payload must be an object")
        if topic == "phoenix" and event == "phx_reply":
            if ref is not None and ref == self._pending_heartbeat:
                self._pending_heartbeat = None
            return Reply(ref, topic, str(payload.get("status")), _obj(payload), False, True)
        if topic != self.topic:
            return None
        stale = join_ref is not None and join_ref != self.join_ref
        if event == "phx_reply":
            is_join = ref is not None and ref == self.join_ref
            status = str(payload.get("status"))
            if is_join:
                self.state = ChannelState.JOINED if status == "ok" else ChannelState.ERRORED
            return Reply(ref, topic, status, _obj(payload), is_join, False)
        if stale:
            return None  # a message for a join we already replaced
        if event == "phx_error":
            self.state = ChannelState.ERRORED
            return ChannelErrored(topic)
        if event == "phx_close":
            self.state = ChannelState.CLOSED
            return ChannelClosed(topic)
        return Push(topic, event, payload)


def _obj(payload: dict[str, Any]) -> dict[str, Any]:
    response = payload.get("response")
    return response if isinstance(response, dict) else {}
