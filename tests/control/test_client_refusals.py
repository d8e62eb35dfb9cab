"""What the attached console says when something other than the engine answers a refusal.

The engine's own refusals carry ``{"error": ...}`` saying what to do. A proxy, a load balancer or
another service on the URL answers its own way: JSON without ``error``, a JSON list, an HTML page,
nothing at all. The console then says the status, what it means (not the engine's answer) and
what to check, never the text "None" nor a crash of its own.

The "proxy" is a Starlette app served on 127.0.0.1 over a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from wanderer_console.console_api import BackendError
from wanderer_console.http.control_client import MAX_ANSWER_BYTES, RemoteBackend
from wanderer_console.server.serve import EmbeddedServer

pytestmark = pytest.mark.timeout(30)

ANSWERS: dict[str, Response] = {
    "json-without-error": JSONResponse({"message": "blocked by policy"}, status_code=403),
    "json-error-null": JSONResponse({"error": None}, status_code=400),
    "json-list": JSONResponse(["bad gateway"], status_code=502),
    "json-string": JSONResponse("upstream gone", status_code=503),
    "html": Response(
        "<html><body><h1>404 Not Found</h1><hr>nginx</body></html>",
        status_code=404,
        media_type="text/html",
    ),
    "empty": Response(b"", status_code=400),
    "empty-401": Response(b"", status_code=401),
}


@pytest.fixture
async def proxy() -> AsyncIterator[tuple[EmbeddedServer, dict[str, str]]]:
    """A stand-in for a proxy: every path answers what ``choice["answer"]`` names."""
    choice = {"answer": "html"}

    async def answer(request: Request) -> Response:
        return ANSWERS[choice["answer"]]

    app = Starlette(routes=[Route("/{path:path}", answer)])
    server = EmbeddedServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server, choice
    finally:
        await server.stop()


@pytest.mark.parametrize("kind", sorted(ANSWERS))
async def test_a_refusal_not_from_the_engine_says_the_status_and_what_to_check(
    proxy: tuple[EmbeddedServer, dict[str, str]], kind: str
) -> None:
    server, choice = proxy
    choice["answer"] = kind
    status = ANSWERS[kind].status_code
    backend = RemoteBackend(url=server.url, token="wcc_secret_token_value")
    try:
        with pytest.raises(BackendError) as refused:
            await backend.connect()
        frames = backend.frames(0.1)
        lost = await anext(frames)
        await frames.aclose()
    finally:
        await backend.aclose()
    for message in (str(refused.value), lost.link.detail if lost.link else ""):
        assert "None" not in message
        assert f"{status} " in message, message
        assert "not the engine's" in message, message
        assert server.url in message
        assert "wcc_secret_token_value" not in message


@pytest.fixture
async def endless() -> AsyncIterator[EmbeddedServer]:
    """Something at the address that never stops answering: a body with no end, and an event
    stream whose first line never ends."""

    async def forever(request: Request, prefix: bytes) -> AsyncIterator[bytes]:
        yield prefix
        chunk = b"x" * 65536
        # Until the client hangs up: after that uvicorn's send returns at once, and the loop
        # would never let the event loop (the client's too, in this process) run again.
        while not await request.is_disconnected():
            yield chunk

    async def hello(request: Request) -> Response:
        body = forever(request, b'{"version": "')
        return StreamingResponse(body, media_type="application/json")

    async def refused(request: Request) -> Response:
        body = forever(request, b"<html>")
        return StreamingResponse(body, status_code=403, media_type="text/html")

    async def frames(request: Request) -> Response:
        body = forever(request, b"event: frame\ndata: ")
        return StreamingResponse(body, media_type="text/event-stream")

    app = Starlette(
        routes=[
            Route("/v1/hello", hello),
            Route("/v1/snapshot", refused),
            Route("/v1/frames", frames),
        ]
    )
    server = EmbeddedServer(app, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_an_answer_without_end_is_cut_off_not_read_for_ever(endless: EmbeddedServer) -> None:
    """The client read every answer whole, and each frame line until its end: an answer without
    one (a proxy's stream, the wrong service) grew the console's memory until it died. Past the
    largest answer the engine gives, the console stops reading and says so."""
    backend = RemoteBackend(url=endless.url, token="wcc_x")
    try:
        with pytest.raises(BackendError) as hello:
            await backend.connect()
        with pytest.raises(BackendError) as refused:
            await backend.snapshot()
        frames = backend.frames(0.1)
        lost = await anext(frames)
        await frames.aclose()
    finally:
        await backend.aclose()
    assert lost.link is not None
    for message in (str(hello.value), str(refused.value), lost.link.detail):
        assert f"more than {MAX_ANSWER_BYTES // 2**20} MiB" in message, message
        assert endless.url in message


async def test_an_operation_the_engine_took_but_never_answered_is_not_said_unreached(
    tmp_path: Path,
) -> None:
    """The engine stops (or dies) after reading an operation and before answering it: the
    operation may have been applied. Saying "cannot reach the engine" told the operator it was
    not, who would then send it again (a retry re-queues, a flip computed from the stale screen
    may undo one that was applied). The message says it is not known and to look first. The
    engine is stood in for by a real socket that reads the request whole and hangs up: the
    moment a real engine dies in cannot be chosen."""
    path = tmp_path / "control.sock"
    received: list[bytes] = []

    async def take_and_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        received.append(head + await reader.readexactly(length))
        writer.close()

    server = await asyncio.start_unix_server(take_and_hang_up, path=str(path))
    backend = RemoteBackend(socket_path=path)
    try:
        operations = {
            "/v1/flag": backend.set_flag(None, "kill", False, actor="tui:alice@laptop"),
            "/v1/pause": backend.set_paused(True, actor="tui:alice@laptop"),
            "/v1/retry": backend.retry_target("webhook:1", actor="tui:alice@laptop"),
        }
        for route, operation in operations.items():
            with pytest.raises(BackendError) as failed:
                await operation
            assert received[-1].startswith(f"POST {route} ".encode())
            message = str(failed.value)
            assert "cannot reach" not in message
            assert "whether it was applied is not known" in message
            assert "check" in message
    finally:
        await backend.aclose()
        server.close()
        await server.wait_closed()


_IDENTITY = {
    "host": "ops-1",
    "pid": 4242,
    "data_dir": "/var/lib/wanderer-console",
    "version": "0.1.0",
    "started_at": 1_764_800_000.0,
}

BUILDS: dict[str, tuple[dict[str, object], tuple[str, ...]]] = {
    # A newer build's handshake: the same protocol, a field this console has never heard of.
    "newer": (
        {**_IDENTITY, "cluster_scope": "shared", "region": "eu"},
        ("newer build", "cluster_scope", "region", "attach with the engine's own build"),
    ),
    # An older build's: a field this console needs is not there yet.
    "older": (
        {k: v for k, v in _IDENTITY.items() if k != "started_at"},
        ("older build", "started_at", "restart it with this build"),
    ),
}


@pytest.mark.parametrize("build", sorted(BUILDS))
async def test_an_engine_of_another_build_is_named_as_such_not_as_a_field_dump(
    build: str,
) -> None:
    """Engine and console of different builds but one protocol number: what the console cannot
    read is explained as a build mismatch, with the fields and what to run, over the real
    socket."""
    hello, said = BUILDS[build]

    async def answer(request: Request) -> Response:
        return JSONResponse(hello)

    server = EmbeddedServer(
        Starlette(routes=[Route("/v1/hello", answer)]), host="127.0.0.1", port=0
    )
    await server.start()
    backend = RemoteBackend(url=server.url, token="wcc_secret_token_value")
    try:
        with pytest.raises(BackendError) as refused:
            await backend.connect()
    finally:
        await backend.aclose()
        await server.stop()
    message = str(refused.value)
    for words in said:
        assert words in message, message
    assert "For further information" not in message  # pydantic's own dump is not shown
