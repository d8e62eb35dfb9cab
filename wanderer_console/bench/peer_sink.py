"""The webhook sink of the ``peer`` benchmark: one Starlette app for both routers under test.

It accepts what each router sends for an event and records when each event arrived:

- **Discord webhook posts** from the console (``POST /api/webhooks/{id}/{token}``): answered as
  Discord answers ``?wait=true``, with the message object (``id``, ``channel_id``, ``embeds``,
  …); without ``wait`` 204. The console packs up to 10 notifications into one message, so one
  call may carry several events: each embed's title is the event id.
- **Alertmanager webhook posts** (``POST /alertmanager``): the webhook JSON (``version`` 4,
  ``alerts``); each alert's ``event_id`` label is the event id. Answered 200 with no body.

It enforces **no rate limit** (it sends no ``X-RateLimit-*`` header and never answers 429):
Alertmanager has none, so the comparison measures the routers' own work. Calls and events are
counted separately, and so are repeats (an event received more than once: a doubled delivery).

Faults: :meth:`PeerSink.fail_next` answers the next requests (of either kind) ``503`` without
recording them; taking the sink down is its server's business (:class:`SinkServer`: stop and
start again on the same port, so a router's connections are refused meanwhile).

Times are ``time.perf_counter()`` of the process serving the sink (the poster runs in the same
process and stamps its posts with the same clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from wanderer_console.sim.discord_rules import next_snowflake

__all__ = ["AM_PATH", "PeerSink", "SinkServer", "discord_webhook_path"]

AM_PATH = "/alertmanager"
"""Where Alertmanager's webhook receiver posts."""
_CHANNEL_ID = "900000000000000001"


def discord_webhook_path(webhook_id: int | str = 1, token: str = "peer") -> str:
    """The execute-webhook path of the sink (append to its URL)."""
    return f"/api/webhooks/{webhook_id}/{token}"


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


