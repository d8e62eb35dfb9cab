"""Map events: how each one changes a map's tracking, and the notification it makes.

The engine handles a map event as it handles any item (dedup, parse, record); what the event
*means* is here: a system added or deleted, a character added or removed, a rally called.
Adding a system or a character notifies (through the map's switches, its per-type dedup TTL
and its routing, all the engine's), and so does a rally, which start-up suppression never mutes.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from cachetools import TLRUCache

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import Route
from wanderer_console.delivery import embeds
from wanderer_console.delivery.formatting import static_data, static_float, static_text
from wanderer_console.domain.map_events import (
    AddSystem,
    CharacterAdded,
    CharacterRemoved,
    DeletedSystem,
    MapEnvelope,
    RallyPointAdded,
    SystemMetadataChanged,
)
from wanderer_console.domain.notification import Notification, NotificationType
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.http.deadline import bounded
from wanderer_console.pipeline.priority import Ping

__all__ = ["STATIC_RETRY_SECONDS", "MapHooks", "MapUpdates", "Routing", "apply_static_info"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

STATIC_RETRY_SECONDS = 300.0
"""A map that gave no static info for a system the kill filters asked about is asked again
after this long (not for every kill in the system meanwhile)."""


def apply_static_info(system: TrackedSystem, info: Mapping[str, Any] | None) -> None:
    """Keep a system's static facts (class, security, region, constellation, shattered) from
    its map's ``system-static-info`` answer, for the kill filters."""
    facts = static_data(info)
    if not facts:
        return

    def whole(key: str) -> int | None:
        value = facts.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    system.system_class = whole("system_class") or system.system_class
    system.region_id = whole("region_id") or system.region_id
    system.constellation_id = whole("constellation_id") or system.constellation_id
    security = static_float(facts.get("security"))
    if security is not None and math.isfinite(security):
        system.security = security
    shattered = facts.get("is_shattered")
    if isinstance(shattered, bool):
        system.is_shattered = shattered


def _name_system(
    system: TrackedSystem, map_name: str | None, info: Mapping[str, Any] | None
) -> None:
    """Name a system the map added from the event's ``name`` and the static info.

    Wanderer sends the map's name for the system, which is its custom name when a system that
    was renamed is put back on the map (Wanderer keeps it, and clears the temporary name). The
    EVE name (static info's, else the one already tracked) stays ``name`` so priority lists and
    the kill filters still find the system by it; a different map name becomes the custom name.
    Without either, the event's name is all there is.
    """
    eve_name = static_text(static_data(info), "solar_system_name") or system.name
    system.name = sys.intern(eve_name) if eve_name else map_name
    system.custom_name = map_name if eve_name and map_name and map_name != eve_name else None
    system.temporary_name = None


class MapHooks:
    """Per-map I/O the engine needs: static info, a tracked-characters refresh and, when the
    killstream's REST API is there, a system's recent kills (the "Recent Kills" field)."""

    def __init__(
        self,
        static_info: Callable[[int], Awaitable[dict[str, Any] | None]],
        refresh_characters: Callable[[], Awaitable[None]],
        recent_kills: Callable[[int], Awaitable[list[dict[str, Any]] | None]] | None = None,
    ) -> None:
        self.static_info = static_info
        self.refresh_characters = refresh_characters
        self.recent_kills = recent_kills


class Routing(Protocol):
    """What map updates need from the engine: the live settings, its switches and routing."""

    @property
    def settings(self) -> Settings:
        """The settings in force (a reload replaces them)."""
        ...

    def allowed(
        self,
        tenant: str,
        kind: NotificationType,
        *,
        suppressible: bool = True,
        priority: bool = False,
    ) -> bool:
        """The map's switches let a notification of ``kind`` through (refusals counted)."""
        ...

    def is_priority(self, tenant: str, system_id: int, names: list[str | None]) -> bool:
        """The system is a priority one for the map (its lists or the operators')."""
        ...

    def ping(self) -> Ping:
        """Whom a pinging notification reaches now."""
        ...

    def voice_pings(self) -> bool:
        """Pings go to the people in voice now."""
        ...

    def notification(
        self,
        tenant: str,
        kind: NotificationType,
        route: Route,
        dedup_key: str,
        body: dict[str, Any],
    ) -> Notification | None:
        """A notification to the route's target, or ``None`` (counted) when it has none."""
        ...

    def refused(self, reason: str) -> None:
        """Count a refused notification."""
        ...


