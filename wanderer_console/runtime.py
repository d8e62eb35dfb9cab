"""The composition root: builds every part from the settings, starts and stops them in order.

:class:`Runtime` only wires: the store (behind the data directory's lock), the map feeds and
kill feeds (``ingest/``), the pipeline worker and engine (``pipeline/``), the dispatcher
(``delivery/``), upkeep (``store/maintenance.py``) and, when enabled, the HTTP surface over its
:class:`~wanderer_console.server.ports.EngineSurface`. Every long-running part is a supervised
task. The console reads :meth:`Runtime.snapshot`; ``/ready`` reads :meth:`Runtime.readiness`.

On PostgreSQL several engines may share the database: the maps are then leased
(:class:`~wanderer_console.cluster.MapLeases`), and a map's feed starts and stops with its lease
(:class:`_LeasedMaps`) instead of at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wanderer_console import __version__, views
from wanderer_console.cluster import MapLeases, instance_info
from wanderer_console.config.cache import CacheSettings
from wanderer_console.config.hosted import HostedMapsDiff, diff_maps
from wanderer_console.config.live import LiveSettings, apply_log_level
from wanderer_console.config.model import MapSettings, Settings
from wanderer_console.config.paths import default_data_dir
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.control.discord_bot import build_bot
from wanderer_console.control.local import LocalBackend
from wanderer_console.control.server import ControlEndpoint
from wanderer_console.delivery.dispatcher import build_dispatcher
from wanderer_console.delivery.hold import DeliveryHold, SharedPause
from wanderer_console.delivery.spill import ConfirmationSpill
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.cache_health import CacheHealth, keep_fresh
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.enrich.kills import CacheSystemInfo, KillEnricher
from wanderer_console.enrich.notable import NotableItems
from wanderer_console.enrich.persist import CacheSaver
from wanderer_console.enrich.recent_kills import RecentKills
from wanderer_console.eventloop import loop_name
from wanderer_console.http.pool import ClientPool
from wanderer_console.ingest.hosted import HostedMaps
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.kill_sources import KillSources
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.observe.alerts import AlertEngine
from wanderer_console.observe.measure import Measurer
from wanderer_console.observe.trends import TrendRecorder
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.map_updates import MapHooks
from wanderer_console.pipeline.priority import Pings, PrioritySystems
from wanderer_console.pipeline.queue import BoundedPriorityQueue, item_queue
from wanderer_console.pipeline.worker import PipelineWorker
from wanderer_console.server.app import HttpSurface, start_surface
from wanderer_console.server.ports import Readiness
from wanderer_console.store.base import DatabaseUrl, LeaseFence, LeaseGrant, StoreLocation
from wanderer_console.store.lock import open_owned
from wanderer_console.store.maintenance import Maintenance
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.supervisor import TaskSupervisor
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.metrics import Metrics
from wanderer_console.telemetry.statsd import StatsdExporter

__all__ = ["Runtime", "default_data_dir"]

log = logging.getLogger(__name__)

CACHE_SAVE_RESERVE = 64 * 1024 * 1024
"""Free bytes the name cache's saved copy never takes on the data directory's disk: the last
of it is kept for events and notifications."""


class Runtime:
    """Everything the engine runs, in one event loop (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        data_dir: Path | None = None,
        queue_size: int = 10_000,
        config_path: Path | None = None,
        span_exporter: object | None = None,
    ) -> None:
        self.live = live = LiveSettings(settings)  # read at use; derived values subscribe
        live.subscribe(apply_log_level)
        self.config_path = config_path
        """The config file watched for hot reload (None: no watching)."""
        self.reloader: ConfigReloader | None = None
        self.data_dir = data_dir or settings.console.data_dir or default_data_dir()
        self.metrics = metrics = Metrics()
        # One engine per data directory: its lock is taken before anything is opened (raises
        # DataDirInUseError naming the holder); the kernel drops it however the process ends.
        url = settings.store.url  # PostgreSQL when set, else SQLite in the data directory
        database = None if url is None else url.get_secret_value()
        self.lock, self.store = open_owned(self.data_dir, metrics, database)
        store = self.store
        self.started_at = time.time()
        self.ready = asyncio.Event()
        self.index = TrackingIndex()
        # Rallies first, then kills in tracked systems, then the rest; a full queue pauses sources.
        self.queue: BoundedPriorityQueue[Item] = item_queue(
            queue_size, self.index, registry=metrics.registry
        )
        self.sse_resync_after = 540.0
        """Seconds without the map stream after which a reconnect reloads the map over REST."""
        self._tasks = TaskSupervisor(metrics)
        # [http.*] and esi.user_agent shape clients once (declared Restart on the model).
        self.clients = ClientPool(settings.http.get, lambda: settings.esi.user_agent, metrics)
        self.http: HttpSurface | None = None
        """The HTTP surface, while ``[server] enabled`` and started."""
        self.http_error: str | None = None
        """Why the HTTP surface could not start, if it could not."""
        self._span_exporter = span_exporter
        """Replaces ``[tracing] exporter`` (tests: the SDK's in-memory exporter)."""
        self.tracing_error: str | None = None
        """Why tracing is off although ``[tracing] enabled`` asked for it."""
        self.tracing_flush_seconds = 5.0
        """How long a stop waits for the spans still to export (a collector down or slow)."""
        self.statsd: StatsdExporter | None = None
        """The StatsD exporter, while ``[statsd] address`` is set and the engine runs."""
        discord = self.clients.get("discord", timeout=settings.discord.request_timeout_seconds)
        # Several engines may share a PostgreSQL database: each map is then worked (read and
        # sent) by the engine holding its lease; on SQLite this engine works every map.
        shared = isinstance(store.path, DatabaseUrl)
        self._hosted_maps: dict[str, MapSettings] = {}
        self._file_maps = frozenset(k for k, m in settings.maps.items() if m.enabled)
        """The file's maps enabled at start (one added or enabled by a reload waits for a
        restart, on one engine or several)."""
        self.cluster = MapLeases(
            live,
            store,
            instance=instance_info(__version__),
            active=shared,
            eligible=self._leasable,
        )
        store.shared = shared
        gate = self.cluster if shared else None
        # Confirmations a stop cannot record are kept in a file written in full now, so that a
        # full disk at the stop cannot refuse them; the last stop's are applied first. What the
        # start says of them is held until the log ring is installed (announce, in start).
        self.spill = ConfirmationSpill.open(self.data_dir)
        self.dispatcher = build_dispatcher(
            store, metrics, discord, live, gate=gate, spill=self.spill
        )
        # An operator's pause outlives the process: restored before the dispatcher runs. On a
        # shared database it is the cluster's, read again at every heartbeat before leasing.
        cluster_pause = SharedPause(store, self.cluster.instance_id) if shared else None
        self.hold = DeliveryHold(self.dispatcher, self.data_dir, shared=cluster_pause)
        self.hold.restore()
        self.cluster.follow_pause(self.hold.follow)
        self.dispatcher.on_cluster_paused = self.hold.follow  # a claim found it first
        # The bot's gateway (slash commands, voice states, status), with a bot token and an
        # application id; the operators' priority systems, from the store.
        self.bot = build_bot(lambda: live.current, discord, metrics)
        self.gateway = None if self.bot is None else self.bot.gateway
        if self.bot is not None:
            live.subscribe(self.bot.on_settings)  # a new bot token restarts a rejected gateway
        self.priority = PrioritySystems(store)
        self.pings = pings = Pings(
            lambda: live.current, None if self.gateway is None else self.gateway.voice
        )
        # Names through one cache: ESI when enabled; otherwise the cache only answers from what
        # was persisted or put into it, and kills render with the names they carry.
        self.esi: EsiClient | None = None
        if settings.esi.enabled:
            esi, agent = self.clients.get("esi"), settings.esi.user_agent
            self.esi = EsiClient(esi, lambda: live.current.esi.url, agent)
        self.cache = CacheFacade(
            self.esi, maxsize=settings.esi.cache_entries, registry=metrics.registry
        )
        # The "Recent Kills" field of new-system notifications, from the killstream's REST API.
        self.recent_kills: RecentKills | None = None
        if settings.killstream.enabled and settings.killstream.recent_kills:
            self.recent_kills = RecentKills(
                self.cache, self.clients.get("killstream"), settings.killstream.rest_url
            )
        # Notable loot (Janice): needs the ESI killmail, so only with ESI on.
        self.notable: NotableItems | None = None
        if self.esi is not None:
            janice = self.clients.get("janice")
            self.notable = NotableItems(
                lambda: live.current.janice,
                self.cache,
                self.esi,
                janice,
                registry=metrics.registry,
            )
        self.cache_saver = CacheSaver(self.cache, store, room=self._room_for_cache)
        self.kills = KillSources(
            live,
            self.index,
            store,
            self.queue.put,  # a full queue blocks the source: it stops reading, never drops
            metrics,
            client=self.clients.get,
            spawn=self._tasks.spawn,
            resume_from=None,
            mark_seen=lambda at: self.worker.stream_seen(at),
            checkpoints=self.queue,  # the R2Z2 cursor never passes a kill not yet written
        )
        self.engine = Engine(
            live,
            store,
            self.index,
            metrics,
            hooks={},
            on_queued=self.dispatcher.wake,
            on_tracking_changed=self.kills.tracking_changed,
            system_info=CacheSystemInfo(self.cache),
            enricher=KillEnricher(self.cache),
            priority=self.priority,
            pings=pings,
            voice_pings=lambda: pings.voice_enabled,
            notable=self.notable,
        )
        self.kills.resume_from = self.engine.startup.kill_seen
        self.maps = MapFeeds(
            self.index,
            store,
            self.queue.put,
            metrics,
            spawn=self._tasks.spawn,
            on_loaded=self._map_loaded,
            resync_after=lambda: self.sse_resync_after,
            load_concurrency=settings.console.map_load_concurrency,
            # A stream with no cursor keeps its connect's point, once what was queued is written.
            on_connected_point=lambda tenant, ident: self.worker.connected(tenant, ident),
            # A stream heard caught up keeps that point beside its cursor, for a restart's gap.
            on_heard=lambda tenant, at: self.worker.heard(tenant, at),
        )
        self.worker = PipelineWorker(self.queue, self.engine)
        self.cluster.bind(_LeasedMaps(self))
        # Hosted / API multi-map mode: maps pulled from the map server, applied by difference.
        self.hosted: HostedMaps | None = None
        if settings.hosted.enabled:
            map_client = functools.partial(self.clients.get, "map")
            # Each map's key is kept in the store by its map_id: a slug changed on the map
            # server restarts the map's feed under the same key (cursor, outbox, lease kept).
            self.hosted = hosted = HostedMaps(
                live, map_client, self.apply_hosted, metrics, keys=store
            )
            # A restart with a hosted map's notifications queued: they are its, not a removed
            # map's, until a refresh says otherwise (the outbox fails those of a map unlisted).
            self.dispatcher.maps_unknown = lambda: not hosted.applied
        self.maintenance = Maintenance(store, lambda: live.current.console.retention_days)
        self.trends = TrendRecorder(
            metrics,
            store,
            instance=self.cluster.instance_id if shared else "local",
            days=lambda: live.current.trends.days,
            retention_days=lambda: live.current.console.retention_days,
        )
        """Writes a minute of throughput, latency and errors to the store every minute."""
        self.cache_health = CacheHealth(self.cache)
        """The cache's score, recommendations and memory (``cache_health.read()``)."""
        # The console's own alerts ([alerts]); ``alerts.firing()`` is what fires now.
        self.alerts = AlertEngine(
            live, Measurer(self), store, metrics.registry, on_queued=self.dispatcher.wake
        )
        # The console's operations, in this process and for attached consoles (control.sock).
        self.console = LocalBackend(self)
        if self.bot is not None:
            self.bot.bind(self.console)
        self.control = ControlEndpoint(self.console, lambda: self.settings, self.data_dir, metrics)

    # -- wiring ------------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The running settings (:attr:`live`'s current)."""
        return self.live.current

    @property
    def file_settings(self) -> Settings:
        """The running settings without the hosted maps: what the configuration file (and the
        environment) configure, as a reload compares it."""
        if not self._hosted_maps:
            return self.settings
        maps = {k: m for k, m in self.settings.maps.items() if k not in self._hosted_maps}
        return self.settings.model_copy(update={"maps": maps})

    @property
    def hosted_map_keys(self) -> frozenset[str]:
        """The maps running from the map server's configuration (hosted mode), not the file's."""
        return frozenset(self._hosted_maps)

    def apply_settings(self, settings: Settings) -> None:
        """Make ``settings`` the running configuration (a reload, a console toggle); the hosted
        maps stay (a file reload knows only the file's maps)."""
        missing = {k: m for k, m in self._hosted_maps.items() if k not in settings.maps}
        if missing:
            settings = settings.model_copy(update={"maps": {**settings.maps, **missing}})
        self.live.replace(settings)

    async def _watch_pause(self) -> None:
        """Follow a pause or a resume of the cluster sent to another engine as it is written
        (its announcement wakes the lease heartbeat, which reads it)."""
        from wanderer_console.store.postgres import pause_changes  # PostgreSQL only

        url = self.store.path
        if isinstance(url, DatabaseUrl):
            await self.cluster.watch_pause(pause_changes(url))

    def _leasable(self, tenant: str) -> bool:
        """Whether an enabled map may be leased here: a hosted map, or a file map enabled at
        start (the maps an engine alone runs)."""
        return tenant in self._hosted_maps or tenant in self._file_maps

    async def apply_hosted(self, maps: dict[str, MapSettings]) -> HostedMapsDiff:
        """Make ``maps`` the hosted maps (:class:`~wanderer_console.ingest.hosted.HostedMaps`):
        start the new ones, stop the gone ones, restart a feed whose URL, slug or key changed,
        and swap the settings (channels, flags, filters and tokens apply live). Maps neither
        added nor removed keep their feed, stream and queue untouched.

        On a shared database the leases decide where a map runs: a restarted map held here
        restarts here, a removed one held here is released, and the added ones are shared out
        at the heartbeat that follows at once (:meth:`_apply_hosted_leased`)."""
        current = self.settings
        own = {key for key in current.maps if key not in self._hosted_maps}
        shadowed = sorted(key for key in maps if key in own)
        if shadowed:
            log.warning(
                "hosted maps ignored: the configuration file defines maps of the same key",
                extra={"ctx": {"maps": shadowed}},
            )
        wanted = {key: m for key, m in maps.items() if key not in own}
        diff = diff_maps(self._hosted_maps, wanted)
        if diff.empty:
            return diff
        if self.cluster.active:
            await self._apply_hosted_leased(own, wanted, diff)
            return diff
        for key in [*diff.removed, *diff.restarted]:
            await self.stop_map(key)
        self._swap_hosted(own, wanted)
        for key in [*diff.added, *diff.restarted]:
            if wanted[key].enabled:
                self.start_map(key)
        return diff

    def _swap_hosted(self, own: set[str], wanted: dict[str, MapSettings]) -> None:
        """Make ``wanted`` the hosted maps in the running settings (the file's maps stay)."""
        current = self.settings
        self._hosted_maps = dict(wanted)
        kept = {key: m for key, m in current.maps.items() if key in own}
        self.live.replace(current.model_copy(update={"maps": {**kept, **wanted}}))

    async def _apply_hosted_leased(
        self, own: set[str], wanted: dict[str, MapSettings], diff: HostedMapsDiff
    ) -> None:
        """:meth:`apply_hosted` on a shared database. With the heartbeat held off: the
        restarted maps held here stop, the settings are swapped, those still held (and enabled)
        start on their new URL, slug or key; then the maps held here that are gone (removed or
        disabled) are released, and the leases share the added ones out at once. A map's feed
        never starts here without its lease."""
        async with self.cluster.changing():
            held = set(self.cluster.owned())
            for key in diff.restarted:
                if key in held:
                    await self.stop_map(key)
            self._swap_hosted(own, wanted)
            working = self.cluster.tenants()  # a lease lost or released meanwhile is not
            for key in diff.restarted:
                if key in held and key in working and wanted[key].enabled:
                    self.start_map(key)
        log.info(
            "hosted maps changed on a shared database; the leases share the new maps out at"
            " the next heartbeat",
            extra={
                "ctx": {
                    **diff.as_json(),
                    "held_here": self.cluster.owned(),
                    "instance": self.cluster.instance_id,
                }
            },
        )

    def _cache_settings(self) -> CacheSettings:
        return self.settings.cache

    def _tracked(self) -> tuple[set[int], set[int]]:
        """Every map's tracked pilots and systems (the cache keeps them pinned)."""
        characters: set[int] = set()
        systems: set[int] = set()
        for tenant in self.index.tenants():
            tracking = self.index.map(tenant)
            characters.update(tracking.characters)
            systems.update(tracking.systems)
        return characters, systems

    def _room_for_cache(self) -> bool:
        """Whether the name cache may be saved: the data directory's disk keeps at least
        ``CACHE_SAVE_RESERVE`` bytes free for events and notifications (PostgreSQL: always)."""
        location = self.store.path
        if not isinstance(location, Path):
            return True
        try:
            return shutil.disk_usage(location.parent).free >= CACHE_SAVE_RESERVE
        except OSError:
            return True

    def _map_loaded(self, tenant: str) -> None:
        self.kills.tracking_changed()
        if self.esi is not None and self.settings.cache.warm_on_load:
            tracking = self.index.map(tenant)
            warm = functools.partial(self.cache_saver.warm, tracking.characters, tracking.systems)
            self._tasks.spawn(f"cache:warm:{tenant}", warm)

    # -- running -----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every task; returns at once (:attr:`ready` is set when all are started).

        What the spill and the saved pause said when they were read (in the constructor) is
        logged once the log ring is installed; a start that fails before then says it anyway,
        on whatever handlers the engine's log has, or the operator never learns that delivery
        was paused or that confirmations were damaged."""
        try:
            await self._start()
        except BaseException:
            self._announce_start()
            raise

    def _announce_start(self) -> None:
        """Log what the saved pause and the spill said at start (each once)."""
        self.hold.announce()
        self.spill.announce()

    async def _start(self) -> None:
        self._start_tracing()
        loaded = self.cache.load_warm(self.store)
        if loaded:
            log.info("name cache restored", extra={"ctx": {"entries": loaded}})
        spawn = self._tasks.spawn
        spawn("pipeline", self.worker.run)
        fresh = functools.partial(keep_fresh, self.cache, self._tracked, self._cache_settings)
        spawn("cache:fresh", fresh)
        spawn("dispatcher", self.dispatcher.run)
        spawn("cache:persist", self.cache_saver.run)
        spawn("retention", self.maintenance.retention)
        spawn("integrity", self.maintenance.integrity)
        statsd = self.settings.statsd
        if statsd.address is not None:
            self.statsd = StatsdExporter(
                self.metrics,
                statsd.address,
                prefix=statsd.prefix,
                tags=statsd.tags,
                interval=statsd.interval_seconds,
                max_datagram_bytes=statsd.max_datagram_bytes,
            )
            spawn("statsd", self.statsd.run)
        self.alerts.restore()
        spawn("alerts", self.alerts.run)
        spawn("trends", self.trends.run)
        if self.config_path is not None:
            self.reloader = ConfigReloader(self, self.config_path, metrics=self.metrics)
            spawn("config-watch", self.reloader.run)
        if self.cluster.active:
            spawn("cluster", self.cluster.run)  # maps start as their leases are acquired
            spawn("cluster:pause-watch", self._watch_pause)
        else:
            for tenant, map_settings in self.settings.maps.items():
                if map_settings.enabled:
                    self.start_map(tenant)
        if self.hosted is not None:
            spawn("hosted", self.hosted.run)
        self.kills.started = True
        self.kills.ensure()
        if self.settings.r2z2.enabled:
            # A plain client: the poller owns every wait of the feed's etiquette (no retry layer).
            agent = self.settings.r2z2.user_agent
            self.kills.start_r2z2(self.clients.plain("r2z2", "zkillboard", user_agent=agent))
        if self.bot is not None:
            spawn("discord:commands", self.bot.register)
            spawn("discord:gateway", self.bot.gateway.run)
            spawn("discord:status", self.bot.status)
        self.http, self.http_error = await start_surface(self)
        self.console.install_log_ring()
        self._announce_start()
        await self.control.start()
        self.ready.set()
        log.info(
            "wanderer console started",
            extra={
                "ctx": {
                    "version": __version__,
                    "maps": list(self.settings.maps),
                    "data_dir": str(self.data_dir),
                    "dry_run": self.settings.console.dry_run,
                    "event_loop": loop_name(asyncio.get_running_loop()),
                }
            },
        )

    def _start_tracing(self) -> None:
        """Set tracing up from ``[tracing]`` (the opentelemetry packages are imported only
        now, and only when it is enabled); a reason it cannot is logged, never fatal."""
        config = self.settings.tracing
        if not config.enabled:
            return
        self.tracing_error = tracing.configure(
            enabled=True,
            sampling_ratio=config.sampling_ratio,
            exporter=config.exporter,
            service_name=config.service_name,
            span_exporter=self._span_exporter,
        )
        if self.tracing_error is None:
            log.info(
                "tracing on",
                extra={
                    "ctx": {"sampling_ratio": config.sampling_ratio, "exporter": config.exporter}
                },
            )
        else:
            log.error("tracing stays off", extra={"ctx": {"reason": self.tracing_error}})

    def start_map(self, tenant: str) -> None:
        """Start a map's feed (REST load, then its SSE stream from the stored cursor)."""
        rest = self.maps.start(tenant, self.settings.maps[tenant], self.clients.get("map"))
        refresh = functools.partial(self.maps.refresh_characters, tenant)
        recent = None if self.recent_kills is None else self.recent_kills.for_system
        self.engine.set_hooks(tenant, MapHooks(rest.static_info, refresh, recent))

    async def stop_map(self, tenant: str) -> None:
        """Stop a map's feed (its lease went elsewhere): its stream and backfill end, its
        tracking leaves the index (and the killstream subscription), its sends in flight finish
        within ``console.stop_grace_seconds``."""
        await self._tasks.cancel(f"map:{tenant}")
        await self._tasks.cancel(f"cluster:backfill:{tenant}")
        self.maps.stop(tenant)
        self.index.drop(tenant)
        self.kills.tracking_changed()
        await self.dispatcher.quiesce(tenant, self.settings.console.stop_grace_seconds)

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
        self.cluster.freeze()  # leases are renewed until the sends in flight are done
        await self.control.stop()  # attached consoles see the engine go, and reconnect later
        if self.http is not None:
            await self.http.stop()
            self.http = None
        # Trends last: their final minute counts what the drain and the grace period deliver.
        await self._tasks.stop(timeout=10.0, keep=("pipeline", "dispatcher", "cluster", "trends"))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self.queue.join()  # what the sources read is decided and written
        await self.dispatcher.stop(self.settings.console.stop_grace_seconds)
        await self._tasks.stop(timeout=10.0)
        self.cluster.leave()  # the other instances take this one's maps at their next look
        await self.cache.cancel_loads()  # shared lookups outlive the tasks that started them
        await self.clients.aclose()
        if self.store.write_fault is None and self._room_for_cache():
            with contextlib.suppress(Exception):
                await self.cache.save_changed(self.store)
        if self.reloader is not None:
            self.reloader.close()
        self.console.remove_log_ring()
        self.store.close()
        self.lock.release()
        if self.settings.tracing.enabled:
            # What was recorded is exported before the process ends, beside the loop and for
            # a bounded time (a collector down or slow), once the lock is released: a standby
            # or the next start never waits for the collector.
            await tracing.shutdown_within(self.tracing_flush_seconds)
        log.info("wanderer console stopped")

    # -- the engine as the HTTP surface sees it (server.ports.EngineSurface) ----------------------

    @property
    def database(self) -> StoreLocation:
        """The store's database: the SQLite file, or the PostgreSQL URL (prints masked)."""
        return self.store.path

    def outside_commits(self) -> int | None:
        """The store's count of other connections' commits (``None`` on PostgreSQL)."""
        return self.store.outside_commits()

    async def enqueue(self, item: Item) -> None:
        """Hand an accepted event to the pipeline (waits while the queue is full)."""
        await self.queue.put(item)

    def offer(self, items: Sequence[Item]) -> bool:
        """Queue all of ``items`` now if there is room for all of them; else none."""
        return self.queue.offer(items)

    def has_work_in_hand(self) -> bool:
        """An event is in the pipeline (put, not written yet) or a message is being delivered:
        the engine is not idle (the garbage collector waits for idle, see ``gcpolicy``)."""
        return not self.queue.idle() or self.dispatcher.delivering

    def works_map(self, tenant: str) -> bool:
        """True when this engine works map ``tenant`` now (alone: always; on a shared database:
        while it holds the map's lease)."""
        return not self.cluster.active or tenant in self.cluster.tenants()

    def map_generation(self, tenant: str) -> int:
        """The load of map ``tenant`` an event arriving now is stamped with."""
        return self.index.arrival(tenant)

    def readiness(self) -> Readiness:
        """Whether the engine can do its job now, and why not."""
        return views.readiness(self)

    def cache_report(self) -> dict[str, Any]:
        """The name cache's health (score, recommendations, memory), at most 5 s old."""
        return self.cache_health.read()

    # -- views -------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        """Counters for the demo's closing JSON line."""
        return views.summary(self.metrics, self.store)

    def snapshot(self) -> dict[str, Any]:
        """An immutable-by-copy view of the whole engine for the console."""
        return views.snapshot(self)


