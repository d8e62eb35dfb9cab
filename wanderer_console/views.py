"""What the engine shows of itself: readiness, the snapshot the console reads, the summary.

Read-only views over the runtime's parts, built on demand (the console every second, ``/ready``
per request); nothing here changes state.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from wanderer_console import __version__
from wanderer_console.cluster import MapLeases
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.delivery.dispatcher import Dispatcher
from wanderer_console.delivery.hold import RESUME_HOW, DeliveryHold
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.cache_health import CacheHealth
from wanderer_console.http.pool import ClientPool
from wanderer_console.ingest.gateway import DiscordGateway
from wanderer_console.ingest.hosted import HostedMaps
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.kill_sources import KillSources
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.observe.alerts import AlertEngine
from wanderer_console.pipeline.queue import BoundedPriorityQueue
from wanderer_console.server.ports import Readiness
from wanderer_console.store.base import Store
from wanderer_console.store.maintenance import Maintenance
from wanderer_console.telemetry.logging import redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["EngineParts", "readiness", "snapshot", "summary"]


def _clock(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))


class EngineParts(Protocol):
    """The runtime's parts these views read (the runtime satisfies it)."""

    started_at: float
    ready: asyncio.Event
    metrics: Metrics
    store: Store
    index: TrackingIndex
    queue: BoundedPriorityQueue[Item]
    dispatcher: Dispatcher
    hold: DeliveryHold
    cache: CacheFacade
    cache_health: CacheHealth
    clients: ClientPool
    maps: MapFeeds
    kills: KillSources
    maintenance: Maintenance
    reloader: ConfigReloader | None
    cluster: MapLeases
    hosted: HostedMaps | None
    alerts: AlertEngine
    gateway: DiscordGateway | None


def readiness(parts: EngineParts) -> Readiness:
    """Why the engine is not ready: down (it cannot do its job) or degraded (something waits)."""
    store, dispatcher = parts.store, parts.dispatcher
    down: list[str] = []
    if not parts.ready.is_set():
        down.append("runtime: still starting")
    if not store.ping():
        down.append("store: database not reachable")
    problem = parts.maintenance.integrity_problem
    if problem is not None:
        down.append(
            f"store: database damaged ({problem}); stop, restore the backup (an SQLite file"
            " can also be salvaged with `sqlite3 DB .recover`; see the troubleshooting runbook)"
        )
    fault = store.write_fault
    if fault is not None:
        down.append(
            f"store: cannot write ({fault.reason}); delivery paused since"
            f" {_clock(fault.since)} UTC, {fault.failures} failed writes"
        )
    degraded: list[str] = []
    dead = dispatcher.dead_targets
    for (tenant, key), target in sorted(dead.items()):
        degraded.append(
            f"target {key} (map {tenant}): dead since {_clock(target.since)} UTC"
            f" ({target.reason}); its notifications wait: fix it or run"
            f" `wanderer-console outbox retry {key}`"
        )
    if dispatcher.paused:
        degraded.append(_operator_pause(parts.hold))
    if dispatcher.global_pause_until > time.time():
        degraded.append(
            f"delivery: paused by Discord until {_clock(dispatcher.global_pause_until)} UTC"
        )
    healths = [source.health for source in parts.maps.sources.values()]
    healths += [source.health for source in parts.kills.sockets.values()]
    for health in healths:
        connection = health.snapshot()
        if connection["state"] != "connected":
            reason = f"source {connection['name']}: {connection['state']}"
            if connection.get("last_error"):
                reason += f" ({connection['last_error']})"
            down.append(reason)
    gateway = parts.gateway
    if gateway is not None and gateway.health.state.value != "connected":
        # Slash commands and voice mentions wait; notifications still go out.
        state = gateway.fatal or gateway.health.last_error or gateway.health.state.value
        degraded.append(f"discord gateway: {state}")
    cluster = parts.cluster.snapshot()
    if cluster is not None and cluster["last_error"] is not None:
        down.append(
            f"cluster: lease heartbeat failing ({cluster['last_error']}); this instance sends"
            " nothing once its leases run out, the others take its maps over"
        )
    return Readiness(
        reasons=down + degraded,
        down=bool(down),
        # Each (map, target) mark once, naming its map: a webhook two maps share may be dead
        # for one of them only, and a bare key read as dead for every map posting to it.
        dead_targets=[{"map": tenant, "target": key} for tenant, key in sorted(dead)],
        cluster=None if cluster is None else _cluster_brief(cluster),
    )


