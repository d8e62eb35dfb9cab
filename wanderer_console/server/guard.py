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

The guard works inside uvicorn's protocols: :class:`GuardedHttpToolsProtocol` (``httptools``,
uvicorn's fast C parser, which the server uses when it is installed) follows the parser's
callbacks to know which phase a connection is in, and caps the request line and headers at
``max_header_bytes`` itself (llhttp has no such limit); :class:`GuardedH11Protocol` reads the
phase from h11's state and h11 enforces the cap. Both close and count the same way.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Protocol

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

if TYPE_CHECKING:
    from wanderer_console.config.model import ServerSettings

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _HttpToolsBase

    _HAS_HTTPTOOLS = True
except ImportError:  # pragma: no cover - httptools is a dependency; h11 is the fallback
    # The guarded httptools class still exists (over h11) but is never chosen.
    _HttpToolsBase = H11Protocol  # type: ignore[assignment,misc]
    _HAS_HTTPTOOLS = False

__all__ = [
    "HTTPTOOLS",
    "MAX_HEADER_BYTES",
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "Parser",
    "accept_batch",
    "connection_budget",
    "descriptor_limit",
]

Phase = Literal["headers", "body"]
Parser = Literal["httptools", "h11"]
HTTPTOOLS: Final = _HAS_HTTPTOOLS
"""Whether uvicorn's ``httptools`` protocol can be used (the package is installed)."""
MAX_HEADER_BYTES: Final = 16 * 1024
"""A request line and headers still unfinished past this many bytes are answered 400 and closed
(h11's ``max_incomplete_event_size``; the httptools protocol counts the same)."""
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

    @classmethod
    def of(cls, settings: ServerSettings) -> ConnectionLimits:
        """The ``[server]`` section's limits (the HTTP surface's, and the control listener's)."""
        return cls(
            header_timeout=settings.header_timeout_seconds,
            body_timeout=settings.body_timeout_seconds,
            max_connections=settings.max_connections,
            max_connections_per_client=settings.max_connections_per_client,
        )


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


class _Guarded(Protocol):
    """What the guard needs of a connection (either protocol)."""

    @property
    def client_host(self) -> str: ...

    def expire(self, reason: CloseReason) -> None: ...


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
        self._open: set[_Guarded] = set()
        self._per_client: dict[str, int] = {}
        # Connections waiting on their client, oldest wait first: the eviction order.
        self._waiting: OrderedDict[_Guarded, None] = OrderedDict()

    @property
    def open_connections(self) -> int:
        """Connections currently admitted."""
        return len(self._open)

    def protocol_class(self, parser: Parser = "h11") -> type[asyncio.Protocol]:
        """The uvicorn protocol class bound to this guard (uvicorn builds one per connection)."""
        guard = self
        base: type[GuardedH11Protocol] | type[GuardedHttpToolsProtocol]
        if parser == "httptools":
            if not HTTPTOOLS:
                raise RuntimeError("httptools is not installed (pip install httptools)")
            base = GuardedHttpToolsProtocol
        else:
            base = GuardedH11Protocol

        class _Bound(base):  # type: ignore[valid-type,misc]
            _guard = guard

        return _Bound

    def admit(self, connection: _Guarded) -> CloseReason | None:
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

    def release(self, connection: _Guarded) -> None:
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

    def set_waiting(self, connection: _Guarded, waiting: bool) -> None:
        """Mark a connection as waiting on its client (evictable) from now, or as busy."""
        self._waiting.pop(connection, None)
        if waiting and connection in self._open:
            self._waiting[connection] = None

    def report(self, reason: CloseReason, host: str) -> None:
        """Tell the owner (metrics, log) that a connection was closed or refused."""
        if self._on_close is not None:
            self._on_close(reason, host)


class _Watch:
    """One connection's side of the guard: its admission, phase and deadline.

    Both protocols keep one and tell it what their parser says; the phase logic, the deadlines
    and the reports live here once.
    """

    __slots__ = ("_admitted", "_deadline", "_guard", "_owner", "phase")

    def __init__(self, guard: ConnectionGuard, owner: _Protocol) -> None:
        self._guard = guard
        self._owner = owner
        self.phase: Phase | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._admitted = False

    @property
    def client_host(self) -> str:
        """The peer's address (the per-client key); ``"unknown"`` for a socket without one."""
        client = self._owner.client
        return str(client[0]) if client else "unknown"

    def admit(self) -> bool:
        """Admit the connection, or refuse it at once (the socket is freed immediately)."""
        refusal = self._guard.admit(self)
        transport = self._owner.transport
        if refusal is not None:
            transport.write(_REFUSED)
            transport.close()
            self._guard.report(refusal, self.client_host)
            return False
        self._admitted = True
        return True

    def lost(self) -> None:
        """The connection is gone: drop the deadline and the guard's record."""
        self._set_phase(None)
        self._guard.release(self)
        self._admitted = False

    def bad_request(self) -> None:
        """Count a malformed request (its 400 is written by the protocol)."""
        self._guard.report("bad_request", self.client_host)

    def expire(self, reason: CloseReason) -> None:
        """Close this connection now: a deadline passed or it is evicted."""
        self.lost()
        transport = self._owner.transport
        if not transport.is_closing():
            # A request in the app sees ``http.disconnect`` on its next receive.
            transport.close()
        self._guard.report(reason, self.client_host)

    def follow(self, phase: Phase | None) -> None:
        """The parser says the connection is now in ``phase`` (``None``: busy in the app)."""
        if not self._admitted or self._owner.transport.is_closing():
            phase = None
        if phase != self.phase:
            self._set_phase(phase)

    def _set_phase(self, phase: Phase | None) -> None:
        # A deadline covers a whole phase: it is set on entry and never pushed back by progress,
        # so a byte every few seconds does not keep a connection alive.
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.phase = phase
        if phase is None:
            self._guard.set_waiting(self, False)
            return
        limits = self._guard.limits
        loop = self._owner.loop
        if phase == "headers":
            self._deadline = loop.call_later(limits.header_timeout, self.expire, "header_timeout")
        else:
            self._deadline = loop.call_later(limits.body_timeout, self.expire, "body_timeout")
        self._guard.set_waiting(self, True)


