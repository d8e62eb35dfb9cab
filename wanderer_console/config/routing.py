"""Where each kind of notification goes: a map's route to its Discord target.

Read from the settings alone, so the rules, the dispatcher, ``notify test`` and ``config check``
agree on it without importing each other.
"""

from __future__ import annotations

from typing import Final, Literal

from wanderer_console.config.model import Settings
from wanderer_console.config.trackers import TrackerSettings
from wanderer_console.domain.notification import Target, TargetKind

__all__ = [
    "OPS_TENANT",
    "ROUTES",
    "Route",
    "ops_target",
    "resolve_target",
    "route_credentials",
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
        return Target(TargetKind.WEBHOOK, tracker.webhook_url.get_secret_value(), tenant)
    discord = settings.maps[tenant].discord
    if tracker.channel_id and (discord.bot_token or settings.discord.bot_token):
        return Target(TargetKind.BOT_CHANNEL, tracker.channel_id, tenant)
    return resolve_target(settings, tenant, "system_kill")
