"""The control endpoint: the engine's :class:`LocalBackend` served to attached consoles.

Served on ``control.sock`` in the data directory (mode 0600, so only the engine's user can
connect; no token needed) and, with ``[control] listen``, on TCP behind a bearer token whose hash
is in the data directory (:mod:`.token`). The protocol is plain HTTP + JSON:

=============================  ========================================================
``GET /v1/hello``              the engine's identity and protocol version (the handshake)
``GET /v1/frames``             Server-Sent Events: ``event: frame`` every ``interval``
``GET /v1/snapshot``           one snapshot
``POST /v1/pause``             ``{"paused": bool}``
``POST /v1/flag``              ``{"tenant": str|null, "flag": str, "value": bool}``
``POST /v1/theme``             ``{"name": str}``
``GET /v1/config``             the config text, secrets masked
``POST /v1/config``            ``{"text", "base_digest", "force"}``: validate, write, apply
``POST /v1/config/reload``     re-read the file
``GET /v1/config/history``     the audit trail
``POST /v1/retry``             ``{"key": str}``: revive a dead target
``GET /v1/events``             recent events (query: an ``EventQuery``'s fields)
``GET /v1/events/{id}``        one event in full (``null`` once it is gone)
``POST /v1/hosted/refresh``    pull the hosted maps' configuration now (hosted mode)
``POST /v1/alerts/rule``       change one field of an ``[alerts]`` rule
``GET /v1/alerts/history``     the alert history
``POST /v1/priority``          ``{"action": "add"|"remove", "name": str}``: priority systems
``GET /v1/trends``             the stored trends (query: ``range``)
``POST /v1/tracker``           ``{"tenant": str, "name": str, "enabled": bool}``
=============================  ========================================================

Every POST may carry ``actor`` (who asked); the engine appends the transport it came through.

Frames are built **once per tick for all clients** (:class:`FrameHub`), scrubbed of every secret
the engine holds, and handed to each client through a small bounded buffer: a client that reads
slowly or has vanished loses frames (counted, and told how many), never slows the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, SecretStr, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from wanderer_console.config.model import Settings
from wanderer_console.console_api import (
    MAX_STORED_INT,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    BackendError,
    ConsoleBackend,
    EngineIdentity,
    EventQuery,
    Frame,
)
from wanderer_console.control.token import TokenCheck
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.http.uds import UnixAddress
from wanderer_console.server.body import TooLarge, read_body
from wanderer_console.server.guard import ConnectionGuard, ConnectionLimits, descriptor_limit
from wanderer_console.server.refusals import ThrottledLog
from wanderer_console.server.serve import EmbeddedServer, ServerStartError
from wanderer_console.telemetry.logging import redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "SOCKET_NAME",
    "ControlEndpoint",
    "FrameHub",
    "SecretScrub",
    "build_control_app",
]

log = logging.getLogger(__name__)

SOCKET_NAME: Final = "control.sock"
"""The Unix socket in the data directory."""
MAX_BODY_BYTES: Final = 1024 * 1024
"""A config text or any request body over this is refused (413)."""
MIN_INTERVAL, MAX_INTERVAL = 0.1, 10.0
REDACTED: Final = "«redacted»"
_MIN_SECRET = 6
_WEBHOOK_TOKEN = re.compile(r"/webhooks/\d+/([^/?#\s]+)")
TOKEN_SCOPE_KEY: Final = "wanderer_console.control_token"
"""Where :class:`_TokenGuard` leaves the accepted token in the request's scope (TCP only)."""


class ServedBackend(ConsoleBackend, Protocol):
    """A backend the endpoint can serve: the operations, plus frames built on demand
    (:class:`~wanderer_console.control.local.LocalBackend` in the engine)."""

    @property
    def identity(self) -> EngineIdentity:
        """The engine."""
        ...

    @property
    def log_cursor(self) -> int:
        """The number the next log line will get."""
        ...

    def backlog_cursor(self) -> int:
        """Where a new reader's log lines start."""
        ...

    def frame(self, cursor: int) -> tuple[Frame, int]:
        """A frame with the log lines from ``cursor``, and the cursor after them."""
        ...


