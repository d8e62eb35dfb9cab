"""Where each kind of notification goes: a map's route to its Discord target.

Read from the settings alone, so the rules, the dispatcher, ``notify test`` and ``config check``
agree on it without importing each other.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping
from typing import Final, Literal

from wanderer_console.config.model import Settings
from wanderer_console.config.trackers import TrackerSettings
from wanderer_console.domain.notification import Target, TargetKind

__all__ = [
    "OPS_ROUTE",
    "OPS_TENANT",
    "ROUTES",
    "Route",
    "changed_maps",
    "moved_targets",
    "moves_between",
    "ops_target",
    "resolve_target",
    "route_credentials",
    "route_keys",
    "route_targets",
    "tenant_routes",
    "tracker_target",
]

Route = Literal["system_kill", "character_kill", "system", "character", "rally"]
"""A kind of notification with its own Discord target settings."""
ROUTES: Final[tuple[Route, ...]] = ("system_kill", "character_kill", "system", "character", "rally")
OPS_TENANT: Final = "_ops"
"""The outbox's tenant for the console's own alert messages (no map slug starts with ``_``)."""


def ops_target(settings: Settings) -> Target | None:
    """The operations webhook alerts are posted to (``alerts.discord_webhook_url``), if any."""
    webhook = settings.alerts.discord_webhook_url
    if webhook is None:
        return None
    return Target(TargetKind.WEBHOOK, webhook.get_secret_value(), OPS_TENANT)


OPS_ROUTE: Final = "alerts"
"""The one route of the operations messages (tenant ``_ops``), as their routing is recorded."""


def tenant_routes(settings: Settings, tenant: str) -> dict[str, Target | None] | None:
    """Where each route of ``tenant`` posts (:func:`route_targets`; the operations messages'
    one route to the operations webhook), or ``None`` when it is not configured (a map
    removed, no operations webhook): what the dispatcher compares with the recorded routing."""
    if tenant == OPS_TENANT:
        ops = ops_target(settings)
        return None if ops is None else {OPS_ROUTE: ops}
    return route_targets(settings, tenant) if tenant in settings.maps else None


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
            return _target(TargetKind.WEBHOOK, webhook.get_secret_value(), tenant)
        if channel and has_token:
            return _target(TargetKind.BOT_CHANNEL, channel, tenant)
    return None


@functools.lru_cache(maxsize=8192)
def _target(kind: TargetKind, address: str, tenant: str) -> Target:
    """One :class:`Target` per destination, made once (immutable, so shared): a kill notifying
    229 maps made each map's anew, about 1 ms of the event loop before its first request."""
    return Target(kind, address, tenant)


def route_credentials(settings: Settings) -> dict[tuple[str, str], tuple[Target, str | None]]:
    """Every configured target by ``(tenant, key)`` (routes and trackers), with the bot token it
    posts with (if any)."""
    out: dict[tuple[str, str], tuple[Target, str | None]] = {}
    for tenant, map_settings in settings.maps.items():
        secret = map_settings.discord.bot_token or settings.discord.bot_token
        token = secret.get_secret_value() if secret else None
        targets = [resolve_target(settings, tenant, route) for route in ROUTES]
        targets += [tracker_target(settings, tenant, t) for t in map_settings.trackers]
        for target in targets:
            if target is not None:
                bot = target.kind is TargetKind.BOT_CHANNEL
                out[(tenant, target.key)] = (target, token if bot else None)
    ops = ops_target(settings)
    if ops is not None:
        out[(OPS_TENANT, ops.key)] = (ops, None)
    return out


def tracker_target(settings: Settings, tenant: str, tracker: TrackerSettings) -> Target | None:
    """Where a named tracker posts: its webhook, else its channel (with the map's or the global
    bot token), else where the map's system-kill route posts."""
    if tracker.webhook_url is not None:
        return _target(TargetKind.WEBHOOK, tracker.webhook_url.get_secret_value(), tenant)
    discord = settings.maps[tenant].discord
    if tracker.channel_id and (discord.bot_token or settings.discord.bot_token):
        return _target(TargetKind.BOT_CHANNEL, tracker.channel_id, tenant)
    return resolve_target(settings, tenant, "system_kill")


def route_targets(settings: Settings, tenant: str) -> dict[str, Target | None]:
    """Where each of a map's routes and named trackers posts, by a name that outlives a
    reload and a restart (a tracker by its name)."""
    out: dict[str, Target | None] = {
        route: resolve_target(settings, tenant, route) for route in ROUTES
    }
    for tracker in settings.maps[tenant].trackers:
        out[f"tracker:{tracker.name}"] = tracker_target(settings, tenant, tracker)
    return out


def route_keys(routes: Mapping[str, Target | None]) -> dict[str, str]:
    """The target key of each route that posts somewhere: what the store records of a map's
    routing (keys only, never a webhook's URL or token)."""
    return {name: target.key for name, target in routes.items() if target is not None}


def moves_between(was: Mapping[str, str], now: Mapping[str, Target | None]) -> dict[str, Target]:
    """The targets a change of a map's routing moved, by old key: keys ``was`` (route -> key)
    used that ``now`` (route -> target) does not, every route (and tracker) that used one now
    going to one same target.

    A key whose routes now split over several targets, or one of which now goes nowhere (or no
    longer exists), is left out: which of them should have its backlog is not for delivery to
    guess. The one rule of a hot reload (:func:`moved_targets`) and of a start that finds the
    routing the map last ran with recorded in the store (``Store.recorded_routes``)."""
    still = {target.key for target in now.values() if target is not None}
    users: dict[str, list[str]] = defaultdict(list)
    for name, key in was.items():
        if key not in still:
            users[key].append(name)
    moved: dict[str, Target] = {}
    for key, names in users.items():
        after = [now.get(name) for name in names]
        first = after[0]
        if first is not None and all(t is not None and t.key == first.key for t in after):
            moved[key] = first
    return moved


def changed_maps(old: Settings, new: Settings) -> list[str]:
    """The maps of ``new`` whose routing a reload from ``old`` may have changed: new ones, and
    those whose settings are not the same object in both or ran under another global bot token
    (a hosted refresh keeps the unchanged maps' objects: at a thousand maps, resolving them all
    again would cost 25 ms of the event loop per reload); and the operations messages
    (``_ops``) when the operations webhook changed."""
    same_token = old.discord.bot_token == new.discord.bot_token
    changed = [
        tenant
        for tenant, settings in new.maps.items()
        if not (same_token and old.maps.get(tenant) is settings)
    ]
    if _ops_key(old) != _ops_key(new):
        changed.append(OPS_TENANT)
    return changed


def _ops_key(settings: Settings) -> str | None:
    ops = ops_target(settings)
    return None if ops is None else ops.key


def moved_targets(old: Settings, new: Settings) -> dict[tuple[str, str], Target]:
    """The targets a reload moved, by ``(tenant, old key)`` (see :func:`moves_between`); maps
    only in one of the settings move nothing, nor does an operations webhook added or removed
    (one replaced moves the alert messages waiting for the old one)."""
    moved: dict[tuple[str, str], Target] = {}
    for tenant in changed_maps(old, new):
        before, after = tenant_routes(old, tenant), tenant_routes(new, tenant)
        if before is None or after is None:
            continue
        for key, target in moves_between(route_keys(before), after).items():
            moved[(tenant, key)] = target
    return moved
