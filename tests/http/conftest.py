"""A real loopback Starlette server that injects faults, served with :class:`AppServer`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from wanderer_console.eventloop import loop_factory
from wanderer_console.sim.server import AppServer

_BOTH_LOOPS: Final = ("test_h1_transport", "test_client_fast")
"""The modules whose tests run on each event loop the engine may run on (``eventloop``): the
Discord client's transport speaks to the loop's own socket transports, and uvloop's are not
asyncio's classes."""


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]] | None:
    """Those modules' tests once on asyncio's loop and once on uvloop's (pytest-asyncio's hook);
    ``None`` for every other test: the root conftest's loop, as everywhere else."""
    module = getattr(item, "module", None)
    if module is None or module.__name__.rpartition(".")[2] not in _BOTH_LOOPS:
        return None
    uvloop = loop_factory("uvloop")
    assert uvloop is not None
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop}


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok": true}'
    delay: float = 0.0


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the server saw (monotonic time of arrival)."""

    at: float
    method: str
    path: str


class FaultServer:
    """Answers every path from a per-path script, then from a per-path default reply."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.script: dict[str, deque[Reply]] = {}
        self.default: dict[str, Reply] = {}
        self.url = ""

    def then(self, path: str, *replies: Reply) -> None:
        """Queue ``replies`` for ``path`` (used once each, in order)."""
        self.script.setdefault(path, deque()).extend(replies)

    def always(self, path: str, reply: Reply) -> None:
        """Answer ``path`` with ``reply`` once the script is used up."""
        self.default[path] = reply

    def count(self, path: str) -> int:
        """Requests seen on ``path``."""
        return sum(1 for hit in self.hits if hit.path == path)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        self.hits.append(Hit(time.monotonic(), request.method, path))
        await request.body()
        if path == "/sse":
            return StreamingResponse(self._sse(), media_type="text/event-stream")
        queued = self.script.get(path)
        reply = queued.popleft() if queued else self.default.get(path, Reply())
        if reply.delay:
            await asyncio.sleep(reply.delay)
        return Response(reply.body, reply.status, headers=reply.headers)

    @staticmethod
    async def _sse() -> AsyncIterator[bytes]:
        for n in range(3):
            await asyncio.sleep(0.15)
            yield f"event: tick\nid: {n}\ndata: {n}\n\n".encode()

    def app(self) -> Starlette:
        """The ASGI app."""
        methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]
        return Starlette(routes=[Route("/{path:path}", self._handle, methods=methods)])


@pytest.fixture
async def fault_server() -> AsyncIterator[FaultServer]:
    """A started :class:`FaultServer` on 127.0.0.1 (``.url`` set)."""
    faults = FaultServer()
    server = AppServer(faults.app(), stop_timeout=3.0)
    await server.start()
    faults.url = server.url
    try:
        yield faults
    finally:
        await server.stop()
