"""The client's direct lane (a request built without ``AsyncClient.request`` and sent straight
down the middleware chain) builds the request httpx would have built, carries nothing from one
request into the next, re-sends the same bytes on a retry, and the aiohttp transport's responses
read, decode and count as httpx's own (real sockets on 127.0.0.1 where a server is involved)."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest

from wanderer_console.delivery.discord import DiscordSender, Outcome
from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import settings_for
from wanderer_console.telemetry.metrics import Metrics

TOKEN = "s3cr3t-webhook-token-0123456789"


class Recorder(httpx.AsyncBaseTransport):
    """The bottom of the chain: records each request and answers from a script."""

    def __init__(self, *statuses: int) -> None:
        self.requests: list[httpx.Request] = []
        self._statuses = list(statuses)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record and answer."""
        self.requests.append(request)
        status = self._statuses.pop(0) if self._statuses else 200
        return httpx.Response(status, content=b'{"id": "1"}', request=request)


def _client(recorder: Recorder, **headers: str) -> HttpClient:
    settings = settings_for("discord").model_copy(update={"rate_per_second": 0})
    return build_client(
        "discord", settings, metrics=Metrics(), headers=headers or None, transport=recorder
    )


CASES: list[dict[str, Any]] = [
    {"method": "POST", "url": f"http://127.0.0.1:9/api/webhooks/1/{TOKEN}?wait=true"},
    {"method": "POST", "url": "http://127.0.0.1:9/x", "content": b""},
    {"method": "POST", "url": "http://127.0.0.1:9/x", "content": b"raw body"},
    {"method": "POST", "url": "http://127.0.0.1:9/x", "content": "text, not bytes: é"},
    {"method": "put", "url": "http://127.0.0.1:9/x"},
    {"method": "GET", "url": "http://127.0.0.1:9/x?a=1&b=%20", "timeout": 2.5},
    {"method": "DELETE", "url": "http://localhost:9/x", "idempotent": False},
    {
        "method": "POST",
        "url": "http://127.0.0.1:9/api/v10/channels/5/messages",
        "json": {"content": "x"},
        "headers": {"Authorization": "Bot abc", "User-Agent": "custom", "X-Extra": "1"},
        "rate_key": "map-1",
    },
    {
        "method": "POST",
        "url": "http://127.0.0.1:9/x",
        "json": [1],
        "headers": {"content-type": "application/vnd+json"},
    },
    {"method": "PATCH", "url": "http://127.0.0.1:9/x", "json": {"a": "é"}},
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['method']}-{sorted(c)}")
async def test_the_direct_lane_builds_the_request_httpx_would_build(case: dict[str, Any]) -> None:
    recorder = Recorder()
    client = _client(recorder, **{"user-agent": "WandererConsole/1"})
    kwargs = {k: v for k, v in case.items() if k not in ("method", "url")}
    try:
        await client.request(case["method"], case["url"], **kwargs)
    finally:
        await client.aclose()
    (sent,) = recorder.requests
    # What the client built before the direct lane: AsyncClient.request's own build.
    content = kwargs.get("content")
    headers = dict(kwargs.get("headers") or {})
    if "json" in kwargs:
        content = orjson.dumps(kwargs["json"])
        headers.setdefault("content-type", "application/json")
    extensions: dict[str, Any] = {}
    if "idempotent" in kwargs:
        extensions["wanderer.idempotent"] = kwargs["idempotent"]
    if "rate_key" in kwargs:
        extensions["wanderer.rate_key"] = kwargs["rate_key"]
    expected = client.raw.build_request(
        case["method"],
        case["url"],
        content=content,
        headers=headers,
        timeout=kwargs.get("timeout", httpx.USE_CLIENT_DEFAULT),
        extensions=extensions or None,
    )
    assert sent.method == expected.method
    assert str(sent.url) == str(expected.url)
    assert sent.headers.raw == expected.headers.raw
    assert sent.content == expected.content
    assert sent.extensions == expected.extensions


async def test_nothing_of_one_request_is_carried_into_the_next() -> None:
    recorder = Recorder()
    client = _client(recorder)
    url = "http://127.0.0.1:9/api/v10/channels/5/messages"
    try:
        await client.post(url, json={"a": 1}, headers={"authorization": "Bot one"}, timeout=3.0)
        await client.post(url, json={"b": 22222}, rate_key="k", idempotent=True)
        await client.get(url)
    finally:
        await client.aclose()
    first, second, third = recorder.requests
    assert first.headers["authorization"] == "Bot one"
    assert "authorization" not in second.headers
    assert "authorization" not in third.headers
    assert second.content == b'{"b":22222}'
    assert second.headers["content-length"] == str(len(b'{"b":22222}'))
    assert "content-length" not in third.headers
    assert "content-type" not in third.headers
    assert first.extensions["timeout"]["read"] == 3.0
    assert second.extensions["timeout"]["read"] == settings_for("discord").timeout_seconds
    assert "wanderer.rate_key" not in first.extensions
    assert second.extensions["wanderer.rate_key"] == "k"
    assert "wanderer.rate_key" not in third.extensions
    assert "wanderer.idempotent" not in third.extensions
    assert first.extensions is not second.extensions


