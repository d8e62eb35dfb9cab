"""Per-connection limits for the embedded HTTP server: read deadlines and a connection cap.

uvicorn closes an idle keep-alive connection after ``timeout_keep_alive`` and nothing else: a
client that connects and sends nothing, or dribbles its headers or its body a byte at a time,
keeps its socket (one file descriptor) for as long as it likes, and enough of them starve the
process of descriptors: ``/health`` stops answering and the engine can no longer open its own
outbound connections to Discord, the map and the killstream.

:class:`ConnectionGuard` bounds both. Each connection gets a deadline for its request headers
(from the moment it connects, or from the end of the previous response on a kept-alive
connection) and another for its request body; past either it is closed. The number of open
connections is capped at a budget well under the process's descriptor limit, and at the cap a
new connection evicts the one that has been waiting on its client the longest rather than being
turned away, so a flood of stalled sockets cannot lock out a quick request such as ``/health``.
Only when every open connection is busy in the app is a new one refused (``503``).

The guard works inside uvicorn's h11 protocol (:class:`GuardedH11Protocol`), whose parser state
says which phase a connection is in; the server always uses it, whether or not ``httptools``
is installed.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

__all__ = [
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedH11Protocol",
    "accept_batch",
    "connection_budget",
    "descriptor_limit",
]

Phase = Literal["headers", "body"]
CloseReason = Literal[
    "header_timeout", "body_timeout", "evicted", "over_capacity", "per_client_limit", "bad_request"
]

_COUNTED_NOT_LOGGED: Final = frozenset({"Invalid HTTP request received."})
"""uvicorn's per-request warnings the guard counts and logs throttled instead."""


class _DropCounted(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _COUNTED_NOT_LOGGED


http_log = logging.getLogger("wanderer_console.server.http")
"""What uvicorn logs for the guarded server (an app's traceback included) joins the console's
JSON log here, instead of uvicorn's own stderr lines."""
http_log.addFilter(_DropCounted())
# uvicorn tests ``logger.level <= TRACE`` to format a line per connection; NOTSET would pass.
http_log.setLevel(logging.INFO)

_REFUSED: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: 21\r\n"
    b"\r\n"
    b"too many connections\n"
)
"""Written straight to a refused socket: no request has been parsed yet, so h11 has no say."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long a client may take to send a request, and how many connections may be open."""

    header_timeout: float = 10.0
    """Seconds from connecting (or from the previous response) to the end of the headers."""
    body_timeout: float = 30.0
    """Seconds from the end of the headers to the end of the body."""
    max_connections: int = 256
    """Open connections at most (further capped by :func:`connection_budget`)."""
    max_connections_per_client: int = 0
    """Open connections per client address at most; 0 = no per-client cap."""


