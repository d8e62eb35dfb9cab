"""The console's HTTP surface: a Starlette app served inside the engine's event loop.

Routes: ``GET /health``, ``GET /ready``, ``GET /metrics``, ``POST /api/v1/events`` (ingest API)
and ``POST /api/v1/maps/{map}/webhook`` (Wanderer webhooks), plus Wanderer Notifier's
``GET /api/health`` and ``GET /api/status`` for the uptime monitors built for it. Every response
carries ``X-Request-ID`` (the caller's, or a generated one) which also tags the request's log
lines.

The surface is built to stay up under abuse: connections get read deadlines and a cap under the
process's descriptor limit (:mod:`~wanderer_console.server.guard`), and every refusal, unknown
routes included, is counted and logged throttled (:mod:`~wanderer_console.server.refusals`).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wanderer_console.server.guard import ConnectionGuard, ConnectionLimits, descriptor_limit
from wanderer_console.server.health import HealthEndpoints
from wanderer_console.server.ingest import IngestEndpoint
from wanderer_console.server.notifier_api import NotifierEndpoints
from wanderer_console.server.ports import EngineSurface
from wanderer_console.server.refusals import Refusals, endpoint_of
from wanderer_console.server.serve import GRACE_SECONDS, EmbeddedServer, ServerStartError
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.server.webhook import WebhookEndpoint
from wanderer_console.telemetry.context import bind_request_id

__all__ = ["HttpSurface", "build_app", "start_surface"]

log = logging.getLogger(__name__)


class RequestIdMiddleware:
    """Binds ``X-Request-ID`` (given or generated) for the request and echoes it back."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        given = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        with bind_request_id(given) as request_id:

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = list(message.get("headers", ()))
                    headers.append((b"x-request-id", request_id.encode("latin-1")))
                    message = {**message, "headers": headers}
                await send(message)

            await self._app(scope, receive, send_with_id)


def _unrouted(refusals: Refusals) -> dict[Any, Any]:
    """Handlers that count and log 404 and 405 (a scanner's probes) like any other refusal."""

    async def refuse(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        headers = exc.headers if isinstance(exc, HTTPException) else None  # 405 names Allow
        reason = "method_not_allowed" if status == 405 else "not_found"
        refusals.refused(request, endpoint_of(request.url.path), reason, status)
        return JSONResponse(
            {"error": reason.replace("_", " ")}, status_code=status, headers=headers
        )

    return {404: refuse, 405: refuse}


def build_app(
    engine: EngineSurface,
    tenants: TenantRegistry,
    refusals: Refusals | None = None,
    ingest: IngestEndpoint | None = None,
) -> Starlette:
    """The Starlette app over the engine (tests may serve it themselves)."""
    refusals = refusals or Refusals(engine.metrics)
    health = HealthEndpoints(engine)
    ingest = ingest or IngestEndpoint(engine, tenants, refusals=refusals)
    webhook = WebhookEndpoint(engine, refusals=refusals)
    notifier = NotifierEndpoints(engine, refusals)
    app = Starlette(
        routes=[
            Route("/health", health.health, methods=["GET"]),
            Route("/ready", health.ready, methods=["GET"]),
            Route("/metrics", health.metrics, methods=["GET"]),
            Route("/api/v1/events", ingest.post_events, methods=["POST"]),
            Route("/api/v1/maps/{map}/webhook", webhook.receive, methods=["POST"]),
            Route("/api/health", notifier.health, methods=["GET"]),
            Route("/api/status", notifier.status, methods=["GET"]),
        ],
        exception_handlers=_unrouted(refusals),
    )
    app.add_middleware(RequestIdMiddleware)
    return app


class HttpSurface:
    """Owns the tenant registry, the app and its uvicorn server for the engine.

    Limits and log throttling come from ``engine.settings.server`` as it is at start (the
    ``[server]`` section takes effect on restart only).
    """

    def __init__(self, engine: EngineSurface, *, host: str, port: int) -> None:
        settings = engine.settings.server
        self.tenants = TenantRegistry(engine.database, changes=engine.outside_commits)
        self.refusals = Refusals(engine.metrics, interval=settings.refusal_log_interval_seconds)
        self.guard = ConnectionGuard(
            ConnectionLimits.of(settings),
            on_close=self.refusals.connection_closed,
            nofile=descriptor_limit(),
        )
        self._connections = engine.metrics.server_connections
        self._connections.set_function(lambda: self.guard.open_connections)
        self.ingest = IngestEndpoint(engine, self.tenants, refusals=self.refusals)
        self.app = build_app(engine, self.tenants, self.refusals, self.ingest)
        self.server = EmbeddedServer(
            self.app,
            host=host,
            port=port,
            guard=self.guard,
            keep_alive_timeout=settings.keep_alive_seconds,
            parser=None if settings.http_parser == "auto" else settings.http_parser,
        )

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` once started."""
        return self.server.url

    async def start(self) -> None:
        """Bind and serve (raises :class:`~wanderer_console.server.serve.ServerStartError`)."""
        await self.server.start()
        log.info(
            "http server listening",
            extra={
                "ctx": {
                    "url": self.url,
                    "max_connections": self.guard.max_connections,
                    "descriptor_limit": descriptor_limit(),
                }
            },
        )

    def _uncount(self) -> None:
        """``wc_server_connections`` leaves this server: 0, until a server started again counts
        its own (it read the stopped server's guard, and held the stopped surface alive)."""
        self._connections.set_function(_none_open)

    async def stop(self) -> None:
        """Stop serving and close the registry.

        Ingest requests still waiting for the pipeline are answered first (``503``, retry,
        after a grace of half the server's): uvicorn would cancel them at the end of its own.
        """
        try:
            await self.ingest.stop_waiting(GRACE_SECONDS / 2)
            await self.server.stop()
        finally:
            self._uncount()
            self.tenants.close()


def _none_open() -> int:
    return 0


async def start_surface(engine: EngineSurface) -> tuple[HttpSurface | None, str | None]:
    """Serve the HTTP surface when ``[server] enabled``; ``(surface, None)`` when it runs.

    A bind failure is ``(None, reason)``, counted and logged: notifications matter more than the
    HTTP surface, so the engine keeps running and says why.
    """
    server = engine.settings.server
    if not server.enabled:
        return None, None
    surface = HttpSurface(engine, host=server.host, port=server.port)
    try:
        await surface.start()
    except ServerStartError as exc:
        await surface.stop()  # closes the registry, and the gauge leaves it
        engine.metrics.errors.labels(component="http").inc()
        log.error("http server not started", extra={"ctx": {"error": str(exc)}})
        return None, str(exc)
    return surface, None
