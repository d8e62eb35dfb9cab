"""The map client keeps one connection open per map stream: 100 maps must not exhaust it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from wanderer_console.http import build_client
from wanderer_console.http.middleware import network_transport
from wanderer_console.http.settings import settings_for
from wanderer_console.http.split import SplitTransport
from wanderer_console.http.sse import open_sse
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

STREAMS = 110
"""More map streams than httpx's default pool of 100 connections."""


async def _forever(request: Request) -> Response:
    async def body() -> AsyncIterator[bytes]:
        yield b": keepalive\n\n"
        await asyncio.sleep(3600)

    return StreamingResponse(body(), media_type="text/event-stream")


async def _systems(request: Request) -> Response:
    return JSONResponse({"data": []})


@pytest.mark.slow
async def test_a_rest_call_goes_through_beside_more_streams_than_httpx_allows() -> None:
    server = AppServer(Starlette(routes=[Route("/stream", _forever), Route("/systems", _systems)]))
    await server.start()
    client = build_client("map", metrics=Metrics())
    async with contextlib.AsyncExitStack() as stack:
        try:
            for _ in range(STREAMS):
                response = await stack.enter_async_context(
                    client.raw.stream("GET", f"{server.url}/stream")
                )
                assert response.status_code == 200
            answer = await asyncio.wait_for(client.get(f"{server.url}/systems"), 5.0)
            assert answer.status == 200
        finally:
            await stack.aclose()
            await client.aclose()
            await server.stop()


async def test_rest_calls_do_not_share_a_pool_with_the_event_streams() -> None:
    """The map client's streams (opened as the map source opens them) hold a pool of their own,
    and its REST calls reuse one connection in theirs: httpcore's pool walks every connection it
    holds at each request's start and end, which at 1,000 maps cost each REST call 2-5 ms."""
    server = AppServer(Starlette(routes=[Route("/stream", _forever), Route("/systems", _systems)]))
    await server.start()
    network = network_transport(settings_for("map"))
    assert isinstance(network, SplitTransport)
    client = build_client("map", metrics=Metrics(), transport=network)
    streams, requests = network.streams, network.requests
    assert isinstance(streams, httpx.AsyncHTTPTransport)
    assert isinstance(requests, httpx.AsyncHTTPTransport)
    async with contextlib.AsyncExitStack() as stack:
        try:
            for _ in range(5):
                stream = await stack.enter_async_context(open_sse(client, f"{server.url}/stream"))
                assert stream.status == 200
            for _ in range(3):
                answer = await asyncio.wait_for(client.get(f"{server.url}/systems"), 5.0)
                assert answer.status == 200
            assert len(streams._pool.connections) == 5
            assert len(requests._pool.connections) == 1
        finally:
            await stack.aclose()
            await client.aclose()
            await server.stop()
