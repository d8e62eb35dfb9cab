"""Wanderer Notifier's web endpoints, next to ours, so existing uptime monitors keep working.

``GET /api/health`` answers as the notifier's does (``{"status": "ok", "timestamp": …}``, 200
while the process runs) and ``GET /api/status`` gives the notifier's extended status shape
(``tracking``, ``notifications``, ``processing``, ``performance``, ``websocket``, ``sse``,
``connections``, ``memory_detailed``, ``cache_stats``, ``gc_stats``, ``killmail_activity``,
``discord_health``), filled from the engine's own snapshot. Fields that describe the Elixir
runtime (BEAM processes, its schedulers) have no Python equivalent and are left out; everything a
monitor or a dashboard built for the notifier reads is there, with the same names and types.

Behind the same ``[server] enabled`` switch as the rest of the surface; like the notifier's,
they need no authentication and return nothing secret. ``/ready`` stays the readiness check that
says why (503 with reasons).

The status reads the outbox from the database. While the database does not answer (a PostgreSQL
restart or failover, a damaged SQLite file) ``/api/status`` is ``503`` with ``Retry-After``,
counted in ``wc_server_refusals_total{endpoint="other",reason="store"}`` and logged throttled
with the database's words, instead of a bare ``500`` and a traceback at every poll.
"""

from __future__ import annotations

import gc
import os
import resource
import time
from collections.abc import Mapping
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wanderer_console import __version__
from wanderer_console.domain.clock import iso_utc
from wanderer_console.server.ports import EngineSurface
from wanderer_console.server.refusals import Refusals
from wanderer_console.server.tenants import database_errors
from wanderer_console.telemetry.logging import redact

__all__ = ["NotifierEndpoints", "extended_status"]

_STORE_DOWN: Final = {
    "status": "error",
    "error": "the console's database did not answer; retry shortly (Retry-After); /ready says"
    " whether it is back",
}
_RETRY_AFTER: Final = "5"


def _count(values: Any, key: str | None = None) -> int:
    if not isinstance(values, Mapping):
        return 0
    if key is not None:
        return int(values.get(key, 0) or 0)
    return int(sum(v for v in values.values() if isinstance(v, int | float)))


