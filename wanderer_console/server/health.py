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
    if runtime.integrity_problem is not None:
        reasons.append(
            f"store: database damaged ({runtime.integrity_problem}); stop, restore the backup"
            " or run `sqlite3 DB .recover`"
        )
    fault = runtime.store.write_fault
    if fault is not None:
        reasons.append(
            f"store: cannot write ({fault.reason}); delivery paused since"
            f" {_clock(fault.since)} UTC, {fault.failures} failed writes"
        )
    delivery = runtime.dispatcher
    for (tenant, key), dead in sorted(delivery.dead_targets.items()):
        reasons.append(
            f"target {key} (map {tenant}): dead since {_clock(dead.since)} UTC ({dead.reason});"
            f" its notifications wait: fix it or run `wanderer-console outbox retry {key}`"
        )
    if delivery.global_pause_until > time.time():
        reasons.append(
            f"delivery: paused by Discord until {_clock(delivery.global_pause_until)} UTC"
        )
    connections = [s.health.snapshot() for s in runtime.map_sources.values()]
    connections += [s.health.snapshot() for s in runtime.kill_sources.values()]
    for connection in connections:
        if connection["state"] != "connected":
            reason = f"source {connection['name']}: {connection['state']}"
            if connection.get("last_error"):
                reason += f" ({connection['last_error']})"
            reasons.append(reason)
    return reasons


def _down(reasons: list[str]) -> bool:
    return any(not reason.startswith(("target ", "delivery: paused")) for reason in reasons)


def _clock(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


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
            dead = sorted(key for _tenant, key in self._runtime.dispatcher.dead_targets)
            body = {
                "ready": False,
                # Degraded: the engine runs and delivers elsewhere, but something waits on an
                # operator (a dead target) or on Discord; down: it cannot do its job.
                "status": "down" if _down(reasons) else "degraded",
                "reasons": reasons,
                "dead_targets": dead,
            }
            return JSONResponse(body, status_code=503)
        return JSONResponse({"ready": True, "status": "ok", "reasons": [], "dead_targets": []})

    async def metrics(self, request: Request) -> Response:
        """Prometheus text exposition of the console's own registry."""
        return Response(self._runtime.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
