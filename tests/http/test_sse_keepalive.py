"""A keepalive comment after an event is not an event (httpx-sse would dispatch it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from wanderer_console.http import HttpClient, open_sse
from wanderer_console.sim import AppServer

pytestmark = pytest.mark.timeout(30)


async def stream(_request: Request) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield b'event: add_system\nid: 01A\ndata: {"x": 1}\n\n'
        yield b": keepalive\n\n"
        yield b": keepalive\n\n"
        yield b'event: add_system\nid: 01B\ndata: {"x": 2}\n\n'

    return StreamingResponse(body(), media_type="text/event-stream")


async def test_keepalive_comments_are_not_events() -> None:
    async with AppServer(Starlette(routes=[Route("/s", stream)])) as server:
        client = HttpClient("map")
        try:
            async with open_sse(client, f"{server.url}/s") as sse:
                events = [e async for e in sse.events()]
        finally:
            await client.aclose()
    assert [(e.event, e.id, e.data) for e in events] == [
        ("add_system", "01A", '{"x": 1}'),
        ("add_system", "01B", '{"x": 2}'),
    ]