class _LeasedMaps:
    """What the runtime does as map leases come and go (several engines on one database)."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def start(self, tenant: str, grant: LeaseGrant, fence: LeaseFence) -> None:
        """A map's lease was acquired: settle what its previous holder left in flight, read its
        kills again, start its feed, and backfill its kills since that holder last heartbeat."""
        rt = self._rt
        rt.dispatcher.recover_orphans(tenant, fence)
        # Its routing as its last holder ran it (recorded per map) against ours: a target
        # changed meanwhile moves its backlog before the map's rows are read here.
        rt.dispatcher.adopt_routes(rt.cluster.carried(tenant))  # with _ops if it carries them
        rt.dispatcher.wake()  # the map's queued notifications are this instance's to send now
        rt.engine.forget_kills()
        rt.kills.forget_recent()
        rt.start_map(tenant)
        previous = grant.previous
        if previous is not None and previous.renewed_at is not None:
            since = previous.renewed_at
            backfill = functools.partial(self._backfill, tenant, since)
            rt._tasks.spawn(f"cluster:backfill:{tenant}", backfill)

    async def stop(self, tenant: str) -> None:
        """A map's lease was lost or is being released: stop working it here."""
        await self._rt.stop_map(tenant)

    def kept(self, fences: dict[str, LeaseFence]) -> None:
        """After each heartbeat: recover claims a fenced-off instance left on our maps, and keep
        the index to the maps held (a map event read before a map left may have touched it)."""
        rt = self._rt
        for tenant, fence in fences.items():
            rt.dispatcher.recover_orphans(tenant, fence)
        stray = [tenant for tenant in rt.index.tenants() if tenant not in fences]
        for tenant in stray:
            rt.index.drop(tenant)
        if stray:
            rt.kills.tracking_changed()

    def retire(self, tenant: str, fence: LeaseFence) -> None:
        """The map is no longer configured (the map server or the file dropped it) and its
        lease is about to be given back: its notifications still pending fail, as an engine
        alone fails those of a target no longer configured (else they would wait for ever: no
        engine leases a map it does not list). Under the lease, checked in the statement."""
        rt = self._rt
        error = "map no longer configured (wanderer-console outbox retry TARGET re-queues)"
        try:
            failed = rt.store.fail_pending(tenant, error=error, fence=fence)
        except StoreWriteError as exc:  # they wait, pending, for the map to come back
            log.warning(
                "notifications of a map no longer configured left pending",
                extra={"ctx": {"tenant": tenant, "error": str(exc.cause)}},
            )
            return
        if failed:
            rt.metrics.delivery_failures.labels(reason="unconfigured").inc(failed)
            log.warning(
                "notifications of a map no longer configured failed",
                extra={"ctx": {"tenant": tenant, "notifications": failed}},
            )

    async def _backfill(self, tenant: str, since: float) -> None:
        """Once the map is loaded and the killstream follows its systems, ask the REST API for
        the kills since the previous holder's last heartbeat (its gap)."""
        rt = self._rt
        if not rt.settings.killstream.enabled:
            return
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            if tenant in rt.index.tenants() and rt.kills.following(rt.index.map(tenant).systems):
                break
            await asyncio.sleep(0.2)
        systems = list(rt.index.map(tenant).systems) if tenant in rt.index.tenants() else []
        if not systems:
            return
        left = await rt.kills.backfill(systems, since)
        log.info(
            "kills of a map taken over backfilled",
            extra={
                "ctx": {
                    "tenant": tenant,
                    "since": round(since, 3),
                    "systems": len(systems),
                    "systems_left": None if left is None else len(left),
                }
            },
        )