class ControlMetrics:
    """What the control endpoint counts."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.refused = Counter(
            "wc_control_refused_total",
            "Control requests refused (no or wrong token, protocol mismatch, bad request) and"
            " TCP connections the engine closed (read deadline passed, connection cap)",
            ["reason"],
            registry=registry,
        )
        self.frames_dropped = Counter(
            "wc_control_frames_dropped_total",
            "Frames not sent to a console that read too slowly",
            registry=registry,
        )
        self.clients = Gauge(
            "wc_control_clients", "Consoles streaming frames now", registry=registry
        )
        self.operations = Counter(
            "wc_control_operations_total",
            "Operations asked by consoles",
            ["operation"],
            registry=registry,
        )


class SecretScrub:
    """Replaces every secret value the running settings hold, wherever it appears in a text."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._for: Settings | None = None
        self._values: list[str] = []

    def values(self) -> list[str]:
        """The secrets of the current settings, longest first (re-read after a reload)."""
        current = self._settings()
        if current is not self._for:
            found: set[str] = set()
            _secrets_in(current, found)
            self._values = sorted(
                (v for v in found if len(v) >= _MIN_SECRET), key=len, reverse=True
            )
            self._for = current
        return self._values

    def __call__(self, text: str) -> str:
        """``text`` without any secret."""
        for value in self.values():
            if value in text:
                text = text.replace(value, REDACTED)
        return redact(text)


def _secrets_in(value: Any, found: set[str]) -> None:
    if isinstance(value, SecretStr):
        secret = value.get_secret_value()
        found.add(secret)
        webhook = _WEBHOOK_TOKEN.search(secret)
        if webhook is not None:  # the token alone is as secret as the whole URL
            found.add(webhook.group(1))
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _secrets_in(getattr(value, name), found)
    elif isinstance(value, dict):
        for child in value.values():
            _secrets_in(child, found)
    elif isinstance(value, list | tuple | set | frozenset):
        for child in value:
            _secrets_in(child, found)


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[str | None]
    dropped: int = 0
    """Frames dropped since the client was last told."""


@dataclass(eq=False)
class _Ticker:
    interval: float
    subscribers: set[_Subscriber] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class FrameHub:
    """One frame per tick per interval, shared by every client streaming at that interval."""

    def __init__(
        self,
        backend: ServedBackend,
        scrub: Callable[[str], str],
        metrics: ControlMetrics,
        buffer: Callable[[], int],
    ) -> None:
        self._backend = backend
        self._scrub = scrub
        self._metrics = metrics
        self._buffer = buffer
        self._tickers: dict[float, _Ticker] = {}
        self.closed = False

    @property
    def clients(self) -> int:
        """Clients streaming now."""
        return sum(len(t.subscribers) for t in self._tickers.values())

    def subscribe(self, interval: float) -> tuple[_Subscriber, str]:
        """A new client: its buffer, and a first frame carrying the recent log lines."""
        interval = round(min(MAX_INTERVAL, max(MIN_INTERVAL, interval)), 1)
        subscriber = _Subscriber(asyncio.Queue(maxsize=max(1, self._buffer())))
        ticker = self._tickers.get(interval)
        if ticker is None:
            ticker = self._tickers[interval] = _Ticker(interval)
            ticker.task = asyncio.create_task(self._tick(ticker), name=f"control:frames:{interval}")
        ticker.subscribers.add(subscriber)
        self._metrics.clients.set(self.clients)
        frame, _cursor = self._backend.frame(self._backend.backlog_cursor())
        return subscriber, self._scrub(frame.model_dump_json())

    def unsubscribe(self, subscriber: _Subscriber) -> None:
        """A client went away."""
        for ticker in self._tickers.values():
            ticker.subscribers.discard(subscriber)
        self._metrics.clients.set(self.clients)

    async def _tick(self, ticker: _Ticker) -> None:
        cursor = self._backend.log_cursor
        try:
            while ticker.subscribers and not self.closed:
                await asyncio.sleep(ticker.interval)
                if not ticker.subscribers:
                    break
                frame, cursor = self._backend.frame(cursor)
                data = self._scrub(frame.model_dump_json())
                for subscriber in list(ticker.subscribers):
                    self._offer(subscriber, data)
        except Exception:
            log.exception("control: building a frame failed; clients reconnect")
            for subscriber in list(ticker.subscribers):
                self._close_one(subscriber)
        finally:
            if self._tickers.get(ticker.interval) is ticker:
                del self._tickers[ticker.interval]

    def _offer(self, subscriber: _Subscriber, data: str) -> None:
        queue = subscriber.queue
        if queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            subscriber.dropped += 1
            self._metrics.frames_dropped.inc()
        queue.put_nowait(data)

    @staticmethod
    def _close_one(subscriber: _Subscriber) -> None:
        queue = subscriber.queue
        while queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
        queue.put_nowait(None)

    async def close(self) -> None:
        """End every stream (the engine is stopping)."""
        self.closed = True
        for ticker in list(self._tickers.values()):
            for subscriber in list(ticker.subscribers):
                self._close_one(subscriber)
            if ticker.task is not None:
                await cancel_and_wait([ticker.task])


