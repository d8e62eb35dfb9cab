"""Discord's execute-webhook endpoint alone, for the benchmarks that post hundreds of messages at
once (``bench --only scale``, ``bench.fanout``): it takes a post for far less CPU than
:class:`~wanderer_console.sim.discord.FakeDiscord`.

Why it exists: a kill notifying 229 maps is 229 webhook posts in about 50 ms, and the benchmark
times each from the kill's push to the moment the fake Discord took it. ``FakeDiscord`` (uvicorn,
Starlette's routing and request objects, the body parsed and checked against Discord's rules, the
answer built as a dict and encoded) costs about 0.16 ms of the benchmark process's CPU per post,
measured in ``bench.fanout`` at 1,000 maps: as much as the engine's own work per delivery. The
posts queued in the fake, and its queue was timed as the engine's latency. Discord answers
thousands of callers at once; its time per post is not the console's to measure.

What it keeps: the posts are real HTTP/1.1 on a real socket (the engine's own client, pool and
keep-alive), answered as Discord answers ``?wait=true`` (``200`` with the message object: an
``id``, the ``channel_id`` and the posted fields echoed back, with ``X-RateLimit-*`` headers of a
bucket that never runs out); an unknown webhook or a wrong token gets Discord's ``404`` or
``401``. What it defers: each body is parsed and checked against Discord's rules
(:func:`~wanderer_console.sim.discord_rules.validate_message`) when :attr:`WebhookSink.received`
is read, after the run, not while the engine waits for the answer; a body Discord would refuse
is counted in :attr:`WebhookSink.invalid` (a benchmark fails on it) and left out of ``received``.

Each post is stamped with the moment its request was whole at this end of the socket: the
kernel's receive time of the read that completed it (``SO_TIMESTAMPNS``, wall clock), not the
moment this process's loop got round to reading it. The sink shares its process and its loop
with the fleet (a thousand map streams, the killstream, the mix's driver); a post that arrived
while that loop was busy elsewhere (stalls of 2-22 ms, 112 times in a 30-second mix at 1,000
maps) was stamped late, and the wait counted as the engine's. Where the kernel gives no stamp the
read's own time stands in. :meth:`WebhookSink.read_delays` keeps, per post, how long after its
stamp the loop read it: what the old stamp added. Requests are parsed by ``httptools`` (the C
parser uvicorn uses) from non-blocking sockets the loop watches (``add_reader``): asyncio's
transports read with ``recv`` and drop the kernel's stamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qsl

import httptools
import orjson

from wanderer_console.sim.discord import ReceivedMessage
from wanderer_console.sim.discord_rules import next_snowflake, validate_message
from wanderer_console.sim.summary import notifications_in

__all__ = ["Post", "WebhookSink"]

_PREFIXES: Final = (b"/api/v10/webhooks/", b"/api/webhooks/")
_CHANNEL_BASE: Final = 800_000_000_000_000_000
_LIMIT_HEADERS: Final = (
    b"X-RateLimit-Limit: 1000000000\r\n"
    b"X-RateLimit-Remaining: 999999999\r\n"
    b"X-RateLimit-Reset-After: 1.000\r\n"
    b"X-RateLimit-Bucket: sink\r\n"
)


@dataclass(frozen=True, slots=True)
class Post:
    """One post as it arrived: its webhook, its body as sent, when it was whole."""

    webhook_id: str
    body: bytes
    at: float
    """When the request was whole here (the kernel's receive stamp; see the module docstring)."""
    query: bytes
    read_at: float
    """When this process read it (``time.time()``): ``read_at - at`` is the sink's own delay."""


def _answer(status: bytes, body: bytes, *, keep_alive: bool) -> bytes:
    head = (
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: application/json\r\n" + _LIMIT_HEADERS + b"Content-Length: "
        b"%d\r\n" % len(body)
    )
    if not keep_alive:
        head += b"Connection: close\r\n"
    return head + b"\r\n" + body


_UNKNOWN: Final = orjson.dumps({"message": "Unknown Webhook", "code": 10015})
_BAD_TOKEN: Final = orjson.dumps({"message": "Invalid Webhook Token", "code": 50027})
_NOT_FOUND: Final = orjson.dumps({"message": "404: Not Found", "code": 0})


_SO_TIMESTAMPNS: Final = 35
"""Linux's ``SO_TIMESTAMPNS`` (= ``SCM_TIMESTAMPNS``), which the socket module does not name:
each read carries the receive time of its data as a ``struct timespec``."""
_STAMP: Final = struct.Struct("@qq")
_STAMPED: Final = sys.platform == "linux"
_READ_SIZE: Final = 65536
_ACCEPT_PAUSE: Final = 1.0
"""Seconds without accepting after an accept failed (out of descriptors), as asyncio's servers."""


def _stamp_of(ancillary: list[tuple[int, int, bytes]]) -> float | None:
    """The kernel's receive time in a read's ancillary data (``None``: none there)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= _STAMP.size:
            seconds, nanoseconds = _STAMP.unpack_from(data)
            return float(seconds + nanoseconds / 1e9)
    return None


class _Connection:
    """One client connection: requests parsed as they come, each answered at once."""

    def __init__(self, sink: WebhookSink, sock: socket.socket) -> None:
        self._sink = sink
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._body: list[bytes] = []
        self._stamp = 0.0
        self._read_at = 0.0
        self._unsent = b""
        self._closing = False
        """The answer said ``Connection: close``: closed once it is all out."""
        self._closed = False
        self._loop.add_reader(sock, self._readable)

    def _readable(self) -> None:
        try:
            data, ancillary, _flags, _address = self._sock.recvmsg(
                _READ_SIZE, socket.CMSG_SPACE(_STAMP.size)
            )
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        if self._closing:
            return  # past a request answered with Connection: close
        self._read_at = time.time()
        stamp = _stamp_of(ancillary)
        self._stamp = self._read_at if stamp is None else stamp
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(_answer(b"400 Bad Request", b"{}", keep_alive=False))
            self._close_when_sent()

    def _send(self, data: bytes) -> None:
        """Write ``data`` after what is still unsent (the rest when the socket has room)."""
        if self._closed:
            return
        if self._unsent:
            self._unsent += data
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.close()
            return
        if sent < len(data):
            self._unsent = data[sent:]
            self._loop.add_writer(self._sock, self._writable)

    def _writable(self) -> None:
        try:
            sent = self._sock.send(self._unsent)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        self._unsent = self._unsent[sent:]
        if not self._unsent:
            self._loop.remove_writer(self._sock)
            if self._closing:
                self.close()

    def close(self) -> None:
        """Stop watching the socket and close it (safe twice)."""
        if self._closed:
            return
        self._closed = True
        self._sink._open.discard(self)
        self._loop.remove_reader(self._sock)
        self._loop.remove_writer(self._sock)
        self._sock.close()

    # httptools' callbacks
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        url, self._url = self._url, b""
        body = b"".join(self._body)
        self._body.clear()
        keep_alive = self._parser.should_keep_alive()
        method = self._parser.get_method()
        self._send(self._sink._take(method, url, body, self._stamp, keep_alive, self._read_at))
        if not keep_alive:
            self._close_when_sent()

    def _close_when_sent(self) -> None:
        if self._unsent:
            self._closing = True
        else:
            self.close()


class WebhookSink:
    """Takes webhook posts on 127.0.0.1 and keeps them (see the module docstring); ``start``,
    ``stop`` and ``url`` as :class:`~wanderer_console.sim.server.AppServer`'s."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._listener: socket.socket | None = None
        self._open: set[_Connection] = set()
        self._tokens: dict[str, str] = {}
        self._channels: dict[str, str] = {}
        self._last_snowflake = 0
        self.posts: list[Post] = []
        """Every post taken, in arrival order (until :meth:`clear`)."""
        self.requests = 0
        """Requests answered, refused ones included."""
        self.invalid = 0
        """Posts Discord would have refused (400), counted as :attr:`received` reads them
        (since the last :meth:`clear`)."""
        self._parsed: list[ReceivedMessage] = []
        self._read = 0
        self._counted: dict[bytes, tuple[int, int]] = {}

    # -- serving -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (once started)."""
        if self._listener is None:
            raise RuntimeError("the sink is not started")
        port = self._listener.getsockname()[1]
        return f"http://{self._host}:{port}"

    async def start(self) -> None:
        """Listen on a free port."""
        if self._listener is None:
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if _STAMPED:
                # On the listener: each connection inherits it from its first byte, even one
                # that arrives before the loop accepts the connection.
                with contextlib.suppress(OSError):
                    listener.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            listener.bind((self._host, 0))
            listener.listen(1024)
            listener.setblocking(False)
            asyncio.get_running_loop().add_reader(listener, self._accept)
            self._listener = listener

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                sock, _address = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # Out of descriptors or the like: the client waits in the backlog; accepting
                # again at once would spin on a listener that stays readable.
                loop = asyncio.get_running_loop()
                loop.remove_reader(self._listener)
                loop.call_later(_ACCEPT_PAUSE, self._resume_accepting, self._listener)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._open.add(_Connection(self, sock))

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener is self._listener:  # not stopped meanwhile
            asyncio.get_running_loop().add_reader(listener, self._accept)

    async def stop(self) -> None:
        """Stop listening and close every connection (safe twice)."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        asyncio.get_running_loop().remove_reader(listener)
        listener.close()
        for connection in list(self._open):
            connection.close()

    def read_delays(self) -> list[float]:
        """Per post taken (since :meth:`clear`), seconds between its stamp and its read by this
        process: what stamping at the read would have added to each latency."""
        return [post.read_at - post.at for post in self.posts]

    # -- webhooks ----------------------------------------------------------------------------

    def register_webhook(self, webhook_id: str | int, token: str) -> None:
        """Accept posts to ``webhook_id`` with ``token`` (others: 404; a wrong token: 401)."""
        key = str(webhook_id)
        self._tokens[key] = token
        self._channels[key] = str(_CHANNEL_BASE + len(self._channels))

    def _take(
        self, method: bytes, url: bytes, body: bytes, at: float, keep_alive: bool, read_at: float
    ) -> bytes:
        self.requests += 1
        path, _, query = url.partition(b"?")
        prefix = next((p for p in _PREFIXES if path.startswith(p)), None)
        if method != b"POST" or prefix is None:
            return _answer(b"404 Not Found", _NOT_FOUND, keep_alive=keep_alive)
        webhook_id, _, token = path[len(prefix) :].decode("latin-1").partition("/")
        expected = self._tokens.get(webhook_id)
        if expected is None:
            return _answer(b"404 Not Found", _UNKNOWN, keep_alive=keep_alive)
        if token != expected:
            return _answer(b"401 Unauthorized", _BAD_TOKEN, keep_alive=keep_alive)
        self.posts.append(Post(webhook_id, body, at, query, read_at))
        snowflake = self._last_snowflake = next_snowflake(int(at * 1000), self._last_snowflake)
        head = b'{"id":"%d","channel_id":"%s","webhook_id":"%s","type":0' % (
            snowflake,
            self._channels[webhook_id].encode(),
            webhook_id.encode(),
        )
        # The posted fields echoed back, as Discord's message object carries them (an object
        # body: its opening brace replaced by the head's fields; anything else is checked when
        # read, and answered with the head alone).
        stripped = body.lstrip()
        if stripped.startswith(b"{") and stripped[1:].lstrip()[:1] not in (b"}", b""):
            answer = head + b"," + stripped[1:]
        else:
            answer = head + b"}"
        return _answer(b"200 OK", answer, keep_alive=keep_alive)

    # -- what arrived ------------------------------------------------------------------------

    @property
    def received(self) -> list[ReceivedMessage]:
        """The posts taken, parsed and checked (those Discord would accept), in arrival order;
        parsed once each, when first read."""
        for post in self.posts[self._read :]:
            try:
                body = orjson.loads(post.body)
            except orjson.JSONDecodeError:
                body = None
            if validate_message(body, webhook=True) is not None or not isinstance(body, dict):
                self.invalid += 1
                continue
            target = f"webhook:{post.webhook_id}"
            self._parsed.append(
                ReceivedMessage(
                    target=target,
                    body=body,
                    headers={},
                    at=post.at,
                    channel_id=self._channels[post.webhook_id],
                    query=dict(parse_qsl(post.query.decode("latin-1"))),
                    notifications=notifications_in(target, body),
                )
            )
        self._read = len(self.posts)
        return self._parsed

    def count(self, marker: bytes) -> int:
        """How many times ``marker`` occurs in the bodies taken (counted once per post, as it
        is first asked: no parse, a few microseconds a post)."""
        upto, seen = self._counted.get(marker, (0, 0))
        seen += sum(post.body.count(marker) for post in self.posts[upto:])
        self._counted[marker] = (len(self.posts), seen)
        return seen

    def clear(self) -> None:
        """Forget every post, and the invalid ones counted (the next :attr:`received` starts
        here)."""
        self.posts.clear()
        self._parsed.clear()
        self._counted.clear()
        self._read = 0
        self.invalid = 0
