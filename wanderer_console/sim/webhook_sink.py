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

Each post is stamped (``time.time()``) when its request is whole: parsed by ``httptools``, the C
parser uvicorn uses, in an ``asyncio.Protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    query: bytes


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


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed as they come, each answered at once."""

    def __init__(self, sink: WebhookSink) -> None:
        self._sink = sink
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._sink._open.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._sink._open.discard(self._transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            assert self._transport is not None
            self._transport.write(_answer(b"400 Bad Request", b"{}", keep_alive=False))
            self._transport.close()

    # httptools' callbacks
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        at = time.time()
        url, self._url = self._url, b""
        body = b"".join(self._body)
        self._body.clear()
        keep_alive = self._parser.should_keep_alive()
        answer = self._sink._take(self._parser.get_method(), url, body, at, keep_alive)
        assert self._transport is not None
        self._transport.write(answer)
        if not keep_alive:
            self._transport.close()


class WebhookSink:
    """Takes webhook posts on 127.0.0.1 and keeps them (see the module docstring); ``start``,
    ``stop`` and ``url`` as :class:`~wanderer_console.sim.server.AppServer`'s."""

    def __init__(self, *, host: str = "127.0.0.1") -> None:
        self._host = host
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.Transport] = set()
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
        if self._server is None:
            raise RuntimeError("the sink is not started")
        port = self._server.sockets[0].getsockname()[1]
        return f"http://{self._host}:{port}"

    async def start(self) -> None:
        """Listen on a free port."""
        if self._server is None:
            loop = asyncio.get_running_loop()
            self._server = await loop.create_server(lambda: _Connection(self), self._host, 0)

    async def stop(self) -> None:
        """Stop listening and close every connection (safe twice)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for transport in list(self._open):
            transport.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 5.0)

    # -- webhooks ----------------------------------------------------------------------------

    def register_webhook(self, webhook_id: str | int, token: str) -> None:
        """Accept posts to ``webhook_id`` with ``token`` (others: 404; a wrong token: 401)."""
        key = str(webhook_id)
        self._tokens[key] = token
        self._channels[key] = str(_CHANNEL_BASE + len(self._channels))

    def _take(self, method: bytes, url: bytes, body: bytes, at: float, keep_alive: bool) -> bytes:
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
        self.posts.append(Post(webhook_id, body, at, query))
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
