"""The transports under httpx for the Discord client, aiohttp's and the console's lean HTTP/1.1
one (Discord's): the same answers as httpx's own transport, kept alive connections, and every
failure saying whether the request may have been sent, so the outbox keeps telling "retry" from
"uncertain" (real sockets on 127.0.0.1). Each test runs over both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiohttp
import httpx
import pytest

from tests.support import read_http_request
from wanderer_console.delivery.discord import DiscordSender, Outcome
from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.http.aio import AiohttpTransport, map_error
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.http.factory import build_client
from wanderer_console.http.h1 import H1Transport
from wanderer_console.http.middleware import network_transport
from wanderer_console.http.settings import settings_for
from wanderer_console.http.split import SplitTransport
from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
BODY = {"embeds": [{"title": "kill"}]}


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A TCP server on 127.0.0.1 running ``handler`` per connection; yields its URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


KINDS = ("aiohttp", "h1")


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The transport under test: ``aiohttp`` or ``h1``."""
    return str(request.param)


def _transport(kind: str, **options: int) -> httpx.AsyncBaseTransport:
    return AiohttpTransport(**options) if kind == "aiohttp" else H1Transport(**options)


def _discord_client(kind: str, **overrides: object) -> HttpClient:
    settings = settings_for("discord").model_copy(
        update={"retry_attempts": 1, "transport": kind, **overrides}
    )
    return build_client("discord", settings, metrics=Metrics())


def test_discord_goes_through_h1_and_the_other_services_through_httpcore() -> None:
    discord = network_transport(settings_for("discord"))
    assert isinstance(discord, H1Transport)
    assert isinstance(
        network_transport(settings_for("discord").model_copy(update={"transport": "aiohttp"})),
        AiohttpTransport,
    )
    assert settings_for("discord").keepalive_seconds == 30.0
    for service in ("esi", "map"):
        split = network_transport(settings_for(service))
        assert isinstance(split, SplitTransport)  # streams pooled apart (test_map_pool.py)
        assert isinstance(split.streams, httpx.AsyncHTTPTransport)
        assert isinstance(split.requests, httpx.AsyncHTTPTransport)


async def test_a_webhook_post_is_confirmed_as_through_httpx_own_transport(kind: str) -> None:
    discord = FakeDiscord(webhook_limit=100)
    async with AppServer(discord.app) as server:
        settings = settings_for("discord").model_copy(update={"transport": kind})
        http = build_client("discord", settings, metrics=Metrics())
        sender = DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="test")
        target = Target(TargetKind.WEBHOOK, webhook_url(server.url, 1), "t")
        threaded = Target(TargetKind.WEBHOOK, webhook_url(server.url, 1) + "?thread_id=7", "t")
        try:
            sent = await sender.send(target, BODY)
            in_thread = await sender.send(threaded, BODY)
            response = await http.post(webhook_url(server.url, 1), json=BODY)
        finally:
            await http.aclose()
    assert sent.outcome is Outcome.SENT
    assert sent.channel_id
    assert sent.bucket_remaining is not None  # X-RateLimit-* read through the transport
    assert in_thread.outcome is Outcome.SENT
    assert [m.query for m in discord.received[:2]] == [
        {"wait": "true"},
        {"thread_id": "7", "wait": "true"},
    ]
    assert response.status == 204  # without wait: no body
    assert discord.received[0].headers["content-type"] == "application/json"
    assert discord.received[0].headers["user-agent"]


async def test_connections_are_kept_alive_between_requests(kind: str) -> None:
    connections = 0

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await read_http_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
        writer.close()

    async with raw_server(handler) as url:
        http = _discord_client(kind)
        try:
            answers = [await http.post(f"{url}/x", json=BODY) for _ in range(3)]
        finally:
            await http.aclose()
    assert [a.content for a in answers] == [b"ok"] * 3
    assert connections == 1


async def test_a_refused_connection_was_not_sent_and_the_outbox_retries(kind: str) -> None:
    async with raw_server(lambda r, w: asyncio.sleep(0)) as url:
        pass  # closed: nothing listens there now
    http = _discord_client(kind)
    try:
        with pytest.raises(TransportError) as caught:
            await http.post(f"{url}/x", json=BODY)
        sender = DiscordSender(http, api_url=url, user_agent="t")
        result = await sender.send(Target(TargetKind.WEBHOOK, f"{url}/api/webhooks/1/t", "t"), BODY)
    finally:
        await http.aclose()
    assert caught.value.kind == "connect"
    assert not caught.value.maybe_sent
    assert result.outcome is Outcome.RETRY