async def test_a_caller_host_header_or_a_base_url_takes_httpx_own_path() -> None:
    recorder = Recorder()
    client = _client(recorder)
    based = build_client(
        "esi", metrics=Metrics(), base_url="http://127.0.0.1:9/api/", transport=recorder
    )
    try:
        await client.get("http://127.0.0.1:9/x", headers={"Host": "example.org"})
        await client.get("http://127.0.0.1:9/y", params={"q": "1 2"})
        await based.get("items/3")
    finally:
        await client.aclose()
        await based.aclose()
    host, params, relative = recorder.requests
    assert host.headers.get_list("host") == ["example.org"]
    assert str(params.url) == "http://127.0.0.1:9/y?q=1+2"
    assert str(relative.url) == "http://127.0.0.1:9/api/items/3"


@asynccontextmanager
async def scripted_server(*answers: bytes) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A raw HTTP/1.1 server on 127.0.0.1 answering each request with the next of ``answers``
    (the last one repeats); yields its URL and the raw requests it read."""
    seen: list[bytes] = []
    script = list(answers)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                seen.append(head + (await reader.readexactly(length) if length else b""))
                writer.write(script.pop(0) if len(script) > 1 else script[0])
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


def _answer(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"content-length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _discord(**overrides: object) -> HttpClient:
    settings = settings_for("discord").model_copy(
        update={"rate_per_second": 0, "retry_backoff_base_seconds": 0.0, **overrides}
    )
    return build_client("discord", settings, metrics=Metrics())


async def test_a_retried_post_sends_the_same_bytes_again() -> None:
    unavailable = _answer("503 Service Unavailable", b"{}", "content-type: application/json")
    created = _answer("200 OK", b'{"id": "7"}', "content-type: application/json")
    async with scripted_server(unavailable, created) as (url, seen):
        client = _discord()
        try:
            response = await client.post(f"{url}/hook", json={"k": "v" * 50}, idempotent=True)
        finally:
            await client.aclose()
    assert response.status == 200
    assert len(seen) == 2
    assert seen[0] == seen[1]
    assert seen[0].endswith(orjson.dumps({"k": "v" * 50}))


async def test_aiohttp_responses_are_counted_in_bytes_in_plain_or_encoded() -> None:
    plain = b'{"id": "1", "channel_id": "2"}'
    packed = gzip.compress(b'{"id": "3", "channel_id": "4"}')
    answers = (
        _answer("200 OK", plain, "content-type: application/json"),
        _answer("200 OK", packed, "content-type: application/json", "content-encoding: gzip"),
    )
    async with scripted_server(*answers) as (url, _):
        metrics = Metrics()
        settings = settings_for("discord").model_copy(update={"rate_per_second": 0})
        client = build_client("discord", settings, metrics=metrics)
        sender = DiscordSender(client, api_url=url, user_agent="test")
        target = Target(TargetKind.WEBHOOK, f"{url}/api/webhooks/1/{TOKEN}", "t")
        try:
            first = await sender.send(target, {"content": "a"})
            second = await sender.send(target, {"content": "b"})
        finally:
            await client.aclose()
    assert (first.outcome, first.message_id, first.channel_id) == (Outcome.SENT, "1", "2")
    assert (second.outcome, second.message_id, second.channel_id) == (Outcome.SENT, "3", "4")
    # Bytes as they came over the wire (the gzip body compressed), as httpx's own transport.
    assert metrics.value("wc_http_bytes_in_total", service="discord") == len(plain) + len(packed)


async def test_the_httpx_request_log_line_stays_and_stays_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    created = _answer("200 OK", b'{"id": "7"}', "content-type: application/json")
    async with scripted_server(created) as (url, _):
        client = _discord()
        try:
            with caplog.at_level(logging.INFO, logger="httpx"):
                await client.post(f"{url}/api/webhooks/1/{TOKEN}", json={})
        finally:
            await client.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert len(lines) == 1
    assert lines[0].startswith("HTTP Request: POST ")
    assert '"HTTP/1.1 200 OK"' in lines[0]
    assert TOKEN not in lines[0]
