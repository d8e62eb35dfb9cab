"""The composition root: builds every part from the settings, supervises tasks, snapshots state.

:class:`Runtime` owns the store, the sources (one SSE client per map, the killstream sockets), the
pipeline and the dispatcher. A task that fails is logged, counted and restarted with backoff; it
never takes the process down. The UI and the HTTP surface read :meth:`Runtime.snapshot`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wanderer_console import __version__
from wanderer_console.config.model import Settings
from wanderer_console.config.paths import default_data_dir
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.config.routing import route_credentials
from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.enrich.kills import CacheSystemInfo, KillEnricher
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import resolve_settings
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.ingest.fallback import BackfillPolicy, FallbackPoller
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.killstream import KillstreamSource
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient
from wanderer_console.ingest.map_sse import MapSseSource
from wanderer_console.ingest.r2z2 import R2z2Source, R2z2Timing
from wanderer_console.ingest.recent import RecentIds
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.map_updates import MapHooks
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.server.app import HttpSurface
from wanderer_console.server.serve import ServerStartError
from wanderer_console.store.integrity import check_file
from wanderer_console.store.lock import DataDirLock
from wanderer_console.store.sqlite import SqliteStore, StoreWriteError
from wanderer_console.supervisor import TaskSupervisor
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["Runtime", "default_data_dir", "delivery_policy"]

log = logging.getLogger(__name__)


def delivery_policy(settings: Settings) -> DeliveryPolicy:
    """The dispatcher's retry and stop rules from the settings."""
    return DeliveryPolicy(
        max_age=settings.discord.max_delivery_age_hours * 3600,
        uncertain_window=settings.discord.uncertain_retry_seconds,
        stop_grace=settings.console.stop_grace_seconds,
    )


