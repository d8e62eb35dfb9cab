"""A lean HTTP/1.1 transport under httpx, for the one client that sends a request per delivered
message: Discord's.

A kill in a popular system notifies every map that watches it, one webhook post each, sent one
after another by the engine's one event loop: the client's CPU per request is what the last map
waits for (issue 17's fan-out). Measured on the benchmark VM, the whole post (chain, transport and
a canned responder on loopback; ``python -m wanderer_console.bench.http_overhead``) cost about
135 µs of CPU with :class:`~wanderer_console.http.aio.AiohttpTransport` at the bottom and about
71 µs with this one; aiohttp's own request path alone was 85 µs against 24 µs for a request
written in one ``transport.write`` and its answer parsed by ``httptools`` (the C parser uvicorn
uses), the responder included in each. aiohttp, httpcore and the other clients build a request
object, a task or two and a stream per request; none offers a lighter path, so this one is
written here, on top of asyncio's transports and httptools, and does only what the console's
Discord client needs:

- requests whose body is bytes (a streamed body is read whole first and sent with a
  ``Content-Length``), responses read whole (a few KiB of JSON; at most :data:`MAX_RESPONSE`);
- connections per (scheme, host, port) kept alive for ``keepalive_seconds``, at most
  ``max_connections`` in all, a request waiting for one at most its ``pool`` timeout;
- TLS with the console's certificate bundle (:func:`~wanderer_console.http.tls.shared_ssl_context`);
- no proxy, no redirects, no cookies, no decompression (httpx decodes ``Content-Encoding``).

Every failure is the httpx error that says what it means for the request, as
:mod:`~wanderer_console.http.aio` does (the outbox tells "retry" from "uncertain" by it):

- nothing was sent: could not connect (``ConnectError``), or no connection within the
  connect or pool timeout (``ConnectTimeout``);
- it may have been sent: no answer within the read timeout (``ReadTimeout``), the connection
  closed before the answer was whole (``RemoteProtocolError``), a reset (``ReadError``), an
  answer that is not HTTP (``RemoteProtocolError``).

A connection is reused only after an answer read to its end that allows it (``keep-alive``);
one whose request was cancelled, timed out or failed is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from typing import Any, Final, cast

import httptools
import httpx

from wanderer_console.http.tls import shared_ssl_context

__all__ = ["MAX_RESPONSE", "H1Transport"]

MAX_RESPONSE: Final = 8 * 2**20
"""Bytes of one answer (reason, headers and body) read at most (Discord's are a few KiB): more
is a ``ReadError``."""
_PORTS: Final = {"http": 80, "https": 443}
_NO_BODY: Final = frozenset({204, 304})
_Key = tuple[str, str, int]


class _Lost(Exception):
    """The connection ended before the answer was whole (``reset``: by an error, not a close)."""

    def __init__(self, message: str, *, reset: bool) -> None:
        super().__init__(message)
        self.reset = reset


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: writes a request, parses its answer (httptools calls back)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.pooled = False
        """Counted in its transport's pool (until discarded)."""
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._size = 0
        self._reason = b""
        self._status = 0
        self._complete = False
        self._keep_alive = False
        self._until_close = False  # the answer's body ends when the server closes
        self._head = False  # the answer has no body, whatever length it says

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass, only alike).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # nothing asked: the server is not speaking HTTP to us
            self._end(_Lost("unexpected bytes from the server between requests", reset=True))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            if self._size > MAX_RESPONSE:  # raised by _count, wrapped by the parser
                self._end(_Lost(f"answer over {MAX_RESPONSE} bytes", reset=True))
            else:
                self._end(_Lost(f"not an HTTP/1.1 answer: {exc}", reset=False))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._until_close and self._waiter is not None and exc is None:
            self._message_done()
            return
        detail = f"connection reset: {exc}" if exc else "connection closed before the answer"
        self._end(_Lost(detail, reset=exc is not None))

    # -- httptools callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request: keep the first, drop the link
            raise _OutOfStep

    def on_status(self, status: bytes) -> None:
        self._count(len(status))
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        # Kept: bytes after this answer would be parsed as the next one's.
        self._status = status = self._parser.get_status_code()
        if status < 200 or status in _NO_BODY:
            return
        if self._head:  # the parser cannot be told; the link is not reused (out of step)
            self._message_done()
            return
        names = {name.lower() for name, _ in self._headers}
        self._until_close = b"content-length" not in names and b"transfer-encoding" not in names

    def on_body(self, body: bytes) -> None:
        if self._complete:  # a body to a HEAD request
            raise _OutOfStep
        self._count(len(body))
        self._body.append(body)

    def _count(self, size: int) -> None:
        """Bound the answer, its head included (the parser sets no limit on headers)."""
        self._size += size
        if self._size > MAX_RESPONSE:
            raise _TooLarge

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:  # 100 Continue and the like: the answer follows
            self._headers, self._reason = [], b""
            return
        # Read here: once the parser has returned, it is reset and says "close" whatever came.
        self._keep_alive = self._parser.should_keep_alive()
        self._message_done()

    # -- the caller's side ------------------------------------------------------------------------

    def send(
        self, data: bytes, loop: asyncio.AbstractEventLoop, *, head: bool = False
    ) -> asyncio.Future[None]:
        """Write one request (``head``: a HEAD request); the future ends when its answer is
        whole (or the link is lost)."""
        assert self.transport is not None
        self._head = head
        self._waiter = waiter = loop.create_future()
        self._headers, self._body, self._size, self._reason, self._status = [], [], 0, b"", 0
        self._complete, self._keep_alive, self._until_close = False, False, False
        self.transport.write(data)
        return waiter

    def answer(self) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        """Status, reason phrase, raw headers and body of the answer just read."""
        return self._status, self._reason, self._headers, b"".join(self._body)

    @property
    def reusable(self) -> bool:
        """Whole answer read, the connection open and kept alive by both sides."""
        return self._complete and self._keep_alive and not self.closed and not self._until_close

    def close(self) -> None:
        """Close now (a request cancelled, timed out or failed: its state is unknown)."""
        self.closed = True
        self._waiter = None
        if self.transport is not None:
            self.transport.close()

    def timed_out(self, waiter: asyncio.Future[None]) -> None:
        """The read timeout of the request ``waiter`` stands for has passed."""
        if not waiter.done():
            waiter.set_exception(_TimedOut())

    def _message_done(self) -> None:
        self._complete = True
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _end(self, failure: _Lost) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)
        if not self.closed:
            self.close()


