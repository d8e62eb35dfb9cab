"""The benchmarks' webhook sink, posted to by the engine's own Discord sender over a real socket."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from tests.support import wait_for
from wanderer_console.delivery.discord import DiscordSender, Outcome
from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import resolve_settings
from wanderer_console.sim.discord import webhook_url
from wanderer_console.sim.fleet import MapFleet
from wanderer_console.sim.webhook_sink import WebhookSink
from wanderer_console.telemetry.metrics import Metrics


@pytest.fixture
async def sink() -> AsyncIterator[WebhookSink]:
    served = WebhookSink()
    served.register_webhook(7, "tok-7")
    await served.start()
    try:
        yield served
    finally:
        await served.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    # The engine's Discord client: its chain and its own HTTP/1.1 transport.
    client = build_client("discord", resolve_settings("discord", None), metrics=Metrics())
    try:
        yield client
    finally:
        await client.aclose()


def _kill(title: str) -> dict[str, object]:
    return {
        "username": "Wanderer",
        "embeds": [{"title": title, "footer": {"text": "Killmail ID: 42 • map"}}],
    }


async def test_a_post_is_answered_as_discord_answers_wait_true(
    sink: WebhookSink, http: HttpClient
) -> None:
    sender = DiscordSender(http, api_url=f"{sink.url}/api/v10", user_agent="test")
    target = Target(TargetKind.WEBHOOK, webhook_url(sink.url, 7, "tok-7"), "m1")
    before = time.time()
    first = await sender.send(target, orjson.dumps(_kill("one")))
    second = await sender.send(target, _kill("two"))
    assert (first.outcome, second.outcome) == (Outcome.SENT, Outcome.SENT)
    assert first.message_id
    assert second.message_id
    assert int(second.message_id) > int(first.message_id)  # snowflakes grow
    assert first.channel_id == second.channel_id
    assert first.bucket_remaining is not None
    assert first.bucket_remaining > 10**8
    received = sink.received
    assert [m.body["embeds"][0]["title"] for m in received] == ["one", "two"]
    assert all(m.target == "webhook:7" and m.query == {"wait": "true"} for m in received)
    assert before <= received[0].at <= received[1].at <= time.time()
    assert [n.killmail_id for m in received for n in m.notifications] == [42, 42]
    assert sink.count(b"Killmail ID: ") == 2
    assert sink.invalid == 0


async def test_the_answer_echoes_the_posted_message(sink: WebhookSink) -> None:
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            webhook_url(sink.url, 7, "tok-7") + "?wait=true",
            content=orjson.dumps(_kill("echoed")),
            headers={"content-type": "application/json"},
        )
    assert answer.status_code == 200
    message = answer.json()
    assert message["webhook_id"] == "7"
    assert message["embeds"][0]["title"] == "echoed"
    assert message["username"] == "Wanderer"
    assert answer.headers["x-ratelimit-bucket"] == "sink"


async def test_unknown_webhooks_and_wrong_tokens_get_discords_answers(
    sink: WebhookSink, http: HttpClient
) -> None:
    sender = DiscordSender(http, api_url=f"{sink.url}/api/v10", user_agent="test")
    unknown = Target(TargetKind.WEBHOOK, webhook_url(sink.url, 8, "tok-8"), "m1")
    wrong = Target(TargetKind.WEBHOOK, webhook_url(sink.url, 7, "nope"), "m1")
    gone, refused = await sender.send(unknown, _kill("x")), await sender.send(wrong, _kill("x"))
    assert (gone.outcome, gone.status) == (Outcome.DEAD_TARGET, 404)
    assert (refused.outcome, refused.status) == (Outcome.DEAD_TARGET, 401)
    assert "Unknown Webhook" in (gone.detail or "")
    assert sink.posts == []
    assert sink.requests == 2


async def test_a_body_discord_would_refuse_is_counted_not_received(
    sink: WebhookSink, http: HttpClient
) -> None:
    sender = DiscordSender(http, api_url=f"{sink.url}/api/v10", user_agent="test")
    target = Target(TargetKind.WEBHOOK, webhook_url(sink.url, 7, "tok-7"), "m1")
    too_long = {"embeds": [{"title": "x" * 300}]}  # Discord: titles up to 256
    assert (await sender.send(target, too_long)).outcome is Outcome.SENT  # checked later
    await sender.send(target, _kill("fine"))
    assert [m.body["embeds"][0]["title"] for m in sink.received] == ["fine"]
    assert sink.invalid == 1
    assert len(sink.received) == 1
    assert sink.invalid == 1
    sink.clear()
    assert (sink.posts, sink.received, sink.count(b"Killmail"), sink.invalid) == ([], [], 0, 0)


async def test_pipelined_requests_on_one_connection_are_answered_in_order(
    sink: WebhookSink,
) -> None:
    host, port = sink.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    body = orjson.dumps(_kill("p"))
    request = (
        b"POST /api/webhooks/7/tok-7?wait=true HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    writer.write(request * 3)  # three requests in one write
    statuses = []
    for _ in range(3):
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        statuses.append(head.split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
    writer.close()
    assert statuses == [b"200"] * 3
    assert len(sink.posts) == 3


def _post_request(title: str, *, close: bool = False) -> bytes:
    body = orjson.dumps(_kill(title))
    connection = b"Connection: close\r\n" if close else b""
    return (
        b"POST /api/webhooks/7/tok-7?wait=true HTTP/1.1\r\nHost: x\r\n%s"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (connection, len(body), body)
    )


async def test_a_post_is_stamped_when_it_arrived_not_when_the_busy_loop_read_it(
    sink: WebhookSink,
) -> None:
    """The sink shares its loop with the fleet: a post that arrives while the loop is busy
    elsewhere keeps the kernel's receive time, and the wait is counted as the sink's delay."""
    host, port = sink.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as client:
        sent = time.time()
        client.sendall(_post_request("stamped"))
        time.sleep(0.15)  # noqa: ASYNC251  # the loop held on purpose: nothing reads the post
        await wait_for(lambda: sink.posts, 5.0, "the post taken")
        client.settimeout(5.0)
        assert client.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
    (post,) = sink.posts
    assert sent <= post.at < sent + 0.05
    assert post.read_at >= sent + 0.15
    assert sink.read_delays() == [post.read_at - post.at]
    assert sink.read_delays()[0] > 0.1


async def test_a_request_asking_to_close_is_answered_then_closed(sink: WebhookSink) -> None:
    host, port = sink.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(_post_request("last", close=True))
    answer = await asyncio.wait_for(reader.read(), 5.0)  # to the end: the sink closed it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close\r\n" in answer
    assert [m.body["embeds"][0]["title"] for m in sink.received] == ["last"]


async def test_a_request_that_is_not_http_is_answered_400_then_closed(sink: WebhookSink) -> None:
    host, port = sink.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"\x00\x01 not http at all\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 5.0)  # to the end: the sink closed it
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert sink.posts == []


async def test_the_fleet_posts_to_the_sink_unless_asked_for_the_full_fake() -> None:
    assert isinstance(MapFleet(2, seed=3).discord, WebhookSink)
    assert not isinstance(MapFleet(2, seed=3, full_discord=True).discord, WebhookSink)
