"""What the engine's snapshot says about its sources and targets besides their figures.

The console's detail views show where a source connects and which map routes post to a target;
the dispatcher and the sources know them only by key (``webhook:1200000002538501129``,
``sse:alpha``), so they are derived here from the running settings, every credential masked.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import ROUTES, resolve_target, tracker_target
from wanderer_console.domain.notification import Target
from wanderer_console.telemetry.logging import redact

__all__ = ["masked_url", "source_url", "target_maps", "target_names"]


def masked_url(url: str) -> str:
    """``url`` without what could be a credential: user info and query dropped, a Discord webhook
    token masked (``https://discord.com/api/webhooks/123/***``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact(url)
    # The host and port as written: reading ``parts.port`` raised on one out of range (which the
    # config takes), and that lost the whole snapshot; an IPv6 host keeps its brackets.
    netloc = parts.netloc.rpartition("@")[2]
    path = parts.path
    segments = path.rstrip("/").split("/")
    if len(segments) >= 2 and "webhooks" in segments[:-2] and segments[-1]:
        path = "/".join([*segments[:-1], "***"])
    return redact(urlunsplit((parts.scheme, netloc, path, "", "")))


def source_url(settings: Settings, name: str) -> str | None:
    """Where the source called ``name`` in the snapshot connects (masked), from ``settings``."""
    kind, _, rest = name.partition(":")
    if kind == "sse" and rest in settings.maps:
        feed = settings.maps[rest]
        slug = quote(feed.slug or rest, safe="")  # one path segment, as the stream asks for it
        return masked_url(f"{feed.url}/api/maps/{slug}/events/stream")
    if name in ("killstream:systems", "killstream:characters"):
        return masked_url(settings.killstream.websocket_url)
    if name == "killstream:fallback":
        return masked_url(settings.killstream.rest_url)
    if name == "r2z2":
        return masked_url(settings.r2z2.url)
    return None


def target_names(settings: Settings) -> dict[str, tuple[str, str]]:
    """Target key → ``(label, masked address)``: which map routes post there, and where.

    A route that falls back to the map's primary webhook or channel is named ``primary`` (once
    per map): ``alpha/primary``, ``alpha/rally``; a tracker with a target of its own by its name
    (``alpha/caps``); a target shared by maps lists each.
    """
    return {
        key: (", ".join(label for _tenant, label in routes), where)
        for key, (routes, where) in _routes(settings).items()
    }


def target_maps(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Target key → the maps posting there, sorted. A target is dead per map (a webhook two maps
    share may be refused for one of them only): the console tells a target dead for every map
    posting there from one dead for some of them by these."""
    return {
        key: tuple(sorted({tenant for tenant, _label in routes}))
        for key, (routes, _where) in _routes(settings).items()
    }


def _routes(settings: Settings) -> dict[str, tuple[list[tuple[str, str]], str]]:
    """Target key → its ``(map, label)`` routes in the config's order (each label once), and
    its masked address."""
    labels: dict[str, list[tuple[str, str]]] = {}
    where: dict[str, str] = {}
    for tenant, map_settings in settings.maps.items():
        discord = map_settings.discord
        targets: list[tuple[Target, str]] = []
        for route in ROUTES:
            target = resolve_target(settings, tenant, route)
            if target is None:
                continue
            own = getattr(discord, f"{route}_webhook_url") is not None or bool(
                getattr(discord, f"{route}_channel_id")
            )
            label = f"{tenant}/{route if own else 'primary'}"
            targets.append((target, label))
        targets += [
            (target, f"{tenant}/{tracker.name}")
            for tracker in map_settings.trackers
            if (tracker.webhook_url is not None or tracker.channel_id)
            and (target := tracker_target(settings, tenant, tracker)) is not None
        ]
        for target, label in targets:
            names = labels.setdefault(target.key, [])
            if (tenant, label) not in names:
                names.append((tenant, label))
            if target.key.startswith("webhook:"):
                where[target.key] = masked_url(target.address)
            else:
                where[target.key] = f"channel {target.address} (bot)"
    return {key: (names, where[key]) for key, names in labels.items()}
