"""Liveness, readiness and Prometheus metrics endpoints."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wanderer_console import __version__

if TYPE_CHECKING:
    from wanderer_console.runtime import Runtime

__all__ = ["HealthEndpoints", "readiness_problems"]


def readiness_problems(runtime: Runtime) -> list[str]:
    """Why the console is not ready; empty when the store answers and every source is connected."""
    reasons: list[str] = []
    if not runtime.ready.is_set():
        reasons.append("runtime: still starting")
    if not runtime.store.ping():
        reasons.append("store: database not reachable")
    connections = [s.health.snapshot() for s in runtime.map_sources.values()]
    connections += [s.health.snapshot() for s in runtime.kill_sources.values()]
    for connection in connections:
        if connection["state"] != "connected":
            reason = f"source {connection['name']}: {connection['state']}"
            if connection.get("last_error"):
                reason += f" ({connection['last_error']})"
            reasons.append(reason)
    return reasons


class HealthEndpoints:
    """``GET /health``, ``GET /ready`` and ``GET /metrics`` over one runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    async def health(self, request: Request) -> Response:
        """Liveness: the process and its event loop answer."""
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "uptime_seconds": round(time.time() - self._runtime.started_at, 3),
            }
        )

    async def ready(self, request: Request) -> Response:
        """Readiness: 200 when the store and every source are up, else 503 with the reasons."""
        reasons = readiness_problems(self._runtime)
        if reasons:
            return JSONResponse({"ready": False, "reasons": reasons}, status_code=503)
        return JSONResponse({"ready": True, "reasons": []})

    async def metrics(self, request: Request) -> Response:
        """Prometheus text exposition of the console's own registry."""
        return Response(self._runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