class _TokenGuard:
    """TCP only: every request needs ``Authorization: Bearer <token>``; refusals are counted."""

    def __init__(self, app: ASGIApp, check: TokenCheck, metrics: ControlMetrics) -> None:
        self._app = app
        self._check = check
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        presented: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                kind, _, token = value.decode("latin-1").partition(" ")
                presented = token.strip() if kind.lower() == "bearer" else None
        if not self._check.accepts(presented):
            reason = "no_token" if presented is None else "bad_token"
            self._metrics.refused.labels(reason).inc()
            client = scope.get("client") or ("unknown", 0)
            log.warning(
                "control: request refused",
                extra={"ctx": {"reason": reason, "client": client[0], "path": scope.get("path")}},
            )
            message = (
                "a bearer token is required"
                if presented is None
                else "the token is not this engine's current one"
            )
            response = JSONResponse(
                {
                    "error": f"{message}: create one with `wanderer-console control token` on"
                    " the engine's host and pass it with --token-file"
                },
                status_code=401,
                headers={"www-authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        # The frame stream checks it again at every frame: a new token ends the old one's streams.
        await self._app({**scope, TOKEN_SCOPE_KEY: presented}, receive, send)


def build_control_app(
    backend: ServedBackend,
    hub: FrameHub,
    metrics: ControlMetrics,
    scrub: Callable[[str], str],
    *,
    transport: str,
    token: TokenCheck | None = None,
) -> ASGIApp:
    """The control API over ``backend``; behind the token check when ``token`` is given."""

    def reply(model: BaseModel, status: int = 200) -> Response:
        return Response(
            scrub(model.model_dump_json()), status_code=status, media_type="application/json"
        )

    def refuse(reason: str, message: str, status: int, **extra: Any) -> Response:
        metrics.refused.labels(reason).inc()
        return JSONResponse({"error": message, **extra}, status_code=status)

    def version_problem(request: Request) -> Response | None:
        given = request.headers.get(PROTOCOL_HEADER)
        if given is not None and given != str(PROTOCOL_VERSION):
            identity = backend.identity
            return refuse(
                "protocol",
                f"this engine (version {identity.version}) speaks control protocol"
                f" {PROTOCOL_VERSION}, the console speaks {given}: run the same version of"
                " wanderer-console on both sides",
                409,
                engine_protocol=PROTOCOL_VERSION,
                engine_version=identity.version,
            )
        return None

    async def body(request: Request) -> dict[str, Any]:
        try:  # refused on its declared length, or as it streams: never held whole first
            raw = await read_body(request, MAX_BODY_BYTES)
        except TooLarge as exc:
            raise _BadRequest(413, str(exc)) from None
        try:
            data = json.loads(raw or b"{}")
        except ValueError as exc:
            raise _BadRequest(400, f"request body is not JSON: {exc}") from None
        except RecursionError:  # a small body can still out-nest the parser
            raise _BadRequest(
                400, "request body is nested too deeply: send a flat JSON object"
            ) from None
        if not isinstance(data, dict):
            raise _BadRequest(400, "request body must be a JSON object")
        if _has_lone_surrogate(data):
            raise _BadRequest(
                400,
                "request body has a lone surrogate (an escape such as \\ud800 without its"
                " pair): send the text as valid Unicode",
            )
        return data

    def actor(request: Request, data: dict[str, Any]) -> str:
        claimed = str(data.get("actor") or "console")[:80]
        claimed = "".join(ch for ch in claimed if ch.isprintable())
        where = transport
        if request.client and request.client.host:
            where += f" {request.client.host}"
        return f"{claimed} via {where}"

    def operation(
        name: str, handler: Callable[[Request, dict[str, Any]], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            problem = version_problem(request)
            if problem is not None:
                return problem
            try:
                data = await body(request) if request.method == "POST" else {}
                metrics.operations.labels(name).inc()
                return await handler(request, data)
            except _BadRequest as exc:
                return refuse("bad_request", exc.message, exc.status)

        return endpoint

    async def hello(request: Request, data: dict[str, Any]) -> Response:
        return reply(backend.identity)

    async def snapshot(request: Request, data: dict[str, Any]) -> Response:
        return reply(await backend.snapshot())

    async def pause(request: Request, data: dict[str, Any]) -> Response:
        paused = _field(data, "paused", bool)
        return reply(await backend.set_paused(paused, actor=actor(request, data)))

    async def flag(request: Request, data: dict[str, Any]) -> Response:
        tenant = data.get("tenant")
        if tenant is not None and not isinstance(tenant, str):
            raise _BadRequest(400, "tenant must be a string or null")
        result = await backend.set_flag(
            tenant,
            _field(data, "flag", str),
            _field(data, "value", bool),
            actor=actor(request, data),
        )
        return reply(result)

    async def tracker(request: Request, data: dict[str, Any]) -> Response:
        result = await backend.set_tracker(
            _field(data, "tenant", str),
            _field(data, "name", str),
            _field(data, "enabled", bool),
            actor=actor(request, data),
        )
        return reply(result)

    async def theme(request: Request, data: dict[str, Any]) -> Response:
        name = _field(data, "name", str)
        return reply(await backend.set_theme(name, actor=actor(request, data)))

    async def config_get(request: Request, data: dict[str, Any]) -> Response:
        return reply(await backend.config_text())

    async def config_post(request: Request, data: dict[str, Any]) -> Response:
        base = data.get("base_digest")
        # A JSON boolean only: "false" (a string) read as truthy overwrote a change made since.
        force = _field(data, "force", bool) if "force" in data else False
        result = await backend.apply_config(
            _field(data, "text", str),
            base_digest=base if isinstance(base, str) else None,
            force=force,
            actor=actor(request, data),
        )
        return reply(result)

    async def reload(request: Request, data: dict[str, Any]) -> Response:
        return reply(await backend.reload_config(actor=actor(request, data)))

    async def history(request: Request, data: dict[str, Any]) -> Response:
        try:
            limit = int(request.query_params.get("limit", "50"))
        except ValueError:
            raise _BadRequest(400, "limit must be a whole number") from None
        records = await backend.config_history(limit)
        text = "[" + ",".join(record.model_dump_json() for record in records) + "]"
        return Response(scrub(text), media_type="application/json")

    async def alert_rule(request: Request, data: dict[str, Any]) -> Response:
        value = data.get("value")
        if not isinstance(value, bool | int | float):
            raise _BadRequest(400, "'value' must be a number or a boolean")
        result = await backend.set_alert_rule(
            _field(data, "rule", str),
            _field(data, "field", str),
            value,
            actor=actor(request, data),
        )
        return reply(result)

    async def alert_history(request: Request, data: dict[str, Any]) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
        except ValueError:
            raise _BadRequest(400, "limit must be a whole number") from None
        records = await backend.alert_history(limit)
        text = "[" + ",".join(record.model_dump_json() for record in records) + "]"
        return Response(scrub(text), media_type="application/json")

    async def trends(request: Request, data: dict[str, Any]) -> Response:
        try:
            view = await backend.trends(request.query_params.get("range", "1h"))
        except BackendError as exc:
            raise _BadRequest(400, str(exc)) from None
        return reply(view)

    async def retry(request: Request, data: dict[str, Any]) -> Response:
        key = _field(data, "key", str)
        return reply(await backend.retry_target(key, actor=actor(request, data)))

    async def events(request: Request, data: dict[str, Any]) -> Response:
        try:
            query = EventQuery.model_validate(dict(request.query_params))
        except ValidationError as exc:
            raise _BadRequest(400, f"bad event query: {exc}") from None
        return reply(await backend.events(query))

    async def event(request: Request, data: dict[str, Any]) -> Response:
        row_id: int = request.path_params["event"]
        if row_id > MAX_STORED_INT:  # the store cannot even look it up (an overflow, a 500)
            raise _BadRequest(
                400,
                f"event id {row_id} is out of range: event ids run up to {MAX_STORED_INT};"
                " take one from /v1/events",
            )
        detail = await backend.event_detail(row_id)
        if detail is None:
            return Response("null", media_type="application/json")
        return reply(detail)

    async def hosted_refresh(request: Request, data: dict[str, Any]) -> Response:
        return reply(await backend.refresh_hosted(actor=actor(request, data)))

    async def priority(request: Request, data: dict[str, Any]) -> Response:
        action = _field(data, "action", str)
        name = _field(data, "name", str)
        who = actor(request, data)
        if action == "add":
            return reply(await backend.add_priority_system(name, actor=who))
        if action == "remove":
            return reply(await backend.remove_priority_system(name, actor=who))
        raise _BadRequest(400, "action must be 'add' or 'remove'")

    async def frames(request: Request) -> Response:
        problem = version_problem(request)
        if problem is not None:
            return problem
        try:
            interval = float(request.query_params.get("interval", "1.0"))
        except ValueError:
            return refuse("bad_request", "interval must be a number of seconds", 400)
        if hub.closed:
            return JSONResponse({"error": "the engine is stopping"}, status_code=503)
        subscriber, first = hub.subscribe(interval)
        presented = request.scope.get(TOKEN_SCOPE_KEY)

        def revoked() -> bool:
            """Over TCP: the token this stream was opened with is no longer the current one
            (`control token` made a new one). The stream ends with a ``revoked`` event; a console
            asking again is told 401."""
            return token is not None and not token.accepts(presented)

        async def stream() -> AsyncIterator[str]:
            try:
                yield f"event: frame\ndata: {first}\n\n"
                while True:
                    data = await subscriber.queue.get()
                    if revoked():  # said as such: not an engine stopping (which "bye" is)
                        yield "event: revoked\ndata: {}\n\n"
                        return
                    if data is None:
                        yield "event: bye\ndata: {}\n\n"
                        return
                    if subscriber.dropped:
                        yield f"event: dropped\ndata: {subscriber.dropped}\n\n"
                        subscriber.dropped = 0
                    yield f"event: frame\ndata: {data}\n\n"
            finally:
                hub.unsubscribe(subscriber)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    routes = [
        Route("/v1/hello", operation("hello", hello)),
        Route("/v1/frames", frames),
        Route("/v1/snapshot", operation("snapshot", snapshot)),
        Route("/v1/pause", operation("pause", pause), methods=["POST"]),
        Route("/v1/flag", operation("flag", flag), methods=["POST"]),
        Route("/v1/theme", operation("theme", theme), methods=["POST"]),
        Route("/v1/config", operation("config_text", config_get), methods=["GET"]),
        Route("/v1/config", operation("apply_config", config_post), methods=["POST"]),
        Route("/v1/config/reload", operation("reload", reload), methods=["POST"]),
        Route("/v1/config/history", operation("history", history)),
        Route("/v1/retry", operation("retry", retry), methods=["POST"]),
        Route("/v1/events", operation("events", events)),
        Route("/v1/events/{event:int}", operation("event_detail", event)),
        Route("/v1/hosted/refresh", operation("hosted_refresh", hosted_refresh), methods=["POST"]),
        Route("/v1/alerts/rule", operation("alert_rule", alert_rule), methods=["POST"]),
        Route("/v1/alerts/history", operation("alert_history", alert_history)),
        Route("/v1/priority", operation("priority", priority), methods=["POST"]),
        Route("/v1/trends", operation("trends", trends)),
        Route("/v1/tracker", operation("tracker", tracker), methods=["POST"]),
    ]
    app: ASGIApp = Starlette(routes=routes)
    if token is not None:
        app = _TokenGuard(app, token, metrics)
    return app


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _has_lone_surrogate(data: Any) -> bool:
    """Whether a string in ``data`` holds half a UTF-16 pair (JSON's ``\\ud800``): valid JSON,
    but no UTF-8 file, store or answer can take it, so every use of it failed (a 500).
    Walked with a stack, not recursion: the parser accepted the nesting, this must too."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _field(data: dict[str, Any], name: str, kind: type[Any]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind):
        raise _BadRequest(400, f"{name!r} must be a {kind.__name__}")
    return value


def bind_private_socket(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` that only this user can connect to.

    It is bound in a fresh 0700 directory beside ``path``, set to 0600, then renamed into place,
    so there is no moment when the socket exists with looser permissions. Whatever was at
    ``path`` (a socket left by a crashed engine; the data directory's lock says no engine holds
    it now) is replaced.
    """
    staging = Path(tempfile.mkdtemp(prefix=".control-", dir=path.parent))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        staged = staging / SOCKET_NAME
        with UnixAddress(staged) as address:  # a long data directory's path: see http/uds.py
            sock.bind(str(address))
        os.chmod(staged, 0o600)
        os.replace(staged, path)
        sock.listen(64)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    finally:
        with contextlib.suppress(OSError):
            for leftover in staging.iterdir():
                leftover.unlink()
            staging.rmdir()
    return sock


class ControlEndpoint:
    """Serves the backend on the data directory's socket and, when configured, on TCP."""

    def __init__(
        self,
        backend: ServedBackend,
        settings: Callable[[], Settings],
        data_dir: Path,
        metrics: Metrics,
    ) -> None:
        self._backend = backend
        self._settings = settings
        self.metrics = ControlMetrics(metrics)
        self.scrub = SecretScrub(settings)
        self.hub = FrameHub(
            backend,
            self.scrub,
            self.metrics,
            lambda: settings().control.client_buffer_frames,
        )
        self.socket_path = data_dir / SOCKET_NAME
        self.token = TokenCheck(data_dir)
        self._servers: list[EmbeddedServer] = []
        self.tcp_url: str | None = None
        self.errors: list[str] = []
        """Why a transport could not start (logged too)."""
        self._closed_log = ThrottledLog(log)

    async def start(self) -> None:
        """Serve on every configured transport; a failure is logged and kept, never raised."""
        control = self._settings().control
        if control.socket:
            try:
                sock = bind_private_socket(self.socket_path)
                app = build_control_app(
                    self._backend, self.hub, self.metrics, self.scrub, transport="socket"
                )
                server = EmbeddedServer(app, host="", port=0, sock=sock)
                await server.start()
                self._servers.append(server)
            except (OSError, ServerStartError) as exc:
                self._failed(f"control socket {self.socket_path}: {exc}")
        if control.listen:
            await self._start_tcp(control.listen)

    async def _start_tcp(self, listen: str) -> None:
        if self.token.damaged():
            self._failed(
                f"control listen {listen} not served: {self.token.path} holds no token hash"
                " (damaged?); make a new token with `wanderer-console control token"
                f" --data-dir {self.token.path.parent}`, then restart the engine"
            )
            return
        if not self.token.configured():
            self._failed(
                f"control listen {listen} not served: no token yet; run"
                f" `wanderer-console control token --data-dir {self.token.path.parent}`,"
                " then restart the engine"
            )
            return
        host, _, port = listen.rpartition(":")
        app = build_control_app(
            self._backend,
            self.hub,
            self.metrics,
            self.scrub,
            transport="tcp",
            token=self.token,
        )
        # Facing the network, read before any token is checked: the [server] section's read
        # deadlines and connection cap, so stalled sockets cannot take the process's descriptors.
        limits = self._settings().server
        guard = ConnectionGuard(
            ConnectionLimits.of(limits),
            on_close=self._connection_closed,
            nofile=descriptor_limit(),
        )
        server = EmbeddedServer(
            app,
            host=host.strip("[]"),
            port=int(port),
            guard=guard,
            keep_alive_timeout=limits.keep_alive_seconds,
        )
        try:
            await server.start()
        except ServerStartError as exc:
            self._failed(f"control listen {listen}: {exc}")
            return
        self._servers.append(server)
        self.tcp_url = server.url

    def _connection_closed(self, reason: str, host: str) -> None:
        """The TCP listener closed or refused a connection (a read deadline, its cap)."""
        self.metrics.refused.labels(reason).inc()
        self._closed_log.emit(
            host,
            logging.WARNING,
            "control: connection closed by the engine",
            {"reason": reason, "client": host},
        )

    def _failed(self, message: str) -> None:
        self.errors.append(message)
        log.error("control endpoint: %s", message)

    async def stop(self) -> None:
        """Remove the socket, end the streams, stop serving.

        The socket goes first: a console told "bye" tries again within a second, and a socket
        file still there while its server stops (the streams closing, the listener shut) refused
        it as "no engine is listening (left behind by an engine that stopped?)", a stale socket,
        where the engine was only stopping; gone, it reads "nothing to attach to". The engine's
        lock is still held, so no other engine can bind the path meanwhile."""
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        await self.hub.close()
        for server in self._servers:
            await server.stop()
        self._servers.clear()