class _Protocol(Protocol):
    """What :class:`_Watch` reads of a uvicorn protocol."""

    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    client: tuple[str, int] | None


class _GuardedConnection(asyncio.Protocol):
    """What both guarded protocols share: admission, release and expiry through their
    :class:`_Watch` (the subclass keeps its parser's phase with ``_sync_phase``). First in the
    bases, before uvicorn's protocol, whose methods ``super()`` reaches."""

    _guard: ClassVar[ConnectionGuard]
    _watch: _Watch

    @property
    def client_host(self) -> str:
        """The peer's address (the per-client key); ``"unknown"`` for a socket without one."""
        return self._watch.client_host

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        """Admit the connection or refuse it at once (the socket is freed immediately)."""
        super().connection_made(transport)
        if self._watch.admit():
            self._sync_phase()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline and the guard's record, then let uvicorn clean up."""
        self._watch.lost()
        super().connection_lost(exc)

    def expire(self, reason: CloseReason) -> None:
        """Close this connection now: a deadline passed or it is evicted."""
        self._watch.expire(reason)

    def _unsupported_upgrade_warning(self) -> None:
        # The console serves no WebSocket (ws="none"): an Upgrade header is ignored and the
        # request answered as plain HTTP, without two uvicorn warnings per request.
        pass

    def _sync_phase(self) -> None:
        raise NotImplementedError


class GuardedH11Protocol(_GuardedConnection, H11Protocol):
    """uvicorn's h11 protocol with a header deadline, a body deadline and admission control.

    h11 itself refuses a request line and headers over ``h11_max_incomplete_event_size``
    (:data:`MAX_HEADER_BYTES`, set by the server).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.logger = http_log
        self._watch = _Watch(self._guard, self)

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
        self._watch.bad_request()

    def _sync_phase(self) -> None:
        state = self.conn.their_state
        phase: Phase | None = None
        if state is h11.IDLE:
            phase = "headers"
        elif state is h11.SEND_BODY:
            phase = "body"
        self._watch.follow(phase)


_INVALID: Final = "Invalid HTTP request received."
"""uvicorn's 400 text for a request its parser refuses (h11 answers an over-long head so)."""


class GuardedHttpToolsProtocol(_GuardedConnection, _HttpToolsBase):
    """uvicorn's httptools protocol with the same deadlines, cap and counts as the h11 one.

    The phase comes from the parser's callbacks: from connecting (or the end of the previous
    response) to ``on_headers_complete`` the client owes its headers, from there to
    ``on_message_complete`` its body, and until the response is written it waits on the app.
    llhttp buffers a head of any size, so the bytes received while the head is incomplete are
    counted here and a head over :data:`MAX_HEADER_BYTES` is answered 400 and closed, as h11
    answers it.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.logger = http_log
        self._watch = _Watch(self._guard, self)
        self._in_message = False
        self._headers_done = False
        self._head_bytes = 0
        self._ended_in_chunk = False

    def data_received(self, data: bytes) -> None:
        """Parse as uvicorn does, cap the head's size, then follow the parser's phase."""
        self._ended_in_chunk = False
        super().data_received(data)
        if self._in_message and not self._headers_done and not self.transport.is_closing():
            # An unfinished head: the whole chunk is head, unless a message ended earlier in
            # it (pipelining), where the head's start is unknown and the chunk is not counted.
            if not self._ended_in_chunk:
                self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self.send_400_response(_INVALID)
                return
        self._sync_phase()

    def on_message_begin(self) -> None:
        """A request starts: its head is owed."""
        super().on_message_begin()
        self._in_message = True
        self._headers_done = False
        self._head_bytes = 0

    def on_headers_complete(self) -> None:
        """The head is in: the body (if any) is owed."""
        self._headers_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The request is in: the connection waits on the app."""
        super().on_message_complete()
        self._in_message = False
        self._ended_in_chunk = True

    def on_response_complete(self) -> None:
        """After a response the connection waits for the next request's headers."""
        super().on_response_complete()
        self._sync_phase()

    def send_400_response(self, msg: str) -> None:
        """Answer a malformed request 400 and close, counted (not logged once per request)."""
        super().send_400_response(msg)
        self._watch.bad_request()
        self._watch.follow(None)

    def _sync_phase(self) -> None:
        phase: Phase | None
        if self._in_message:
            phase = "body" if self._headers_done else "headers"
        elif self.cycle is not None and not self.cycle.response_complete:
            phase = None  # the app has the request
        else:
            phase = "headers"
        self._watch.follow(phase)
