"""The pipeline: dedup, tracking updates, rules and rendering of each event.

Sources put :class:`~wanderer_console.ingest.items.Item` objects on a bounded queue; the
pipeline takes what is waiting as a batch. The engine decides each item's notifications in
order; :class:`~wanderer_console.pipeline.writer.EventWriter` writes the batch's events, their
notifications and the stream cursors in one transaction, then the dispatcher is woken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final

from pydantic import ValidationError

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import Route, resolve_target
from wanderer_console.delivery import embeds
from wanderer_console.delivery.plain_text import plain_text
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import (
    MapEnvelope,
    UnknownEventType,
    parse_payload,
)
from wanderer_console.domain.notification import Notification, NotificationType
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.enrich.kills import KillEnricher
from wanderer_console.enrich.notable import NotableItems
from wanderer_console.ingest.items import CustomItem, Item, KillItem, MapEventItem
from wanderer_console.pipeline.custom import ROUTES as CUSTOM_ROUTES
from wanderer_console.pipeline.custom import render_custom
from wanderer_console.pipeline.kill_facts import KillFacts, RouteInfo, SystemInfo, TypeInfo
from wanderer_console.pipeline.map_updates import MapHooks, MapUpdates
from wanderer_console.pipeline.priority import Ping, PrioritySystems
from wanderer_console.pipeline.rules import (
    KillJudgement,
    flags_allow,
    is_priority_system,
    judge_kill,
)
from wanderer_console.pipeline.startup import (
    SEEN_CURSOR,
    StartupWindow,
    decode_seen,
    encode_seen,
    envelope_seconds,
    is_ulid,
    ulid_at,
    ulid_seconds,
)
from wanderer_console.pipeline.trackers import KillMessage, TrackerMatches, plan_kill_messages
from wanderer_console.pipeline.writer import EventWriter, OnQueued, settle
from wanderer_console.store.base import SHARED_TENANT, Store, StoredEvent
from wanderer_console.store.writes import unavailable
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.context import bind_event
from wanderer_console.telemetry.logging import redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["KILL_TENANT", "Engine"]

log = logging.getLogger(__name__)

KILL_TENANT = SHARED_TENANT
"""Killmails are shared by every map: they are stored once under this tenant id (``*``)."""

_UNTRACED: Final = contextlib.nullcontext()
FUTURE_ID_TOLERANCE: Final = 300.0
"""Seconds a map event id's time may be ahead of this clock and still become the stream's
resume cursor (the cursor keeps the greatest id: one from a server clock running ahead would
hold it, and a resume would skip every real id made after the clock was put right)."""

CONNECTED_MARGIN: Final = 10.0
"""Seconds before a ``connected`` frame's id that a stream which asked for no backfill resumes
from (:meth:`Engine.connected_point`): an event made just before the connect (its id older
than the frame's) may still be delivered live right after it, and must be backfilled if the
stream drops, or the process dies, before it is written."""


def _event_span(item: Item, trace: str) -> contextlib.AbstractContextManager[Any]:
    """The span of one event's way through the pipeline (dedup, rules, enrichment and the
    outbox write are its children), child of the span of the source that read it."""
    attributes: dict[str, str | int] = {"source": item.source}
    if isinstance(item, KillItem):
        attributes["killmail.id"] = item.killmail.killmail_id
    elif isinstance(item, CustomItem):
        attributes.update(tenant=item.tenant, **{"event.id": item.event_id})
    else:
        attributes.update(tenant=item.tenant, **{"event.id": item.envelope.id})
    return tracing.event_span("event.process", trace, attributes)


_READ_RETRY_FIRST: Final = 0.25
_READ_RETRY_MAX: Final = 5.0
"""Waits before an event whose store read failed is decided again (doubling up to the max)."""

_LOOK_UP_ROUNDS: Final = 4
"""Rounds of look-ups for one kill: one per kind of fact a clause can ask for (static info,
routes and positions, types) and one to find nothing more is asked."""


class Engine:
    """Turns items into stored events and outbox notifications."""

    def __init__(
        self,
        settings: Settings | Callable[[], Settings],
        store: Store,
        index: TrackingIndex,
        metrics: Metrics,
        *,
        hooks: dict[str, MapHooks] | None = None,
        on_queued: OnQueued = lambda _targets, _rows: None,
        on_tracking_changed: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        window: int = 50_000,
        system_info: SystemInfo | None = None,
        enricher: KillEnricher | None = None,
        priority: PrioritySystems | None = None,
        pings: Callable[[], Ping] | None = None,
        voice_pings: Callable[[], bool] = lambda: False,
        notable: NotableItems | None = None,
    ) -> None:
        # The running settings are read at every use: a reload (or a toggle) applies at once.
        self._settings = settings if callable(settings) else lambda: settings
        self._store = store
        self._index = index
        self._metrics = metrics
        self._hooks = hooks or {}
        self._clock = clock
        # What the previous run saw last decides what start-up suppression mutes as history.
        cursors = {t: ulid_seconds(store.get_cursor(f"sse:{t}")) for t in self.settings.maps}
        self.startup = StartupWindow(
            clock(),
            kill_seen=decode_seen(store.get_cursor(SEEN_CURSOR)),
            map_cursors={t: at for t, at in cursors.items() if at is not None},
        )
        """Start-up suppression: the window and what counts as history in it."""
        self._event_at: float | None = None  # the map event being decided (its own time)
        # (map, system) that gave no static info when the kill filters asked: when to ask again.
        self._static_failed: dict[tuple[str, int], float] = {}
        self._writer = EventWriter(store, metrics, on_queued=on_queued, window=window)
        self.map_updates = MapUpdates(
            self, index, self._hooks, on_tracking_changed=on_tracking_changed, clock=clock
        )
        """What each map event changes in tracking and what it notifies."""
        self.enricher = enricher
        """Resolves names, tickers and ship names a kill lacks (ESI through the cache)."""
        self.notable = notable
        """Notable dropped items through Janice (``[janice]``), asked once per notified kill."""
        self.system_info = system_info
        """Static universe look-ups for the kill filters (region, security, ship groups; routes
        and positions for the distance clauses when it is a :class:`RouteInfo`)."""
        self.tracker_matches = TrackerMatches(clock)
        """What each map's trackers matched (live kills only), for the console."""
        self.priority = priority
        """The operators' priority systems (the store's), beside each map's own lists."""
        self._pings = pings or (lambda: Ping(here=True))
        self.voice_pings = voice_pings
        """True while pings go to the people in voice (rallies ping them too then)."""

    @property
    def settings(self) -> Settings:
        """The settings in force now (``settings`` as given, or what its getter returns)."""
        return self._settings()

    def refused(self, reason: str) -> None:
        """Count a refused notification (added to the metric when the batch is written)."""
        self._writer.refused(reason)

    def set_hooks(self, tenant: str, hooks: MapHooks) -> None:
        """Give the engine a map's REST look-ups (static info, tracked characters)."""
        self._hooks[tenant] = hooks

    def suppressed(self, now: float | None = None) -> bool:
        """True during the start-up suppression window (at ``now``, by default the clock's).

        Inside it only history is muted (:mod:`~wanderer_console.pipeline.startup`).
        """
        at = self._clock() if now is None else now
        return self.startup.active(at, self.settings.console.startup_suppression_seconds)

    def kill_muted(self, km: Killmail, now: float) -> bool:
        """Start-up suppression mutes this kill: inside the window and older than the kill
        resume point (the previous run's last sight of the stream, less the overlap)."""
        return self.suppressed(now) and self.startup.kill_is_history(
            km.kill_time, self.settings.killstream.backfill_overlap_seconds
        )

    def forget_kills(self) -> None:
        """Forget which killmails were decided lately: a map was taken over from another
        instance, so a kill seen before for other maps may now notify it too (the event log
        and the outbox's unique keys keep every notification once)."""
        self._writer.forget(KILL_TENANT)

    def mark_stream_seen(self, at: float) -> None:
        """Record that the killstream was seen whole up to ``at`` (the next run's resume point).

        Called only with no gap left to backfill, so a crash never skips one.
        """
        self._store.set_cursor(SEEN_CURSOR, encode_seen(at))

    def connected_point(self, tenant: str, connected_id: str) -> str | None:
        """The resume point of a map stream that connected with no cursor (none stored, no
        backfill asked, so none pending): :data:`CONNECTED_MARGIN` before its ``connected``
        frame's id. A map that never sends an event has no event id to resume from; without
        this, the next connect (a restart, a feed restarted) started from "now", and what the
        map published meanwhile was never notified (the REST load notifies nothing).

        ``None`` for an id that is no ULID, or whose time is ahead of this clock by more than
        :data:`FUTURE_ID_TOLERANCE` (it would hold the cursor past every real id)."""
        at = ulid_seconds(connected_id)
        if at is None or self._from_the_future(tenant, connected_id, at, "stream's connected"):
            return None
        return ulid_at(at - CONNECTED_MARGIN)

    def _from_the_future(self, tenant: str, event_id: str, at: float, what: str) -> bool:
        """True (counted in ``sse:<map>:future_id``, logged) when the map server made
        ``event_id`` (its time ``at``) more than :data:`FUTURE_ID_TOLERANCE` ahead of this clock:
        it is then no resume cursor (it would hold the cursor past every real id)."""
        ahead = at - self._clock()
        if ahead <= FUTURE_ID_TOLERANCE:
            return False
        self._metrics.errors.labels(component=f"sse:{tenant}:future_id").inc()
        log.warning(
            f"map {what} id is from the future (the map server's clock runs ahead);"
            " not used as the stream's resume cursor",
            extra={"ctx": {"tenant": tenant, "event_id": event_id, "ahead_seconds": round(ahead)}},
        )
        return True

    def set_cursor(self, stream: str, value: str) -> None:
        """Move a stream's resume cursor to ``value`` (the store keeps the greatest)."""
        self._store.set_cursor(stream, value)

    # -- entry point -----------------------------------------------------------------------------

    async def process_batch(self, items: list[Item]) -> None:
        """Handle items in order and write them in one transaction (the pipeline's hot path).

        Decisions are made item by item as in :meth:`process`; the event log, outbox and cursor
        writes of the whole batch commit together, which costs one commit instead of one each.
        """
        with self._writer.batch():
            for item in items:
                await self.process(item)

    def flush_writes(self) -> None:
        """Write what a failed batch left pending (raises ``StoreWriteError`` while it cannot)."""
        self._writer.flush()

    @property
    def unwritten(self) -> int:
        """Events decided but not yet written (kept while the store cannot write)."""
        return self._writer.pending

    async def process(self, item: Item) -> bool:
        """Handle one item; return True when it was new. Never raises for bad input.

        Inside :meth:`process_batch` the answer is provisional until the batch is written.
        While it runs, the item's correlation id, tenant and source are bound for every log line.
        """
        # One coroutine per item on the hot path: the dispatch is inlined here.
        tenant = None if isinstance(item, KillItem) else item.tenant
        trace = item.trace_parent
        scope = _UNTRACED if trace is None else _event_span(item, trace)
        with bind_event(item.correlation_id, tenant=tenant, source=item.source), scope:
            delay = _READ_RETRY_FIRST
            while True:
                try:
                    if isinstance(item, KillItem):
                        # Synchronous unless names must be looked up: no coroutine per kill.
                        outcome = self._kill_now(item)
                        return await self._kill_after_names(item) if outcome is None else outcome
                    if isinstance(item, CustomItem):
                        return self._process_custom(item)
                    return await self._process_map_event(item)
                except Exception as exc:
                    if not unavailable(exc):
                        self._metrics.errors.labels(component="pipeline").inc()
                        log.exception(
                            "pipeline failed on one event; continuing",
                            extra={"ctx": {"source": item.source}},
                        )
                        return False
                    # The store did not answer a read (a map event is checked against the event
                    # log): not the event's fault. It waits, and is decided again; the queue
                    # fills meanwhile and holds the sources back, as when the store cannot write.
                    self._metrics.errors.labels(component="pipeline:store_read").inc()
                    log.warning(
                        "cannot read the store; the event waits and is decided again",
                        extra={
                            "ctx": {
                                "source": item.source,
                                "error": redact(f"{type(exc).__name__}: {exc}")[:300],
                                "retry_in_seconds": delay,
                            }
                        },
                    )
                    await asyncio.sleep(delay)
                    delay = min(_READ_RETRY_MAX, delay * 2)

    # -- kills -----------------------------------------------------------------------------------

    def _decide_kill(
        self, km: Killmail, *, ignore_age: bool = False, now: float | None = None
    ) -> KillJudgement:
        at = self._clock() if now is None else now
        if km.solar_system_name is None and self.enricher is not None:
            # An id-only killmail (R2Z2, ESI): priority systems listed by name know the system
            # by the name the enricher looked up.
            name = self.enricher.cache.peek_name(km.system_id)
            if name:
                km = km.model_copy(update={"solar_system_name": name})
        return judge_kill(
            km,
            settings=self.settings,
            index=self._index,
            now=datetime.fromtimestamp(at, UTC),
            suppressed=self.kill_muted(km, at),
            ignore_age=ignore_age,
            info=self.system_info,
            priority=self.priority,
        )

    def _needs_lookups(self, km: Killmail, judgement: KillJudgement) -> bool:
        """Names must be fetched (some tracker will post it) or a distance clause asked for a
        route or position not looked up yet."""
        facts = judgement.facts
        if (
            facts is not None
            and (facts.missing_routes or facts.missing_systems)
            and isinstance(self.system_info, RouteInfo)
        ):
            return True
        if facts is not None and facts.missing_static and self._static_to_ask(facts):
            return True
        if facts is not None and facts.missing_types and isinstance(self.system_info, TypeInfo):
            return True
        notifies = bool(judgement.decisions) or any(v.reason is None for v in judgement.trackers)
        if notifies and self.enricher is not None and not self.enricher.complete(km):
            return True
        # A map (its default tracker or a named one) will be told about it: its dropped items
        # are appraised first ([janice]).
        return notifies and self.notable is not None and self.notable.wanted(km)

    def _static_to_ask(self, facts: KillFacts) -> bool:
        """Some map tracking a system in ``facts.missing_static`` can still be asked for its
        static info."""
        now = self._clock()
        return any(
            tenant in self._hooks and self._static_failed.get((tenant, system_id), 0.0) <= now
            for system_id in facts.missing_static
            for tenant in self._index.maps_for_system(system_id)
        )

    def _kill_now(self, item: KillItem) -> bool | None:
        """Handle a kill without waiting (the hot path): True when new, False for a repeat;
        ``None`` when a map will be told about it and names must be looked up first (or a
        tracker's distance clause needs a route or a position)."""
        km = item.killmail
        event_id = f"kill:{km.killmail_id}"
        with tracing.span("dedup"):
            seen = self._writer.seen((KILL_TENANT, event_id))
        if seen:
            self._metrics.events_duplicate.labels(source=item.source).inc()
            return False
        now = self._clock()
        with tracing.span("rules"):
            judgement = self._decide_kill(km, now=now)
        if self._needs_lookups(km, judgement):
            return None
        notifications = self._render_kill(km, judgement, live=True)
        event = StoredEvent(KILL_TENANT, event_id, item.source, "killmail", now, item.raw)
        # Nothing else ran since the dedup check above: no need to look again.
        return self._writer.record(event, notifications, checked=True)

    async def _kill_after_names(self, item: KillItem) -> bool:
        """A kill some map will be told about, once its missing names (and the routes and
        positions its trackers asked for) are looked up (ESI).

        The rules run again afterwards: a toggle or a reload may have landed meanwhile; the
        dedup is checked again when it is recorded (a repeat may have been written meanwhile).
        """
        km = item.killmail
        with tracing.span("enrich"):
            await self.look_up(km)
        now = self._clock()
        with tracing.span("rules"):
            notifications = self._render_kill(km, self._decide_kill(km, now=now), live=True)
        event = StoredEvent(
            KILL_TENANT, f"kill:{km.killmail_id}", item.source, "killmail", now, item.raw
        )
        return self._writer.record(event, notifications)

    async def look_up(self, km: Killmail, *, ignore_age: bool = False) -> None:
        """Fetch what deciding and rendering ``km`` asked for and is not known yet: the map
        static info of its tracked system, the routes, positions and types its clauses need,
        the names it lacks and its notable items. Each is bounded and never raises (what
        failed stays unknown); the kill is then decided again. The live pipeline and the
        ``kill`` command share it, so a diagnosis sees what the engine sees.

        A clause list stops at its first clause that fails: a region clause that does not know
        the region yet hides the ship group clause after it. So the kill is decided again after
        each round, and what the next clause asks is fetched too (each id at most once).
        """
        info = self.system_info
        routes_info = info if isinstance(info, RouteInfo) else None
        types_info = info if isinstance(info, TypeInfo) else None
        static_asked: set[int] = set()
        routes_asked: set[tuple[int, int]] = set()
        systems_asked: set[int] = set()
        types_asked: set[int] = set()
        for _ in range(_LOOK_UP_ROUNDS):
            facts = self._decide_kill(km, ignore_age=ignore_age).facts
            if facts is None:
                break
            # A filter asked for the class, region or security of a tracked system whose map
            # static info is not loaded yet (systems loaded with the map have none).
            static = facts.missing_static - static_asked
            routes: set[tuple[int, int]] = set()
            systems: set[int] = set()
            types: set[int] = set()
            if routes_info is not None:
                routes = facts.missing_routes - routes_asked
                systems = facts.missing_systems - systems_asked
            if types_info is not None:
                # A ship or weapon group clause asked for types not looked up yet.
                types = facts.missing_types - types_asked
            if not (static or routes or systems or types):
                break
            static_asked |= static
            routes_asked |= routes
            systems_asked |= systems
            types_asked |= types
            for system_id in sorted(static):
                await self.map_updates.load_static_info(system_id, self._static_failed)
            if routes_info is not None and (routes or systems):
                await routes_info.prefetch(routes, systems)
            if types_info is not None and types:
                await types_info.prefetch_types(types)
        if self.enricher is not None and not self.enricher.complete(km):
            await self.enricher.prefetch(km)
        if self.notable is not None:
            await self.notable.prefetch(km)

    def kill_notifications(self, km: Killmail, *, ignore_age: bool = False) -> list[Notification]:
        """Rendered notifications for a kill (used live, by replay and by diagnostics)."""
        return self._render_kill(km, self._decide_kill(km, ignore_age=ignore_age))

    def judge(self, km: Killmail, *, ignore_age: bool = False) -> KillJudgement:
        """Every map's and tracker's verdict on a kill now (the ``kill`` command explains it)."""
        return self._decide_kill(km, ignore_age=ignore_age)

    def _render_kill(
        self, km: Killmail, judgement: KillJudgement, *, live: bool = False
    ) -> list[Notification]:
        """One notification per map and target (:func:`plan_kill_messages`); ``live`` counts
        the trackers' matches."""
        for refusal in judgement.refusals:
            self._writer.refused(refusal.reason)
        settings = self.settings
        out: list[Notification] = []
        plans = plan_kill_messages(
            km.killmail_id, judgement, settings, lambda: self._writer.refused("no_target")
        )
        if not plans:
            return out
        # The same for every map a kill notifies (a popular system's kill: hundreds of maps).
        names = self.enricher.names(km) if self.enricher else embeds.Names()
        notable = self.notable.peek(km) if self.notable else ()
        story = embeds.kill_story(km, names, notable)
        # Maps whose message differs only in its footer's map name share one build (its limits
        # checked once): rendering every map's whole message was most of a large fan-out's
        # time before its first request.
        built: dict[tuple[Any, ...], embeds.MessageTemplate] = {}
        quiet = Ping()
        loud: Ping | None = None  # asked once a kill (the voice roster), when a map pings
        for plan in plans:
            map_settings = settings.maps[plan.tenant]
            system = self._index.map(plan.tenant).systems.get(km.system_id)
            # A system-kill message (or one only trackers make) titles the map's system name.
            routed = plan.decision is None or plan.decision.route == "system_kill"
            custom = system.display_name if system and routed else None
            system_name = (system.name if system else None) or km.solar_system_name
            # The default tracker's ping (a priority system, the fallback) reaches the people in
            # voice with voice mentions on; a tracker's own ping = "here" stays @here.
            own = plan.decision is not None and plan.decision.mention_here
            if own:
                if loud is None:
                    loud = self.ping()
                ping = loud
            else:
                ping = quiet
            tracker_here = any(t.ping == "here" for t in plan.trackers)
            role_mentions = tuple(plan.role_mentions)
            users = tuple(ping.users)
            here = ping.here or tracker_here
            shape = (
                plan.role,
                system_name,
                custom,
                plan.color,
                plan.content,
                role_mentions,
                here,
                plan.mention_everyone,
                users,
            )
            template = built.get(shape)
            body = (
                None
                if template is None
                else template.with_footer(embeds.kill_footer(km, map_settings.name)["text"])
            )
            if body is None:
                ctx = embeds.KillContext(
                    map_name=map_settings.name,
                    role=plan.role,
                    system_name=system_name,
                    custom_system_name=custom,
                    names=names,
                    notable_items=notable,
                )
                embed = embeds.render_kill(km, ctx, story)
                if plan.color is not None:
                    embed["color"] = plan.color
                template = embeds.build_template(
                    [embed],
                    content=plan.content,
                    username=settings.discord.username,
                    role_mentions=role_mentions,
                    mention_here=here,
                    mention_everyone=plan.mention_everyone,
                    user_mentions=users,
                )
                built.setdefault(shape, template)
                body = template.body
            if map_settings.discord.text_only and self._kill_route(plan) in (
                map_settings.discord.text_only
            ):
                body = plain_text(body)
            out.append(
                Notification(plan.tenant, NotificationType.KILL, plan.dedup_key, plan.target, body)
            )
            if live:
                self.tracker_matches.record(plan.tenant, plan.tracker_names)
        return out

    def _kill_route(self, plan: KillMessage) -> Route | None:
        """The kill route a message posts through (for ``discord.text_only``): the default
        tracker's, else the system-kill route when named trackers post where it does."""
        if plan.decision is not None:
            return plan.decision.route
        system_kill = resolve_target(self.settings, plan.tenant, "system_kill")
        return "system_kill" if system_kill is not None and system_kill == plan.target else None

    def ping(self) -> Ping:
        """Whom a pinging notification reaches now (voice participants, else ``@here``)."""
        return self._pings()

    def is_priority(self, tenant: str, system_id: int, names: list[str | None]) -> bool:
        """The system is a priority one for ``tenant``: the map's lists or the operators'."""
        map_settings = self.settings.maps.get(tenant)
        if map_settings is not None and is_priority_system(map_settings.filters, system_id, names):
            return True
        return self.priority is not None and self.priority.matches(system_id, names)

    def notification(
        self,
        tenant: str,
        kind: NotificationType,
        route: Route,
        dedup_key: str,
        body: dict[str, Any],
    ) -> Notification | None:
        """A notification to the route's configured target; ``None`` (counted) without one."""
        target = resolve_target(self.settings, tenant, route)
        if target is None:
            self._writer.refused("no_target")
            return None
        if route in self.settings.maps[tenant].discord.text_only:
            body = plain_text(body)
        return Notification(tenant, kind, dedup_key, target, body)

    # -- custom events (ingest API) --------------------------------------------------------------

    def _process_custom(self, item: CustomItem) -> bool:
        """Store a posted event and notify through the tenant's routing; resolve ``item.done``."""
        try:
            return self._custom(item)
        except BaseException as exc:
            settle(item.done, RuntimeError(f"pipeline failed: {type(exc).__name__}"))
            raise

    def _custom(self, item: CustomItem) -> bool:
        key = (item.tenant, item.event_id)
        # An id stored before the window is found by the insert itself (``ON CONFLICT DO
        # NOTHING``: not new, no notification written, the caller told "duplicate"), so the
        # store is not asked first: that was a query per posted event for the rare repeat.
        with tracing.span("dedup"):
            seen = self._writer.seen(key)
        if seen:
            self._metrics.events_duplicate.labels(source=item.source).inc()
            self._writer.duplicate(key, item.done)  # once the first copy is written
            return False
        event = StoredEvent(
            item.tenant,
            item.event_id,
            item.source,
            "custom",
            self._clock(),
            item.raw,
            item.schema_version,
        )
        with tracing.span("rules"):
            notifications = self.custom_notifications(item)
        return self._writer.record(event, notifications, done=item.done, checked=True)

    def custom_notifications(self, item: CustomItem) -> list[Notification]:
        """A posted event's notification, if its map's switches let it through (used live and
        by replay). Posted on purpose by another tool: start-up suppression does not apply.

        A tenant with no configured map (removed, or added without one) has nowhere to send:
        counted as ``no_map``, as every other notification stopped before Discord is."""
        kind = NotificationType(item.notification_type)
        map_settings = self.settings.maps.get(item.tenant)
        if map_settings is None:
            self._writer.refused("no_map")
            return []
        if not self.allowed(item.tenant, kind, suppressible=False):
            return []
        body = render_custom(
            item, map_name=map_settings.name, username=self.settings.discord.username
        )
        notification = self.notification(
            item.tenant, kind, CUSTOM_ROUTES[kind], f"custom:{item.event_id}", body
        )
        return [notification] if notification else []

    # -- map events ------------------------------------------------------------------------------

    async def _process_map_event(self, item: MapEventItem) -> bool:
        envelope = item.envelope
        key = (item.tenant, envelope.id)
        cursor = None
        if item.source.startswith("sse:"):
            if is_ulid(envelope.id):
                at = ulid_seconds(envelope.id) or 0.0
                if not self._from_the_future(item.tenant, envelope.id, at, "event"):
                    cursor = (f"sse:{item.tenant}", envelope.id)
            else:
                # The cursor keeps the greatest value: a malformed id (a lower-case one sorts
                # after every ULID) would hold it for good, and no reconnect would resume.
                log.warning(
                    "map event id is not a ULID; not used as the stream's resume cursor",
                    extra={"ctx": {"tenant": item.tenant, "event_id": envelope.id}},
                )
        with tracing.span("dedup"):
            seen = self._writer.seen(key)
            stored = not seen and self._store.has_event(item.tenant, envelope.id)
        if seen:
            if cursor is not None:
                self._writer.advance(cursor)
            self._metrics.events_duplicate.labels(source=item.source).inc()
            return False
        if stored:
            self._writer.remember(key)
            if cursor is not None:
                self._writer.advance(cursor)
            self._metrics.events_duplicate.labels(source=item.source).inc()
            return False
        try:
            payload = parse_payload(envelope)
        except UnknownEventType as exc:
            self._metrics.events_unknown.labels(source=item.source).inc()
            log.info("unknown map event type skipped", extra={"ctx": {"error": str(exc)}})
            payload = None
        except ValidationError as exc:
            self._metrics.events_invalid.labels(source=item.source, reason="payload").inc()
            log.warning(
                "malformed map event payload skipped",
                extra={
                    "ctx": {"tenant": item.tenant, "type": envelope.type, "error": str(exc)[:300]}
                },
            )
            payload = None
        notifications: list[Notification] = []
        if payload is not None and item.tenant in self.settings.maps:
            # One that arrived (stream or webhook) before the map's latest reload began (queued
            # behind a long outage) is older than the state that reload found, and is judged
            # against it (map_updates.py).
            with tracing.span("rules"):
                notifications = await self.map_notifications(
                    item.tenant, envelope, payload, generation=item.generation
                )
        event = StoredEvent(
            item.tenant, envelope.id, item.source, envelope.type, self._clock(), item.raw
        )
        return self._writer.record(event, notifications, cursor)

    async def map_notifications(
        self, tenant: str, envelope: MapEnvelope, payload: object, *, generation: int | None = None
    ) -> list[Notification]:
        """Apply a parsed map event to tracking and return its notifications; stores nothing.

        The live pipeline and :mod:`~wanderer_console.pipeline.replay` share this decision.
        ``generation`` is the map's load at the event's arrival: an event that arrived before
        the map's latest reload began only notifies what that reload's state still holds, and
        changes nothing in it.
        """
        # Start-up suppression asks when the event happened (see :meth:`allowed`).
        self._event_at = envelope_seconds(envelope)
        try:
            return await self.map_updates.apply(tenant, envelope, payload, generation=generation)
        finally:
            self._event_at = None

    def allowed(
        self,
        tenant: str,
        kind: NotificationType,
        *,
        suppressible: bool = True,
        priority: bool = False,
    ) -> bool:
        """The map's switches (and start-up suppression, when ``suppressible``) let a
        notification of ``kind`` through; a refusal is counted. A ``priority`` one (a priority
        system) needs only the master switches, not the type's.

        Start-up suppression mutes only a map event older than the map's resume point (its
        stream cursor at start, else the start): one that happened during the gap or after
        the start is news.
        """
        map_settings = self.settings.maps[tenant]
        switches = (
            self.settings.notifications.enabled and map_settings.notifications.enabled
            if priority
            else flags_allow(self.settings, map_settings, kind)
        )
        if not map_settings.enabled or not switches:
            self._writer.refused("disabled")
            return False
        if (
            suppressible
            and self.suppressed()
            and self.startup.map_event_is_history(tenant, self._event_at)
        ):
            self._writer.refused("startup_suppression")
            return False
        return True