class _TimedOut(Exception):
    """No whole answer within the request's read timeout."""


class _TooLarge(Exception):
    """Raised from a parser callback: the answer is over :data:`MAX_RESPONSE`."""


class _OutOfStep(Exception):
    """Raised from a parser callback: more than one answer to one request."""


class H1Transport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over pooled asyncio connections (see the module docstring)."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_seconds: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = max(1, max_connections)
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context
        self._idle: dict[_Key, deque[_Connection]] = {}
        self._open = 0
        self._slots: deque[asyncio.Future[None]] = deque()
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and answer with its response, read whole."""
        url = request.url
        port = url.port or _PORTS.get(url.scheme)
        if url.scheme not in _PORTS or port is None or not url.host:
            raise httpx.UnsupportedProtocol(f"cannot send to {url.scheme!r} URLs", request=request)
        timeout: dict[str, Any] = request.extensions.get("timeout") or {}
        data = await self._encode(request)
        key = (url.scheme, url.host, port)
        conn = await self._acquire(key, timeout, request)
        loop = asyncio.get_running_loop()
        answered = conn.send(data, loop, head=request.method == "HEAD")
        seconds = timeout.get("read")
        # A timer on the answer itself, not ``asyncio.timeout`` (its context and the task's
        # cancel and uncancel cost a tenth of the request here).
        timer = None if seconds is None else loop.call_later(seconds, conn.timed_out, answered)
        try:
            await answered
        except _TimedOut:
            self._discard(conn)
            raise httpx.ReadTimeout("no answer within the read timeout", request=request) from None
        except _Lost as exc:
            self._discard(conn)
            kind = httpx.ReadError if exc.reset else httpx.RemoteProtocolError
            raise kind(str(exc), request=request) from None
        except BaseException:
            self._discard(conn)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        status, reason, headers, content = conn.answer()
        if conn.reusable:
            self._release(key, conn)
        else:
            self._discard(conn)
        response = httpx.Response(
            status_code=status,
            headers=headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )
        if not any(name.lower() == b"content-encoding" for name, _ in headers):
            # Nothing to decode: the body is the content, already read (as aio.py does).
            response._content = content
            response.is_stream_consumed = True
            response.is_closed = True
        return response

    async def _encode(self, request: httpx.Request) -> bytes:
        """The request's bytes: request line, headers, body (a streamed body read whole and
        sent with its length)."""
        if isinstance(request.stream, httpx.ByteStream):
            body = request.content
            headers = request.headers.raw
        else:
            body = await request.aread()
            headers = [
                (name, value)
                for name, value in request.headers.raw
                if name.lower() not in (b"transfer-encoding", b"content-length")
            ]
            headers.append((b"Content-Length", str(len(body)).encode()))
        lines = [b"%s %s HTTP/1.1\r\n" % (request.method.encode(), request.url.raw_path)]
        lines += [b"%s: %s\r\n" % header for header in headers]
        lines.append(b"\r\n")
        lines.append(body)
        return b"".join(lines)

    # -- the pool ---------------------------------------------------------------------------------

    async def _acquire(
        self, key: _Key, timeout: dict[str, Any], request: httpx.Request
    ) -> _Connection:
        """A kept-alive connection to ``key``, else a new one once the pool has room (an idle
        connection to another host is closed to make it), waiting at most the ``pool``
        timeout."""
        conn = self._idle_to(key)
        if conn is not None:
            return conn
        if self._open >= self._limit:
            try:
                async with asyncio.timeout(timeout.get("pool")):
                    while (conn := self._idle_to(key)) is None and self._open >= self._limit:
                        if not self._close_one_idle():
                            await self._room()
            except TimeoutError:
                raise httpx.ConnectTimeout(
                    "no free connection within the pool timeout", request=request
                ) from None
            if conn is not None:
                return conn
        self._open += 1
        try:
            conn = await self._connect(key, timeout.get("connect"), request)
        except BaseException:
            self._open -= 1
            self._wake_one()
            raise
        conn.pooled = True
        return conn

    def _idle_to(self, key: _Key) -> _Connection | None:
        """The most recently used idle connection to ``key`` still open and fresh."""
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            # Closing: the server's end of stream is read, its loss not yet handled.
            closing = conn.transport is None or conn.transport.is_closing()
            if not (conn.closed or closing) and now - conn.idle_since < self._keepalive:
                return conn
            self._discard(conn)
        return None

    def _close_one_idle(self) -> bool:
        """Close the oldest idle connection of any host (the pool is full); False: none."""
        for idle in self._idle.values():
            if idle:
                self._discard(idle.popleft())
                return True
        return False

    async def _room(self) -> None:
        """Wait until a connection is released or closed.

        A waiter woken but cancelled (or timed out) before it ran passes the wake to the next
        in line: each release wakes one, so a wake dropped leaves the room unused and the
        others waiting for it."""
        slot = asyncio.get_running_loop().create_future()
        self._slots.append(slot)
        try:
            await slot
        except BaseException:
            if slot.done() and not slot.cancelled():
                self._wake_one()
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._slots.remove(slot)

    async def _connect(
        self, key: _Key, seconds: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = key
        tls = (self._ssl or shared_ssl_context()) if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(seconds):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"could not connect to {host}:{port} within the connect timeout", request=request
            ) from None
        except OSError as exc:
            raise httpx.ConnectError(
                f"could not connect to {host}:{port}: {exc}", request=request
            ) from None
        return conn

    def _release(self, key: _Key, conn: _Connection) -> None:
        """Keep ``conn`` for the next request to its host (or close it when closing)."""
        if self._closed:
            self._discard(conn)
            return
        conn.idle_since = time.monotonic()
        self._idle.setdefault(key, deque()).append(conn)
        self._wake_one()

    def _discard(self, conn: _Connection) -> None:
        """Close ``conn`` and free its place in the pool (once)."""
        conn.close()
        if conn.pooled:
            conn.pooled = False
            self._open -= 1
            self._wake_one()

    def _wake_one(self) -> None:
        for slot in self._slots:
            if not slot.done():
                slot.set_result(None)
                return

    async def aclose(self) -> None:
        """Close every kept-alive connection (those in use close when their request ends)."""
        self._closed = True
        for idle in self._idle.values():
            while idle:
                self._discard(idle.popleft())
        self._idle.clear()
        await asyncio.sleep(0)  # let the transports finish closing before the loop may end