def descriptor_limit() -> int | None:
    """The process's soft ``RLIMIT_NOFILE``, or ``None`` when unlimited or unknown."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY or soft <= 0 else soft


def connection_budget(configured: int, nofile: int | None) -> int:
    """Connections the server may hold: ``configured``, but at most a quarter of ``nofile``.

    A quarter, because while a burst is being accepted up to two listen backlogs' worth of
    sockets (see :func:`accept_batch`) are open on top of the budget before the guard sees them,
    and the rest of the descriptors belong to the engine (database, outbound connections, logs).
    """
    if nofile is None:
        return max(1, configured)
    return max(1, min(configured, nofile // 4))


def accept_batch(budget: int) -> int:
    """The listen backlog, which is also how many sockets asyncio accepts in one go."""
    return max(8, min(128, budget // 2))


class ConnectionGuard:
    """Tracks the server's connections: who waits on its client, since when, and how many."""

    def __init__(
        self,
        limits: ConnectionLimits,
        *,
        on_close: Callable[[CloseReason, str], None] | None = None,
        nofile: int | None = None,
    ) -> None:
        self.limits = limits
        self.max_connections = connection_budget(limits.max_connections, nofile)
        self.backlog = accept_batch(self.max_connections)
        self._on_close = on_close
        self._open: set[GuardedH11Protocol] = set()
        self._per_client: dict[str, int] = {}
        # Connections waiting on their client, oldest wait first: the eviction order.
        self._waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()

    @property
    def open_connections(self) -> int:
        """Connections currently admitted."""
        return len(self._open)

    def protocol_class(self) -> type[asyncio.Protocol]:
        """The uvicorn protocol class bound to this guard (uvicorn builds one per connection)."""
        guard = self

        class _Bound(GuardedH11Protocol):
            _guard = guard

        return _Bound

    def admit(self, connection: GuardedH11Protocol) -> CloseReason | None:
        """Admit a new connection (evicting the longest-waiting one at the cap), or say why not."""
        host = connection.client_host
        per_client = self.limits.max_connections_per_client
        if per_client and self._per_client.get(host, 0) >= per_client:
            return "per_client_limit"
        if len(self._open) >= self.max_connections:
            if not self._waiting:
                return "over_capacity"
            victim = next(iter(self._waiting))
            victim.expire("evicted")
        self._open.add(connection)
        self._per_client[host] = self._per_client.get(host, 0) + 1
        return None

    def release(self, connection: GuardedH11Protocol) -> None:
        """Forget a connection (idempotent: called on expiry and again when it is lost)."""
        self._waiting.pop(connection, None)
        if connection not in self._open:
            return
        self._open.discard(connection)
        host = connection.client_host
        left = self._per_client.get(host, 1) - 1
        if left > 0:
            self._per_client[host] = left
        else:
            self._per_client.pop(host, None)

    def set_waiting(self, connection: GuardedH11Protocol, waiting: bool) -> None:
        """Mark a connection as waiting on its client (evictable) from now, or as busy."""
        self._waiting.pop(connection, None)
        if waiting and connection in self._open:
            self._waiting[connection] = None

    def report(self, reason: CloseReason, host: str) -> None:
        """Tell the owner (metrics, log) that a connection was closed or refused."""
        if self._on_close is not None:
            self._on_close(reason, host)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a body deadline and admission control."""

    _guard: ClassVar[ConnectionGuard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.logger = http_log
        self._phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._admitted = False

    @property
    def client_host(self) -> str:
        """The peer's address (the per-client key); ``"unknown"`` for a socket without one."""
        return str(self.client[0]) if self.client else "unknown"

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        """Admit the connection or refuse it at once (the socket is freed immediately)."""
        super().connection_made(transport)
        refusal = self._guard.admit(self)
        if refusal is not None:
            self.transport.write(_REFUSED)
            self.transport.close()
            self._guard.report(refusal, self.client_host)
            return
        self._admitted = True
        self._sync_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline and the guard's record, then let uvicorn clean up."""
        self._set_phase(None)
        self._guard.release(self)
        self._admitted = False
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, then follow the parser into its next phase."""
        super().data_received(data)
        self._sync_phase()

    def on_response_complete(self) -> None:
        """After a response the connection waits for the next request's headers."""
        super().on_response_complete()
        self._sync_phase()

    def send_400_response(self, msg: str) -> None:
        """Answer a malformed request 400 and close, counted (not logged once per request)."""
        super().send_400_response(msg)
        self._guard.report("bad_request", self.client_host)

    def _unsupported_upgrade_warning(self) -> None:
        # The console serves no WebSocket (ws="none"): an Upgrade header is ignored and the
        # request answered as plain HTTP, without two uvicorn warnings per request.
        pass

    def expire(self, reason: CloseReason) -> None:
        """Close this connection now: a deadline passed or it is evicted."""
        self._set_phase(None)
        self._guard.release(self)
        self._admitted = False
        if not self.transport.is_closing():
            # A request in the app sees ``http.disconnect`` on its next receive.
            self.transport.close()
        self._guard.report(reason, self.client_host)

    def _sync_phase(self) -> None:
        phase: Phase | None = None
        if self._admitted and not self.transport.is_closing():
            state = self.conn.their_state
            if state is h11.IDLE:
                phase = "headers"
            elif state is h11.SEND_BODY:
                phase = "body"
        if phase != self._phase:
            self._set_phase(phase)

    def _set_phase(self, phase: Phase | None) -> None:
        # A deadline covers a whole phase: it is set on entry and never pushed back by progress,
        # so a byte every few seconds does not keep a connection alive.
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is None:
            self._guard.set_waiting(self, False)
            return
        limits = self._guard.limits
        if phase == "headers":
            self._deadline = self.loop.call_later(
                limits.header_timeout, self.expire, "header_timeout"
            )
        else:
            self._deadline = self.loop.call_later(limits.body_timeout, self.expire, "body_timeout")
        self._guard.set_waiting(self, True)