@dataclass
class PeerSink:
    """Records every event that arrives, by id: first arrival, arrivals, calls, 503s."""

    clock: Callable[[], float] = time.perf_counter
    arrivals: dict[str, float] = field(default_factory=dict)
    """First arrival of each event id."""
    counts: dict[str, int] = field(default_factory=dict)
    """Arrivals of each event id (above 1: doubled)."""
    calls: int = 0
    """Accepted webhook calls (a Discord message may carry up to 10 events)."""
    refused: int = 0
    """Calls answered 503 by :meth:`fail_next`."""
    last_refused_at: float | None = None
    """When the last of those was answered."""
    bad: int = 0
    """Calls the sink could not read (no JSON, no event id)."""
    _fail: int = 0
    _last_snowflake: int = 0

    def __post_init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/api/webhooks/{webhook_id}/{token}", self._discord, methods=["POST"]),
                Route(AM_PATH, self._alertmanager, methods=["POST"]),
            ]
        )

    # -- control --------------------------------------------------------------------------------

    def fail_next(self, requests: int) -> None:
        """Answer the next ``requests`` calls ``503`` (nothing recorded)."""
        self._fail += requests

    def clear_faults(self) -> None:
        """Forget the 503s not answered yet."""
        self._fail = 0

    def reset(self) -> None:
        """Forget every arrival and count (between phases)."""
        self.arrivals.clear()
        self.counts.clear()
        self.calls = self.refused = self.bad = 0
        self.last_refused_at = None
        self._fail = 0

    # -- observation ----------------------------------------------------------------------------

    @property
    def events(self) -> int:
        """Arrivals, repeats included."""
        return sum(self.counts.values())

    def doubled(self, ids: set[str] | None = None) -> int:
        """Arrivals beyond the first of each event (of ``ids``, or of all)."""
        return sum(n - 1 for key, n in self.counts.items() if n > 1 and (ids is None or key in ids))

    def missing(self, ids: set[str]) -> int:
        """Events of ``ids`` that have not arrived."""
        return sum(1 for key in ids if key not in self.arrivals)

    # -- handlers -------------------------------------------------------------------------------

    def _refuse(self) -> Response | None:
        if self._fail <= 0:
            return None
        self._fail -= 1
        self.refused += 1
        self.last_refused_at = self.clock()
        return JSONResponse({"message": "503: Service Unavailable", "code": 0}, status_code=503)

    def _arrived(self, event_id: object, now: float) -> bool:
        if not isinstance(event_id, str) or not event_id:
            return False
        self.arrivals.setdefault(event_id, now)
        self.counts[event_id] = self.counts.get(event_id, 0) + 1
        return True

    def _snowflake(self) -> str:
        self._last_snowflake = next_snowflake(time.time_ns() // 1_000_000, self._last_snowflake)
        return str(self._last_snowflake)

    async def _discord(self, request: Request) -> Response:
        refused = self._refuse()
        if refused is not None:
            return refused
        body = _json(await request.body())
        now = self.clock()
        embeds = body.get("embeds") if isinstance(body, dict) else None
        if not isinstance(embeds, list) or not embeds:
            self.bad += 1
            return JSONResponse({"message": "Cannot send an empty message", "code": 50006}, 400)
        self.calls += 1
        for embed in embeds:
            if not (isinstance(embed, dict) and self._arrived(embed.get("title"), now)):
                self.bad += 1
        if request.query_params.get("wait", "false").lower() not in ("true", "1"):
            return Response(status_code=204)
        webhook_id = request.path_params["webhook_id"]
        return JSONResponse(
            {
                "id": self._snowflake(),
                "type": 0,
                "content": body.get("content") or "",
                "channel_id": _CHANNEL_ID,
                "author": {
                    "id": webhook_id,
                    "username": body.get("username") or "Captain Hook",
                    "bot": True,
                },
                "embeds": [{"type": "rich", **e} for e in embeds],
                "attachments": [],
                "mentions": [],
                "mention_roles": [],
                "mention_everyone": False,
                "pinned": False,
                "tts": False,
                "timestamp": datetime.now(UTC).isoformat(),
                "edited_timestamp": None,
                "flags": 0,
                "components": [],
                "webhook_id": webhook_id,
            }
        )

    async def _alertmanager(self, request: Request) -> Response:
        refused = self._refuse()
        if refused is not None:
            return refused
        body = _json(await request.body())
        now = self.clock()
        alerts = body.get("alerts") if isinstance(body, dict) else None
        if not isinstance(alerts, list) or not alerts:
            self.bad += 1
            return Response(status_code=400)
        self.calls += 1
        for alert in alerts:
            labels = alert.get("labels") if isinstance(alert, dict) else None
            if not (isinstance(labels, dict) and self._arrived(labels.get("event_id"), now)):
                self.bad += 1
        return Response(status_code=200)


class _NoSignalServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class SinkServer:
    """Serves a :class:`PeerSink` on 127.0.0.1 at a port that stays the same across
    :meth:`down` and :meth:`up` (connections are refused in between)."""

    def __init__(self, sink: PeerSink, *, port: int = 0) -> None:
        self.sink = sink
        self._port = port
        self._server: _NoSignalServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def is_up(self) -> bool:
        """True while serving."""
        return self._server is not None

    async def up(self, timeout: float = 10.0) -> None:
        """Start serving (on the port of the first start) and wait until it listens."""
        if self._server is not None:
            return
        config = uvicorn.Config(
            self.sink.app,
            host="127.0.0.1",
            port=self._port,
            log_level="warning",
            log_config=None,
            lifespan="off",
            access_log=False,
            # A long keep-alive, as Discord's: a connection the sink closed just as a router
            # reused it would be an unknown outcome, which the console re-sends only later.
            timeout_keep_alive=75,
            timeout_graceful_shutdown=1,
        )
        server = _NoSignalServer(config)
        task = asyncio.create_task(server.serve(), name="peer-sink")
        deadline = time.perf_counter() + timeout
        while not server.started:
            if task.done() or time.perf_counter() > deadline:
                server.should_exit = True
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 2.0)
                raise RuntimeError(f"the sink did not start on 127.0.0.1:{self._port}")
            await asyncio.sleep(0.005)
        self._port = int(server.servers[0].sockets[0].getsockname()[1])
        self._server, self._task = server, task

    async def down(self) -> None:
        """Stop serving: requests in flight finish, open connections close, new ones are
        refused."""
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(task), 5.0)
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def __aenter__(self) -> SinkServer:
        await self.up()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.down()