async def test_a_server_that_drops_the_connection_after_the_request_may_have_posted_it(
    kind: str,
) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_http_request(reader)
        writer.close()  # read it (and maybe posted it), then gone without an answer

    async with raw_server(handler) as url:
        http = _discord_client(kind)
        try:
            with pytest.raises(TransportError) as caught:
                await http.post(f"{url}/x", json=BODY)
            sender = DiscordSender(http, api_url=url, user_agent="t")
            target = Target(TargetKind.WEBHOOK, f"{url}/api/webhooks/1/t", "t")
            result = await sender.send(target, BODY)
        finally:
            await http.aclose()
    assert caught.value.kind == "read"
    assert caught.value.maybe_sent
    assert result.outcome is Outcome.UNCERTAIN  # re-sent only as the same message, counted


async def test_no_answer_in_time_is_a_read_timeout_that_may_have_been_sent(kind: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_http_request(reader)
        await asyncio.sleep(5)

    async with raw_server(handler) as url:
        http = _discord_client(kind, timeout_seconds=0.3)
        try:
            with pytest.raises(TransportError) as caught:
                await http.post(f"{url}/x", json=BODY)
        finally:
            await http.aclose()
    assert caught.value.kind == "timeout"
    assert caught.value.maybe_sent


async def test_waiting_for_a_free_connection_too_long_was_not_sent(kind: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_http_request(reader)
        await asyncio.sleep(5)

    async with raw_server(handler) as url:
        settings = settings_for("discord").model_copy(
            update={"retry_attempts": 1, "timeout_seconds": 0.3, "breaker_failures": 10}
        )
        http = build_client(
            "discord", settings, metrics=Metrics(), transport=_transport(kind, max_connections=1)
        )
        try:
            first = asyncio.create_task(http.post(f"{url}/a", json=BODY, timeout=3.0))
            await asyncio.sleep(0.05)  # the only connection is taken
            with pytest.raises(TransportError) as caught:
                await http.post(f"{url}/b", json=BODY)
            with pytest.raises(TransportError):
                await first
        finally:
            await http.aclose()
    assert caught.value.kind == "timeout"
    assert not caught.value.maybe_sent


async def test_a_body_cut_short_is_a_read_error(kind: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_http_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten b")
        await writer.drain()
        writer.close()

    async with raw_server(handler) as url:
        http = _discord_client(kind)
        try:
            with pytest.raises(TransportError) as caught:
                await http.post(f"{url}/x", json=BODY)
        finally:
            await http.aclose()
    assert caught.value.kind == "read"
    assert caught.value.maybe_sent


async def test_a_streamed_request_body_is_sent_whole(kind: str) -> None:
    """aiohttp frames a streamed body (chunked); the lean transport reads it whole first and
    sends it with its length. Either way the server gets all of it."""
    received: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if kind == "aiohttp":
            head = await reader.readuntil(b"\r\n\r\n")
            received.append(head + await reader.readuntil(b"0\r\n\r\n"))
        else:
            received.append(await read_http_request(reader))
        writer.write(b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def parts() -> AsyncIterator[bytes]:
        yield b"one,"
        yield b"two"

    async with raw_server(handler) as url, httpx.AsyncClient(transport=_transport(kind)) as client:
        response = await client.post(f"{url}/upload", content=parts())
    assert response.status_code == 201
    assert response.reason_phrase == "Created"
    framing = b"transfer-encoding: chunked" if kind == "aiohttp" else b"content-length: 7\r\n"
    assert framing in received[0].lower()
    assert received[0].endswith(b"one,two") if kind == "h1" else b"two" in received[0]


def test_every_aiohttp_failure_maps_to_what_it_says_about_the_request() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/x")
    cases: list[tuple[BaseException, type[httpx.TransportError]]] = [
        (aiohttp.ConnectionTimeoutError("pool"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (TimeoutError(), httpx.ReadTimeout),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.ReadError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
        (aiohttp.InvalidURL("nope"), httpx.UnsupportedProtocol),
    ]
    for raised, expected in cases:
        mapped = map_error(raised, request)
        assert type(mapped) is expected, raised
        assert mapped.request is request
    assert str(map_error(aiohttp.ServerDisconnectedError()))  # a message even without one


async def test_closing_an_unused_transport_is_harmless(kind: str) -> None:
    transport = _transport(kind)
    await transport.aclose()
    await transport.aclose()
