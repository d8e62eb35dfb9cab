"""Notification rules and kill channel routing (PARITY.md §2.2–2.3 with the §10 decisions).

Pure functions over settings, the tracking index and a clock reading: they say *whether* and
*where* to notify, and *why not* when they refuse, so the same code serves live processing,
replay and the ``kill`` diagnostic command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wanderer_console.config.model import MapSettings, Settings
from wanderer_console.domain.eve import is_wormhole_system
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.notification import NotificationType, Target, TargetKind
from wanderer_console.pipeline.tracking import TrackingIndex

__all__ = [
    "KillDecision",
    "Refusal",
    "Route",
    "decide_kill",
    "flags_allow",
    "resolve_target",
]

Route = Literal["system_kill", "character_kill", "system", "character", "rally"]
Role = Literal["kill", "loss", "neutral"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a candidate notification was not sent (a metric label and an operator message)."""

    tenant: str
    reason: str


@dataclass(frozen=True, slots=True)
class KillDecision:
    """A kill one map will be told about, and through which channel."""

    tenant: str
    route: Route
    role: Role
    """``loss`` when a tracked character died, ``kill`` when one was an attacker."""


def flags_allow(settings: Settings, map_settings: MapSettings, kind: NotificationType) -> bool:
    """Global master and type flag AND the map's master and type flag."""
    return settings.notifications.allows(kind.value) and map_settings.notifications.allows(
        kind.value
    )


def decide_kill(
    km: Killmail,
    *,
    settings: Settings,
    index: TrackingIndex,
    now: datetime,
    suppressed: bool,
    ignore_age: bool = False,
) -> tuple[list[KillDecision], list[Refusal]]:
    """Which maps notify this kill, where, and why the others do not."""
    involved = set(km.character_ids())
    candidates = set(index.maps_for_system(km.system_id))
    for eve_id in involved:
        candidates |= index.maps_for_character(eve_id)
    decisions: list[KillDecision] = []
    refusals: list[Refusal] = []
    if not candidates:
        return decisions, [Refusal("*", "untracked")]
    if suppressed:
        return decisions, [Refusal(t, "startup_suppression") for t in sorted(candidates)]
    if not ignore_age and km.kill_time is not None:
        age = (now - km.kill_time).total_seconds()
        if age > settings.console.max_killmail_age_seconds:
            return decisions, [Refusal(t, "too_old") for t in sorted(candidates)]
    for tenant in sorted(candidates):
        map_settings = settings.maps.get(tenant)
        if map_settings is None or not map_settings.enabled:
            refusals.append(Refusal(tenant, "map_disabled"))
            continue
        decision = _decide_for_map(km, tenant, map_settings, settings, index, involved)
        if isinstance(decision, Refusal):
            refusals.append(decision)
        else:
            decisions.append(decision)
    return decisions, refusals


def _decide_for_map(
    km: Killmail,
    tenant: str,
    map_settings: MapSettings,
    settings: Settings,
    index: TrackingIndex,
    involved: set[int],
) -> KillDecision | Refusal:
    if not flags_allow(settings, map_settings, NotificationType.KILL):
        return Refusal(tenant, "disabled")
    filters = map_settings.filters
    if filters.wormhole_only and not is_wormhole_system(km.system_id):
        return Refusal(tenant, "wormhole_only")
    if km.system_id in filters.system_exclude_list:
        return Refusal(tenant, "system_excluded")
    tracking = index.map(tenant)
    excluded = set(filters.character_exclude_list)
    tracked_chars = {c for c in involved if c in tracking.characters and c not in excluded}
    has_system = km.system_id in tracking.systems
    if not has_system and not tracked_chars:
        return Refusal(tenant, "character_excluded")
    victim = km.victim.character_id
    role: Role = "neutral"
    if victim is not None and victim in tracked_chars:
        role = "loss"
    elif tracked_chars:
        role = "kill"
    focus = set(filters.corporation_kill_focus)
    corps = {km.victim.corporation_id, *(a.corporation_id for a in km.attackers)}
    # Routing, first match wins (PARITY.md §2.3).
    route: Route
    if (focus and corps & focus) or (has_system and tracked_chars):
        route = "character_kill"
    elif has_system:
        route = "system_kill"
    else:
        route = "character_kill"
    return KillDecision(tenant, route, role)


def resolve_target(settings: Settings, tenant: str, route: Route) -> Target | None:
    """The Discord target of a route.

    A setting for the route beats a primary one, and a webhook beats a channel at the same level:
    the route's webhook, the route's channel, the primary webhook, the primary channel. Channels
    need a bot token. Returns ``None`` when the map has nowhere to send (``config check`` warns).
    """
    discord = settings.maps[tenant].discord
    has_token = bool(discord.bot_token or settings.discord.bot_token)
    candidates = (
        (getattr(discord, f"{route}_webhook_url"), getattr(discord, f"{route}_channel_id")),
        (discord.webhook_url, discord.channel_id),
    )
    for webhook, channel in candidates:
        if webhook is not None:
            return Target(TargetKind.WEBHOOK, webhook.get_secret_value(), tenant)
        if channel and has_token:
            return Target(TargetKind.BOT_CHANNEL, channel, tenant)
    return None
