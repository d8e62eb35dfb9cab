"""The console's HTTP surface: a Starlette app served inside the engine's event loop.

Routes: ``GET /health``, ``GET /ready``, ``GET /metrics``, ``POST /api/v1/events`` (ingest API)
and ``POST /api/v1/maps/{map}/webhook`` (Wanderer webhooks). Every response carries
``X-Request-ID`` (the caller's, or a generated one) which also tags the request's log lines.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wanderer_console.server.health import HealthEndpoints
from wanderer_console.server.ingest import IngestEndpoint
from wanderer_console.server.serve import EmbeddedServer
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.server.webhook import WebhookEndpoint
from wanderer_console.telemetry.context import bind_request_id

if TYPE_CHECKING:
    from wanderer_console.runtime import Runtime

__all__ = ["HttpSurface", "build_app"]

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


def build_app(runtime: Runtime, tenants: TenantRegistry) -> Starlette:
    """The Starlette app over one runtime (tests may serve it themselves)."""
    health = HealthEndpoints(runtime)
    ingest = IngestEndpoint(runtime, tenants)
    webhook = WebhookEndpoint(runtime)
    app = Starlette(
        routes=[
            Route("/health", health.health, methods=["GET"]),
            Route("/ready", health.ready, methods=["GET"]),
            Route("/metrics", health.metrics, methods=["GET"]),
            Route("/api/v1/events", ingest.post_events, methods=["POST"]),
            Route("/api/v1/maps/{map}/webhook", webhook.receive, methods=["POST"]),
        ]
    )
    app.add_middleware(RequestIdMiddleware)
    return app


class HttpSurface:
    """Owns the tenant registry, the app and its uvicorn server for one runtime."""

    def __init__(self, runtime: Runtime, *, host: str, port: int) -> None:
        self.tenants = TenantRegistry(runtime.store.path)
        self.app = build_app(runtime, self.tenants)
        self.server = EmbeddedServer(self.app, host=host, port=port)

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` once started."""
        return self.server.url

    async def start(self) -> None:
        """Bind and serve (raises :class:`~wanderer_console.server.serve.ServerStartError`)."""
        await self.server.start()
        log.info("http server listening", extra={"ctx": {"url": self.url}})

    async def stop(self) -> None:
        """Stop serving and close the registry."""
        await self.server.stop()
        self.tenants.close()