def _rss_bytes() -> int:
    """Resident memory now (``/proc``), or the peak where ``/proc`` is missing."""
    try:
        with open(f"/proc/{os.getpid()}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def extended_status(snapshot: Mapping[str, Any], *, maps: list[str], now: float) -> dict[str, Any]:
    """The notifier's ``/api/status`` document from the engine's snapshot."""
    counters: Mapping[str, Any] = snapshot.get("counters") or {}
    delivered = counters.get("notifications_delivered") or {}
    received = counters.get("events_received") or {}
    failures = _count(counters.get("delivery_failures"))
    connections: list[Mapping[str, Any]] = list(snapshot.get("connections") or [])
    sockets = [c for c in connections if c.get("kind") == "killstream"]
    streams = [c for c in connections if c.get("kind") == "map_sse"]
    uptime = max(0.0, now - float(snapshot.get("started_at") or now))
    total = _count(delivered)
    last_activity = max(
        (float(c["last_event_at"]) for c in connections if c.get("last_event_at")), default=None
    )
    socket_up = [c for c in sockets if c.get("state") == "connected"]
    socket_since = min((float(c["since"]) for c in socket_up if c.get("since")), default=None)
    delivery: Mapping[str, Any] = snapshot.get("delivery") or {}
    targets: Mapping[str, Mapping[str, Any]] = delivery.get("targets") or {}
    dead = {key: t.get("disabled") for key, t in targets.items() if t.get("disabled")}
    last_error = next((t.get("last_error") for t in targets.values() if t.get("last_error")), None)
    tracking: Mapping[str, Mapping[str, int]] = snapshot.get("tracking") or {}
    outbox = counters.get("outbox") or {}
    return {
        "tracking": {
            "systems_count": sum(int(t.get("systems", 0)) for t in tracking.values()),
            "characters_count": sum(int(t.get("characters", 0)) for t in tracking.values()),
            "killmails_received": _count(received, "killstream") + _count(received, "r2z2"),
        },
        "notifications": {
            "total": total,
            "kills": _count(delivered, "kill"),
            "systems": _count(delivered, "system"),
            "characters": _count(delivered, "character"),
            "rallies": _count(delivered, "rally"),
        },
        "processing": {
            "events_received": _count(received),
            "duplicates_suppressed": _count(counters.get("duplicates_suppressed")),
            "invalid_events": _count(counters.get("invalid_events")),
            "queue_depth": int(snapshot.get("queue_depth") or 0),
            "outbox_pending": _count(outbox, "pending") + _count(outbox, "sending"),
        },
        "performance": {
            "success_rate": round(100.0 * total / (total + failures), 1)
            if total + failures
            else 100.0,
            "notification_rate": round(total / (uptime / 60.0), 2) if uptime > 0 else 0.0,
            "uptime_seconds": int(uptime),
            "last_activity": iso_utc(last_activity),
        },
        "websocket": {
            "client_alive": bool(socket_up),
            "connection_status": "connected"
            if socket_up and len(socket_up) == len(sockets)
            else ("disconnected" if not socket_up else "degraded"),
            "connection_uptime_seconds": int(now - socket_since) if socket_since else 0,
            "sockets": len(sockets),
        },
        "sse": {
            # API (hosted) mode is the notifier's multi-map mode, whatever the count.
            "mode": "multi_map" if len(maps) > 1 or "hosted" in snapshot else "env_var",
            "map_count": len(maps),
            "clients_running": len(streams),
            "connected": sum(1 for c in streams if c.get("state") == "connected"),
            "disconnected": sum(1 for c in streams if c.get("state") != "connected"),
            "maps": [
                {
                    "map": str(c.get("name", "")).removeprefix("sse:").removeprefix("map:"),
                    "status": c.get("state"),
                    "events": c.get("events", 0),
                    "last_event_at": iso_utc(c.get("last_event_at")),
                }
                for c in streams
            ],
        },
        "connections": [
            {
                "name": c.get("name"),
                "kind": c.get("kind"),
                "status": c.get("state"),
                "quality": c.get("quality"),
                "reconnects": c.get("reconnects", 0),
                "last_error": c.get("last_error"),
            }
            for c in connections
        ],
        "memory_detailed": {"rss_bytes": _rss_bytes()},
        "cache_stats": {
            key: value
            for key, value in (snapshot.get("cache") or {}).items()
            if key in ("hits", "misses", "hit_ratio", "inflight")
        },
        "gc_stats": {"collections": [s.get("collections", 0) for s in gc.get_stats()]},
        "killmail_activity": {
            "received": _count(received, "killstream") + _count(received, "r2z2"),
            "notified": _count(delivered, "kill"),
            "duplicates": _count(counters.get("duplicates_suppressed"), "killstream"),
        },
        "discord_health": {
            "healthy": not dead and not delivery.get("store_fault"),
            "total_successes": total,
            "total_failures": failures,
            "dead_targets": dead,
            "last_failure_reason": last_error,
            "paused": bool(delivery.get("paused")),
            "global_pause_until": iso_utc(delivery.get("global_pause_until")),
        },
        "version": __version__,
    }


class NotifierEndpoints:
    """``GET /api/health`` and ``GET /api/status`` as Wanderer Notifier serves them."""

    def __init__(self, engine: EngineSurface, refusals: Refusals | None = None) -> None:
        self._engine = engine
        self._refusals = refusals or Refusals(engine.metrics)
        self._store_errors = database_errors(engine.database)

    async def health(self, request: Request) -> Response:
        """The notifier's liveness answer: 200 while the process runs."""
        return JSONResponse({"status": "ok", "timestamp": iso_utc(time.time())})

    async def status(self, request: Request) -> Response:
        """The notifier's extended status, from the engine's snapshot (503 while the database
        does not answer: the snapshot reads the outbox)."""
        engine = self._engine
        try:
            snapshot = engine.snapshot()
        except self._store_errors as exc:
            # The database's words go to the log (redacted), not to an unauthenticated caller.
            error = redact(str(exc) or type(exc).__name__)[:300]
            self._refusals.refused(request, "other", "store", 503, error=error)
            return JSONResponse(_STORE_DOWN, status_code=503, headers={"retry-after": _RETRY_AFTER})
        document = extended_status(snapshot, maps=list(engine.settings.maps), now=time.time())
        return JSONResponse(document)