def _operator_pause(hold: DeliveryHold) -> str:
    """What ``/ready`` says while an operator holds delivery: who, since when, whether a
    restart keeps it (on a shared database: that it is the cluster's), and how to resume."""
    pause = hold.pause
    if pause is None:
        return f"delivery: paused by an operator; notifications wait: {RESUME_HOW}"
    since = f" since {_clock(pause.since)} UTC" if pause.since else ""
    actor = redact(pause.actor)  # /ready answers anyone on the port: an error's words masked
    if pause.cluster:
        return (
            f"delivery: paused by {actor}{since} on every engine of this database (the"
            f" cluster's pause, kept in the database); notifications wait: {RESUME_HOW} on any"
            " engine"
        )
    kept = "kept across restarts" if pause.saved else "not saved: ends at the next restart"
    return f"delivery: paused by {actor}{since} ({kept}); notifications wait: {RESUME_HOW}"


def _operator_pause_view(parts: EngineParts) -> dict[str, Any]:
    """Who paused delivery, since when and whether a restart keeps it, for the console: what
    ``/ready`` says, so an operator attached to a paused engine need not ask it."""
    pause = parts.hold.pause if parts.dispatcher.paused else None
    if pause is None:
        return {
            "paused_by": None,
            "paused_since": None,
            "pause_saved": None,
            "pause_cluster": None,
        }
    return {
        "paused_by": redact(pause.actor),
        "paused_since": pause.since or None,
        "pause_saved": pause.saved,
        "pause_cluster": pause.cluster,
    }


def _cluster_brief(cluster: dict[str, Any]) -> dict[str, Any]:
    """What ``/ready`` says about the instances sharing the database."""
    return {
        "instance": cluster["instance_id"],
        "maps": cluster["maps"],
        "instances": [
            {"instance": row["instance_id"], "maps": row["maps"], "this": row["this"]}
            for row in cluster["instances"]
        ],
        "unowned": cluster["unowned"],
    }


def snapshot(parts: EngineParts) -> dict[str, Any]:
    """An immutable-by-copy view of the whole engine for the console."""
    sources: list[Any] = [*parts.maps.sources.values(), *parts.kills.sockets.values()]
    sources += [parts.kills.r2z2] if parts.kills.r2z2 is not None else []
    sources += [parts.gateway] if parts.gateway is not None else []
    queue = parts.queue
    return {
        "version": __version__,
        "started_at": parts.started_at,
        "uptime": time.time() - parts.started_at,
        "connections": [source.health.snapshot() for source in sources],
        "queue_depth": queue.qsize(),
        "queue": {
            "bound": queue.maxsize,
            "lanes": queue.depths(),
            "paused_sources": queue.paused_sources(),
            "paused_seconds": dict(queue.paused_seconds),
        },
        "delivery": {**parts.dispatcher.snapshot(), **_operator_pause_view(parts)},
        "cache": _cache(parts),
        "breakers": parts.clients.breakers(),
        "tracking": _tracking(parts.index),
        "counters": summary(parts.metrics, parts.store),
        "config": None if parts.reloader is None else parts.reloader.snapshot(),
        "alerts": parts.alerts.view(),
        # Only with several instances possible (PostgreSQL): an older console reads the rest.
        **({} if (cluster := parts.cluster.snapshot()) is None else {"cluster": cluster}),
        # Only in hosted mode: the maps pulled from the map server and the last refresh.
        **({} if parts.hosted is None else {"hosted": parts.hosted.snapshot()}),
    }


def summary(metrics: Metrics, store: Store) -> dict[str, Any]:
    """Counters for the demo's closing JSON line and the console's counters panel."""
    m = metrics
    # Each metric collected on its own: a whole-registry collection per figure costs
    # milliseconds, and the console reads this every second.
    return {
        "events_received": m.split(m.events_received, "source"),
        "notifications_queued": m.split(m.notifications_queued, "type"),
        "notifications_delivered": m.split(m.notifications_delivered, "type"),
        "duplicates_suppressed": m.split(m.events_duplicate, "source"),
        "invalid_events": m.split(m.events_invalid, "source"),
        "unknown_event_types": sum(m.split(m.events_unknown, "source").values()),
        "delivery_failures": m.split(m.delivery_failures, "reason"),
        "errors": sum(m.split(m.errors, "component").values()),
        "outbox": store.outbox_counts(),
    }


def _cache(parts: EngineParts) -> dict[str, Any]:
    stats = parts.cache.stats()
    return {**stats, "health": parts.cache_health.read(stats)}


def _tracking(index: TrackingIndex) -> dict[str, dict[str, int]]:
    return {
        tenant: {
            "systems": len(index.map(tenant).systems),
            "characters": len(index.map(tenant).characters),
        }
        for tenant in index.tenants()
    }
