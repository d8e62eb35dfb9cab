"""Liveness, readiness and Prometheus metrics endpoints.

``/health`` answers from the process alone (never the store or a source): its version, uptime,
a summary of the metrics registry (:func:`metrics_summary`) and the name cache's health.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wanderer_console import __version__
from wanderer_console.server.ports import EngineSurface
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["ALERTS_FIRING_METRIC", "HealthEndpoints", "metrics_summary", "readiness_problems"]

ALERTS_FIRING_METRIC = "wc_alert_firing"
"""The hook for the console's own alerts: a gauge per rule, 1 while it fires. ``/health`` sums it;
until an alerts component registers that gauge in the runtime's registry, the sum is 0."""


def metrics_summary(metrics: Metrics) -> dict[str, int]:
    """Events in, notifications out, outbox depth and alerts firing, read from the registry."""
    return {
        "events_in": int(metrics.total("wc_events_received_total")),
        "notifications_out": int(metrics.total("wc_notifications_delivered_total")),
        "outbox_depth": int(metrics.value("wc_outbox_pending")),
        "alerts_firing": int(metrics.total(ALERTS_FIRING_METRIC)),
    }


def _cache_brief(report: dict[str, Any]) -> dict[str, Any]:
    """What ``/health`` says of the name cache: its score, advice and memory."""
    return {
        "score": report.get("score"),
        "recommendations": report.get("recommendations", []),
        "memory_bytes": report.get("memory_bytes", {}).get("total", 0),
    }


def readiness_problems(engine: EngineSurface) -> list[str]:
    """Why the engine is not ready (empty when it is)."""
    return engine.readiness().reasons


class HealthEndpoints:
    """``GET /health``, ``GET /ready`` and ``GET /metrics`` over the engine."""

    def __init__(self, engine: EngineSurface) -> None:
        self._engine = engine

    async def health(self, request: Request) -> Response:
        """Liveness: the process and its event loop answer; version, uptime, metrics summary."""
        return JSONResponse(
            {
                "status": "ok",
                "version": __version__,
                "uptime_seconds": round(time.time() - self._engine.started_at, 3),
                "metrics": metrics_summary(self._engine.metrics),
                "cache": _cache_brief(self._engine.cache_report()),
            }
        )

    async def ready(self, request: Request) -> Response:
        """Readiness: 200 when the store and every source are up, else 503 with the reasons."""
        readiness = self._engine.readiness()
        body = {
            "ready": not readiness.reasons,
            "status": readiness.status,
            "reasons": readiness.reasons,
            "dead_targets": readiness.dead_targets,
        }
        if readiness.cluster is not None:
            body["cluster"] = readiness.cluster
        return JSONResponse(body, status_code=503 if readiness.reasons else 200)

    async def metrics(self, request: Request) -> Response:
        """Prometheus text exposition of the console's own registry."""
        return Response(self._engine.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