class Runtime:
    """Everything the console runs, in one event loop."""

    def __init__(
        self,
        settings: Settings,
        *,
        data_dir: Path | None = None,
        queue_size: int = 10_000,
        config_path: Path | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        """The config file watched for hot reload (None: no watching)."""
        self.reloader: ConfigReloader | None = None
        self.data_dir = data_dir or settings.console.data_dir or default_data_dir()
        self.metrics = Metrics()
        # One engine per data directory, taken before anything is opened (raises
        # DataDirInUseError naming the holder); the kernel drops it however the process ends.
        self.lock = DataDirLock(self.data_dir)
        self.lock.acquire()
        try:
            self.store = SqliteStore(
                self.data_dir / "wanderer-console.db", on_write_error=self._write_failed
            )
        except BaseException:
            self.lock.release()
            raise
        self.metrics.store_writable.set_function(lambda: float(self.store.write_fault is None))
        self.index = TrackingIndex()
        # Rallies first, then kills in tracked systems, then the rest; a full queue pauses sources.
        self.queue: BoundedPriorityQueue[Item] = item_queue(
            queue_size, self.index, registry=self.metrics.registry
        )
        # Where every source puts what it read. A full queue blocks the source: it stops
        # reading instead of dropping. (The queue's own method: no wrapper per event.)
        self._sink = self.queue.put
        self.recent_kills = RecentIds()
        """Killmail ids the sockets saw lately: repeats are dropped before parsing."""
        self.pipeline_batch = 256
        """Most events the pipeline commits in one transaction."""
        self.sse_resync_after = 540.0
        """Seconds without the map stream after which a reconnect reloads the map over REST."""
        self.started_at = time.time()
        self.integrity_interval = 6 * 3600.0
        """Seconds between two full integrity checks of the database."""
        self.integrity_problem: str | None = None
        """Damage the last periodic check found (``None``: none found)."""
        self._tasks = TaskSupervisor(self.metrics)
        self._http: dict[str, HttpClient] = {}
        self._rest: dict[str, MapRestClient] = {}
        self.map_sources: dict[str, MapSseSource] = {}
        self.kill_sources: dict[str, KillstreamSource] = {}
        self.r2z2: R2z2Source | None = None
        """The zKillboard R2Z2 poller, while ``[r2z2] enabled``."""
        self.fallback: FallbackPoller | None = None
        """REST polling for the tracked systems while the killstream socket is down."""
        self.r2z2_timing = R2z2Timing()
        """The R2Z2 poller's waits (PROTOCOLS.md §8.2); tests shrink them before :meth:`start`."""
        self.ready = asyncio.Event()
        self.http: HttpSurface | None = None
        """The HTTP surface, while ``[server] enabled`` and started."""
        self.http_error: str | None = None
        """Why the HTTP surface could not start, if it could not."""
        discord_http = self._client("discord", timeout=settings.discord.request_timeout_seconds)
        self.sender = DiscordSender(
            discord_http, api_url=settings.discord.api_url, user_agent=settings.esi.user_agent
        )
        self.dispatcher = Dispatcher(
            self.store,
            self.sender,
            self.metrics,
            self.resolved_targets,
            dry_run=lambda: self.settings.console.dry_run,
            channel_per_minute=settings.discord.channel_messages_per_minute,
            policy=delivery_policy(settings),
        )
        # Names through one cache: ESI when enabled; otherwise the cache only answers from what
        # was persisted or put into it, and kills render with the names they carry.
        self.esi: EsiClient | None = None
        if settings.esi.enabled:
            self.esi = EsiClient(self._client("esi"), settings.esi.url, settings.esi.user_agent)
        self.cache = CacheFacade(self.esi, registry=self.metrics.registry)
        self.engine = Engine(
            settings,
            self.store,
            self.index,
            self.metrics,
            hooks={},
            on_queued=self.dispatcher.wake,
            on_tracking_changed=self._tracking_changed,
            system_info=CacheSystemInfo(self.cache),
            enricher=KillEnricher(self.cache),
        )

    # -- building --------------------------------------------------------------------------------

    def _client(self, service: str, *, timeout: float | None = None) -> HttpClient:
        """The shared client of a service, with its retry, rate-limit and breaker chain."""
        client = self._http.get(service)
        if client is None:
            overrides = self.settings.http.get(service)
            http_settings = resolve_settings(service, overrides)
            if timeout is not None:
                http_settings = http_settings.model_copy(update={"timeout_seconds": timeout})
            client = self._http[service] = build_client(
                service,
                http_settings,
                metrics=self.metrics,
                headers={"user-agent": self.settings.esi.user_agent},
            )
        return client

    def resolved_targets(self) -> Mapping[tuple[str, str], ResolvedTarget]:
        """Every configured target by ``(tenant, key)``, with its credential."""
        return {
            key: ResolvedTarget(target, token)
            for key, (target, token) in route_credentials(self.settings).items()
        }

    def _write_failed(self, operation: str) -> None:
        self.metrics.store_write_errors.labels(operation=operation).inc()

    def apply_settings(self, settings: Settings) -> None:
        """Make a reloaded configuration live in the parts that captured values at start."""
        self.settings = settings
        self.engine.settings = settings
        self.dispatcher.channel_per_minute = settings.discord.channel_messages_per_minute
        self.dispatcher.policy = delivery_policy(settings)
        self.dispatcher.wake()  # a changed target may revive a dead one

    def _tracking_changed(self) -> None:
        for source in self.kill_sources.values():
            source.refresh()
        self._ensure_kill_sources()

    async def _load_map(self, tenant: str) -> None:
        rest = self._rest[tenant]
        systems = await rest.systems()
        characters = await rest.tracked_characters()
        self.index.replace(tenant, systems, characters)
        log.info(
            "map loaded",
            extra={
                "ctx": {"tenant": tenant, "systems": len(systems), "characters": len(characters)}
            },
        )
        self._tracking_changed()
        if self.esi is not None:
            self._tasks.spawn(f"cache:warm:{tenant}", functools.partial(self._warm_cache, tenant))

    async def _warm_cache(self, tenant: str) -> None:
        """Load the names a map's notifications will need before the first kill arrives."""
        tracking = self.index.map(tenant)
        await self.cache.warm(list(tracking.characters), list(tracking.systems))
        self.cache.save_warm(self.store)

    async def _retention(self) -> None:
        """Hourly: drop events and finished notifications older than the retention period."""
        while True:
            cutoff = time.time() - self.settings.console.retention_days * 86_400
            events, notes = self.store.prune(cutoff)
            if events or notes:
                log.info(
                    "old records pruned",
                    extra={"ctx": {"events": events, "notifications": notes}},
                )
            await asyncio.sleep(3600)

    async def _integrity(self) -> None:
        """Every few hours: read the whole database to find damage before a write trips on it.

        A problem is kept in :attr:`integrity_problem` (``/ready`` reports it) and logged at
        ERROR with what to do; the check runs on its own read-only connection in a thread.
        """
        while True:
            await asyncio.sleep(self.integrity_interval)
            problem = await asyncio.to_thread(check_file, self.store.path)
            if problem != self.integrity_problem and problem is not None:
                log.error(
                    "database damaged; stop the console, restore the backup or run"
                    " `sqlite3 DB .recover`",
                    extra={"ctx": {"path": str(self.store.path), "problem": problem}},
                )
            self.integrity_problem = problem

    async def _persist_cache(self) -> None:
        """Keep a warm copy of the cache in the store, so a restart starts warm."""
        while True:
            await asyncio.sleep(600)
            self.cache.expire()
            self.cache.save_warm(self.store)

    async def _refresh_characters(self, tenant: str) -> None:
        try:
            characters = await self._rest[tenant].tracked_characters()
        except (MapApiError, TransportError) as exc:
            log.warning(
                "tracked characters refresh failed",
                extra={"ctx": {"tenant": tenant, "error": str(exc)}},
            )
            return
        tracking = self.index.map(tenant)
        for character in characters:
            if character.eve_id not in tracking.characters:
                self.index.put_character(tenant, character)

    def _ensure_kill_sources(self) -> None:
        ks = self.settings.killstream
        if not ks.enabled or not self._tasks:
            return
        wanted = {
            "systems": bool(self.index.all_system_ids()),
            "characters": bool(self.index.all_character_ids()),
        }
        for mode, needed in wanted.items():
            if needed and mode not in self.kill_sources:
                source = KillstreamSource(
                    mode,  # type: ignore[arg-type]
                    ks.websocket_url,
                    self.index.all_system_ids
                    if mode == "systems"
                    else self.index.all_character_ids,
                    self._sink,
                    self.metrics,
                    client_identifier=ks.client_identifier,
                    heartbeat_seconds=ks.heartbeat_seconds,
                    recent=self.recent_kills,
                    max_frame_bytes=ks.max_frame_bytes,
                )
                self.kill_sources[mode] = source
                self._tasks.spawn(f"killstream:{mode}", source.run)
        if "systems" in self.kill_sources and self.fallback is None:
            self.fallback = FallbackPoller(
                self._client("killstream"),
                ks.rest_url,
                self.index.all_system_ids,
                self._killstream_up,
                self._sink,
                self.metrics,
                after=ks.fallback_after_seconds,
                interval=ks.fallback_interval_seconds,
                # Every new join may follow a gap: backfill it, from the previous run's
                # watermark at the first join (restarts lose nothing).
                joins=self._killstream_joins,
                resume_from=self.engine.startup.kill_seen,
                mark_seen=self._killstream_seen,
                policy=BackfillPolicy(
                    overlap=ks.backfill_overlap_seconds,
                    max_age=self.settings.console.max_killmail_age_seconds,
                    limit=ks.backfill_limit_per_system,
                    timeout=ks.backfill_timeout_seconds,
                ),
            )
            self._tasks.spawn("killstream:fallback", self.fallback.run)

    def _killstream_up(self) -> bool:
        source = self.kill_sources.get("systems")
        return source is None or source.health.state is ConnectionState.CONNECTED

    def _killstream_joins(self) -> int:
        source = self.kill_sources.get("systems")
        return 0 if source is None else source.joins

    def _killstream_seen(self, at: float) -> None:
        # Kills still queued are not stored yet: move the watermark only when none wait (the
        # overlap covers the batch being written and frames not yet read).
        if self.queue.empty():
            # A store that cannot write keeps the older watermark: the next backfill reaches
            # further back, nothing is skipped (the write fault is reported by the store).
            with contextlib.suppress(StoreWriteError):
                self.engine.mark_stream_seen(at)

    def _start_r2z2(self) -> None:
        r2 = self.settings.r2z2
        if not r2.enabled or self.r2z2 is not None:
            return
        # A plain client: the poller owns every wait of the feed's etiquette (no retry layer).
        http = self._http["r2z2"] = HttpClient(
            "zkillboard", headers={"user-agent": r2.user_agent}, metrics=self.metrics
        )
        self.r2z2 = R2z2Source(
            http,
            self.store,
            self.index,
            self._sink,
            self.metrics,
            url=r2.url,
            user_agent=r2.user_agent,
            max_age_hours=r2.max_age_hours,
            timing=self.r2z2_timing,
        )
        self._tasks.spawn("r2z2", self.r2z2.run)

    # -- running ---------------------------------------------------------------------------------

    async def _pipeline(self) -> None:
        while True:
            # Take what is waiting (up to a bound) and commit it together: under load one
            # transaction serves hundreds of events; when idle a batch is a single event.
            batch = [await self.queue.get()]
            batch += self.queue.take_nowait(self.pipeline_batch - 1)
            try:
                await self.engine.process_batch(batch)
            except StoreWriteError:
                # The batch is kept: wait for the store instead of dropping it. The queue
                # fills meanwhile and pauses the sources, so nothing read is lost.
                await self._retry_writes()
            finally:
                self.queue.task_done(len(batch))

    async def _retry_writes(self) -> None:
        """Write the kept batch once the store writes again (probing at most every 5 s)."""
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                self.engine.flush_writes()
            except StoreWriteError:
                delay = min(5.0, delay * 2)
                continue
            return

    async def _map_task(self, tenant: str) -> None:
        backoff = Backoff(1.0, 60.0)
        while True:
            try:
                await self._load_map(tenant)
                break
            except (MapApiError, TransportError) as exc:
                source = self.map_sources[tenant]
                source.health.last_error = f"initial load failed: {exc}"
                log.warning(
                    "map load failed; retrying",
                    extra={"ctx": {"tenant": tenant, "error": str(exc)}},
                )
                await asyncio.sleep(backoff.next_delay())
        await self.map_sources[tenant].run()

    async def start(self) -> None:
        """Start every task; returns at once (see :meth:`wait_ready`)."""
        loaded = self.cache.load_warm(self.store)
        if loaded:
            log.info("name cache restored", extra={"ctx": {"entries": loaded}})
        self._tasks.spawn("pipeline", self._pipeline)
        self._tasks.spawn("dispatcher", self.dispatcher.run)
        self._tasks.spawn("cache:persist", self._persist_cache)
        self._tasks.spawn("retention", self._retention)
        self._tasks.spawn("integrity", self._integrity)
        if self.config_path is not None:
            self.reloader = ConfigReloader(self, self.config_path)
            self._tasks.spawn("config-watch", self.reloader.run)
        for tenant, map_settings in self.settings.maps.items():
            if not map_settings.enabled:
                continue
            http = self._client("map")
            self._rest[tenant] = rest = MapRestClient(http, map_settings)
            self.engine.set_hooks(
                tenant,
                MapHooks(rest.static_info, functools.partial(self._refresh_characters, tenant)),
            )
            self.map_sources[tenant] = MapSseSource(
                tenant,
                map_settings,
                http,
                self.store,
                self._sink,
                self.metrics,
                on_resync=functools.partial(self._load_map, tenant),
                resync_after=self.sse_resync_after,
            )
            self._tasks.spawn(f"map:{tenant}", functools.partial(self._map_task, tenant))
        self._ensure_kill_sources()
        self._start_r2z2()
        await self._start_http()
        self.ready.set()
        log.info(
            "wanderer console started",
            extra={
                "ctx": {
                    "version": __version__,
                    "maps": list(self.settings.maps),
                    "data_dir": str(self.data_dir),
                    "dry_run": self.settings.console.dry_run,
                }
            },
        )

    async def _start_http(self) -> None:
        server = self.settings.server
        if not server.enabled:
            return
        surface = HttpSurface(self, host=server.host, port=server.port)
        try:
            await surface.start()
        except ServerStartError as exc:
            # Notifications matter more than the HTTP surface: keep running, say why.
            surface.tenants.close()
            self.http_error = str(exc)
            self.metrics.errors.labels(component="http").inc()
            log.error("http server not started", extra={"ctx": {"error": str(exc)}})
            return
        self.http = surface

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait until the queue is processed and the outbox is empty (bounded by ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue.empty() and not self.store.outbox_depth():
                return
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Stop gracefully: sources first, then write what was read, then let the requests in
        flight finish (``console.stop_grace_seconds``), then close clients, store and lock."""
        self._tasks.stopping()
        if self.http is not None:
            await self.http.stop()
            self.http = None
        await self._tasks.stop(timeout=10.0, keep=("pipeline", "dispatcher"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.queue.join()  # what the sources read is decided and written
        await self.dispatcher.stop(self.settings.console.stop_grace_seconds)
        await self._tasks.stop(timeout=10.0)
        for client in self._http.values():
            await client.aclose()
        with contextlib.suppress(Exception):
            self.cache.save_warm(self.store)
        if self.reloader is not None:
            self.reloader.close()
        self.store.close()
        self.lock.release()
        log.info("wanderer console stopped")

    # -- views -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counters for the demo's closing JSON line."""
        m = self.metrics
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
            "outbox": self.store.outbox_counts(),
        }

    def snapshot(self) -> dict[str, Any]:
        """An immutable-by-copy view of the whole engine for the UI and the HTTP surface."""
        sources = [s.health.snapshot() for s in self.map_sources.values()]
        sources += [s.health.snapshot() for s in self.kill_sources.values()]
        sources += [s.health.snapshot() for s in (self.r2z2,) if s is not None]
        return {
            "version": __version__,
            "started_at": self.started_at,
            "uptime": time.time() - self.started_at,
            "connections": sources,
            "queue_depth": self.queue.qsize(),
            "queue": {
                "bound": self.queue.maxsize,
                "lanes": self.queue.depths(),
                "paused_sources": self.queue.paused_sources(),
                "paused_seconds": dict(self.queue.paused_seconds),
            },
            "delivery": self.dispatcher.snapshot(),
            "cache": self.cache.stats(),
            "breakers": {
                f"{name}:{host}": state
                for name, client in self._http.items()
                for host, state in client.breakers_snapshot().items()
            },
            "tracking": {
                tenant: {
                    "systems": len(self.index.map(tenant).systems),
                    "characters": len(self.index.map(tenant).characters),
                }
                for tenant in self.index.tenants()
            },
            "counters": self.summary(),
            "config": None if self.reloader is None else self.reloader.snapshot(),
        }