class MapUpdates:
    """Applies parsed map events to tracking and renders what they notify."""

    def __init__(
        self,
        engine: Routing,
        index: TrackingIndex,
        hooks: dict[str, MapHooks],
        *,
        on_tracking_changed: Callable[[], None],
        clock: Callable[[], float],
    ) -> None:
        self._engine = engine
        self._index = index
        self._hooks = hooks
        self._on_tracking_changed = on_tracking_changed
        self._clock = clock
        self.hook_timeout = 5.0
        """Longest a map event waits for one of its map's REST look-ups (static info, tracked
        characters): the engine decides the next event of every map only after it, so a map
        server that does not answer must not hold the others; past it the notification goes
        without what was asked."""
        # Per-entry TTLs (``maps.<key>.dedup_ttl_seconds``): each value is its own TTL.
        self._type_dedup: TLRUCache[str, float] = TLRUCache(
            maxsize=100_000, ttu=lambda _key, ttl, now: now + ttl, timer=clock
        )

    async def apply(
        self, tenant: str, envelope: MapEnvelope, payload: object, *, generation: int | None = None
    ) -> list[Notification]:
        """Update tracking for one map event and return its notifications.

        ``generation`` is the map's load at the event's arrival
        (:meth:`~wanderer_console.domain.tracking.TrackingIndex.arrival`; ``None``: judged
        as new). An event that arrived before the map's latest full reload began (it waited in
        the queue through a long outage) is stale: the reload's state is newer, so the event
        changes nothing in it. A system or pilot it adds is notified only if the reload still
        has it on the map (it was not notified yet; one removed since is not news any more);
        a rally is notified as always.
        """
        if isinstance(payload, AddSystem):
            return await self._system_added(tenant, envelope, payload, generation)
        if isinstance(payload, CharacterAdded) and not isinstance(payload, CharacterRemoved):
            return await self._character_added(tenant, envelope, payload, generation)
        if isinstance(payload, RallyPointAdded):
            return self._rally(tenant, envelope, payload)
        if self._older_than_reload(tenant, generation):
            self._kept_reload(tenant, envelope)
        elif isinstance(payload, DeletedSystem):
            self._index.remove_system(tenant, payload.solar_system_id)
            self._on_tracking_changed()
        elif isinstance(payload, SystemMetadataChanged):
            self._index.rename_system(
                tenant, payload.solar_system_id, payload.name, payload.temporary_name
            )
        elif isinstance(payload, CharacterRemoved):
            tracking = self._index.map(tenant)
            found = tracking.character_by_internal_id(payload.id or "") or (
                tracking.character_by_name(payload.name or "")
            )
            if found is not None:
                self._index.remove_character(tenant, found.eve_id)
                self._on_tracking_changed()
        return []

    def _older_than_reload(self, tenant: str, generation: int | None) -> bool:
        """The event arrived before the map's latest reload began (see :meth:`apply`). Asked
        only once the event's look-ups are answered and right before the index changes: a
        reload may end while they wait, and its state then replaces the map's under them."""
        return generation is not None and generation < self._index.generation(tenant)

    def _kept_reload(self, tenant: str, envelope: MapEnvelope) -> None:
        """Say (at DEBUG) that a stale event changed nothing in the reload's state."""
        log.debug(
            "map event older than the map's reload; the reload's state kept",
            extra={"ctx": {"tenant": tenant, "event_id": envelope.id, "type": envelope.type}},
        )

    async def _bounded(self, look_up: Awaitable[_T], what: str) -> _T | None:
        """``look_up``'s answer, or ``None`` (logged) past :attr:`hook_timeout`. Its requests
        end by then themselves (a silent map server's timeouts open its breaker, and the next
        look-ups fail at once instead of each waiting the bound)."""
        try:
            return await bounded(look_up, self.hook_timeout)
        except TimeoutError:
            log.warning(
                "map look-up did not answer in time; notified without it",
                extra={"ctx": {"look_up": what, "timeout_seconds": self.hook_timeout}},
            )
            return None

    async def load_static_info(self, system_id: int, failed: dict[tuple[str, int], float]) -> None:
        """Fetch a tracked system's static info for the kill filters, from the first map
        tracking it that answers. A map that gave none is not asked again for
        :data:`STATIC_RETRY_SECONDS` (``failed`` holds when it may be); an answer is kept in
        the tracked system (and the map client's static cache, for after a reload)."""
        now = self._clock()
        for tenant in sorted(self._index.maps_for_system(system_id)):
            hooks = self._hooks.get(tenant)
            key = (tenant, system_id)
            if hooks is None or failed.get(key, 0.0) > now:
                continue
            info = await self._bounded(hooks.static_info(system_id), "static info")
            system = self._index.map(tenant).systems.get(system_id)
            if system is not None:
                apply_static_info(system, info)
                if system.system_class is not None:
                    failed.pop(key, None)
                    return
            failed[key] = now + STATIC_RETRY_SECONDS

    def type_dedup_hit(self, tenant: str, kind: NotificationType, entity: int | str) -> bool:
        """True (counted as ``dedup_ttl``) when ``entity`` notified as ``kind`` on this map
        within the map's TTL for that type; otherwise remember it now."""
        ttl = float(getattr(self._engine.settings.maps[tenant].dedup_ttl_seconds, kind.value, 0.0))
        if ttl <= 0:
            return False
        key = f"{tenant}:{kind.value}:{entity}"
        if key in self._type_dedup:
            self._engine.refused("dedup_ttl")
            return True
        self._type_dedup[key] = ttl
        return False

    async def _system_added(
        self, tenant: str, envelope: MapEnvelope, payload: AddSystem, generation: int | None
    ) -> list[Notification]:
        hooks = self._hooks.get(tenant)
        info = None
        if hooks is not None:
            # The map's stream asked for it before queueing the event (map_bootstrap), so this
            # is normally its cache's answer, not another request (a webhook's event asks here).
            info = await self._bounded(hooks.static_info(payload.solar_system_id), "static info")
        systems = self._index.map(tenant).systems
        if not self._older_than_reload(tenant, generation):
            system = TrackedSystem(payload.solar_system_id)
            self._index.put_system(tenant, system)
            self._on_tracking_changed()
            # Named here: the event's name may be the map's custom name.
            _name_system(system, payload.name, info)
        elif payload.solar_system_id in systems:
            system = systems[payload.solar_system_id]  # its name is the reload's, not older
        else:
            self._engine.refused("superseded_by_reload")
            self._kept_reload(tenant, envelope)
            return []
        apply_static_info(system, info)
        # A priority system is notified even with system notifications off, and pings.
        names = [system.name, system.custom_name]
        priority = self._engine.is_priority(tenant, payload.solar_system_id, names)
        if not self._engine.allowed(tenant, NotificationType.SYSTEM, priority=priority):
            return []
        if self.type_dedup_hit(tenant, NotificationType.SYSTEM, payload.solar_system_id):
            return []
        recent = None
        if hooks is not None and hooks.recent_kills is not None:
            recent = await hooks.recent_kills(payload.solar_system_id)
        map_settings = self._engine.settings.maps[tenant]
        embed = embeds.render_system(
            payload,
            map_name=map_settings.name,
            system_name=system.display_name,
            static_info=info,
            recent_kills=recent,
        )
        ping = self._engine.ping() if priority else Ping()
        body = embeds.build_message(
            [embed],
            username=self._engine.settings.discord.username,
            mention_here=ping.here,
            user_mentions=ping.users,
        )
        notification = self._engine.notification(
            tenant, NotificationType.SYSTEM, "system", f"system:{envelope.id}", body
        )
        return [notification] if notification else []

    async def _character_added(
        self, tenant: str, envelope: MapEnvelope, payload: CharacterAdded, generation: int | None
    ) -> list[Notification]:
        def find() -> Any:
            # The map's tracking now: a reload that ends during the refresh replaces it.
            return self._index.map(tenant).find_character(
                payload.explicit_eve_id, payload.id or "", payload.name or ""
            )

        character = find()
        hooks = self._hooks.get(tenant)
        if (
            character is None
            and hooks is not None
            and not self._older_than_reload(tenant, generation)
        ):
            # SSE carries only the internal id and name; REST has the EVE id and corp.
            await self._bounded(hooks.refresh_characters(), "tracked characters")
            character = find()
        if character is None and self._older_than_reload(tenant, generation):
            self._engine.refused("superseded_by_reload")
            self._kept_reload(tenant, envelope)
            return []
        self._on_tracking_changed()
        if not self._engine.allowed(tenant, NotificationType.CHARACTER):
            return []
        eve_id = character.eve_id if character is not None else None
        if self.type_dedup_hit(tenant, NotificationType.CHARACTER, eve_id or payload.id or "?"):
            return []
        corporation = alliance = None
        if character is not None and character.corporation_id:
            corporation = (character.corporation_id, None, character.corporation_ticker)
        if character is not None and character.alliance_id:
            alliance = (character.alliance_id, None, character.alliance_ticker)
        embed = embeds.render_character(
            payload,
            eve_id=eve_id,
            name=(character.name if character is not None else None) or payload.name,
            corporation=corporation,
            alliance=alliance,
            map_name=self._engine.settings.maps[tenant].name,
        )
        body = embeds.build_message([embed], username=self._engine.settings.discord.username)
        notification = self._engine.notification(
            tenant, NotificationType.CHARACTER, "character", f"character:{envelope.id}", body
        )
        return [notification] if notification else []

    def _rally(
        self, tenant: str, envelope: MapEnvelope, payload: RallyPointAdded
    ) -> list[Notification]:
        # Rallies are urgent: never muted by start-up suppression (notifier parity).
        if not self._engine.allowed(tenant, NotificationType.RALLY, suppressible=False):
            return []
        map_settings = self._engine.settings.maps[tenant]
        system = self._index.map(tenant).systems.get(payload.solar_system_id)
        # With voice mentions on, a rally also pings the people in voice (or @here).
        ping = self._engine.ping() if self._engine.voice_pings() else Ping()
        body = embeds.rally_message(
            payload,
            system_display_name=system.display_name if system else None,
            now=datetime.fromtimestamp(self._clock(), UTC),
            role_mentions=map_settings.discord.rally_group_ids,
            mention_here=ping.here,
            user_mentions=ping.users,
            username=self._engine.settings.discord.username,
            map_name=map_settings.name,
        )
        notification = self._engine.notification(
            tenant, NotificationType.RALLY, "rally", f"rally:{envelope.id}", body
        )
        return [notification] if notification else []
