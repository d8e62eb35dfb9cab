"""Wanderer Notifier's single-map environment variables (PARITY.md §3), mapped onto our model.

An existing notifier ``.env`` keeps working: when ``MAP_URL`` or ``MAP_NAME`` is set, the
variables configure one map (created, or merged over the file's section of that name; its
slug is ``MAP_NAME``, else taken from ``MAP_URL``'s ``?name=`` or path, where older ``.env``
files put it; the notifier itself requires ``MAP_NAME``). With
``PLUGIN_NOTIFIER_API_KEY`` set (API / multi-map mode) they configure ``[hosted]`` instead: the
maps come from the map server's notifier-config endpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

__all__ = ["LEGACY_VARIABLES", "legacy_overrides", "legacy_sources"]

_TRUE: Final = {"true", "1", "yes", "on"}
_FALSE: Final = {"false", "0", "no", "off"}

_GLOBAL: Final[dict[str, tuple[str, ...]]] = {
    "NOTIFICATIONS_ENABLED": ("notifications", "enabled"),
    "KILL_NOTIFICATIONS_ENABLED": ("notifications", "kill"),
    "SYSTEM_NOTIFICATIONS_ENABLED": ("notifications", "system"),
    "CHARACTER_NOTIFICATIONS_ENABLED": ("notifications", "character"),
    "RALLY_NOTIFICATIONS_ENABLED": ("notifications", "rally"),
    "STARTUP_SUPPRESSION_SECONDS": ("console", "startup_suppression_seconds"),
    "MAX_KILLMAIL_AGE_SECONDS": ("console", "max_killmail_age_seconds"),
    "DISCORD_BOT_TOKEN": ("discord", "bot_token"),
    "DISCORD_API_URL": ("discord", "api_url"),
    "ESI_URL": ("esi", "url"),
    "WEBSOCKET_URL": ("killstream", "websocket_url"),
    "WANDERER_KILLS_URL": ("killstream", "rest_url"),
    "DISCORD_APPLICATION_ID": ("discord", "application_id"),
    "DISCORD_GUILD_ID": ("discord", "guild_id"),
    "STATUS_MESSAGES_ENABLED": ("discord", "status_messages"),
    # Also read per map below (the system-kill @here of the notifier's fallback).
    "VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED": ("discord", "voice_mentions"),
    "FALLBACK_TO_HERE_ENABLED": ("discord", "fallback_to_here"),
    "NOTABLE_ITEMS_ENABLED": ("janice", "enabled"),
    "JANICE_API_TOKEN": ("janice", "api_token"),
    "JANICE_API_URL": ("janice", "url"),
    "NOTABLE_ITEMS_THRESHOLD_ISK": ("janice", "threshold_isk"),
    "NOTABLE_ITEMS_LIMIT": ("janice", "limit"),
}

_MAP: Final[dict[str, tuple[str, ...]]] = {
    "MAP_URL": ("url",),
    "MAP_API_KEY": ("api_key",),
    "DISCORD_CHANNEL_ID": ("discord", "channel_id"),
    "DISCORD_SYSTEM_KILL_CHANNEL_ID": ("discord", "system_kill_channel_id"),
    "DISCORD_CHARACTER_KILL_CHANNEL_ID": ("discord", "character_kill_channel_id"),
    "DISCORD_SYSTEM_CHANNEL_ID": ("discord", "system_channel_id"),
    "DISCORD_CHARACTER_CHANNEL_ID": ("discord", "character_channel_id"),
    "DISCORD_RALLY_CHANNEL_ID": ("discord", "rally_channel_id"),
    "DISCORD_WEBHOOK_URL": ("discord", "webhook_url"),
    "DISCORD_SYSTEM_KILL_WEBHOOK_URL": ("discord", "system_kill_webhook_url"),
    "DISCORD_CHARACTER_KILL_WEBHOOK_URL": ("discord", "character_kill_webhook_url"),
    "DISCORD_SYSTEM_WEBHOOK_URL": ("discord", "system_webhook_url"),
    "DISCORD_CHARACTER_WEBHOOK_URL": ("discord", "character_webhook_url"),
    "DISCORD_RALLY_WEBHOOK_URL": ("discord", "rally_webhook_url"),
    "WORMHOLE_ONLY_KILL_NOTIFICATIONS_ENABLED": ("filters", "wormhole_only"),
    "TRACK_KSPACE_ENABLED": ("filters", "track_kspace"),
    "PRIORITY_SYSTEMS_ONLY_ENABLED": ("filters", "priority_systems_only"),
    "PRIORITY_SYSTEMS_ONLY": ("filters", "priority_systems_only"),
}

_SPECIAL: Final = frozenset(
    {
        # Ids and names mixed: "31002238,J154624" (the notifier kept them via slash commands).
        "PRIORITY_SYSTEMS",
        # The notifier pings the people in voice on system-kill messages, @here as the fallback:
        # both together also mean "system-kill messages ping" for the map (discord.voice_mentions
        # decides whom: the people in voice, else @here when discord.fallback_to_here).
        "FALLBACK_TO_HERE_ENABLED",
        "VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED",
        # Defined but unused upstream; here it sets every per-type dedup window.
        "DEDUPLICATION_TTL_SECONDS",
    }
)

_LISTS: Final[dict[str, tuple[str, ...]]] = {
    "DISCORD_RALLY_GROUP_IDS": ("discord", "rally_group_ids"),
    "DISCORD_RALLY_GROUP_ID": ("discord", "rally_group_ids"),
    "CORPORATION_KILL_FOCUS": ("filters", "corporation_kill_focus"),
    "SYSTEM_EXCLUDE_LIST": ("filters", "system_exclude_list"),
    "CHARACTER_EXCLUDE_LIST": ("filters", "character_exclude_list"),
}

_HOSTED: Final[dict[str, tuple[str, ...]]] = {
    "PLUGIN_NOTIFIER_API_KEY": ("hosted", "api_key"),
    "MAP_URL": ("hosted", "url"),
    "MAP_API_KEY": ("hosted", "map_api_key"),
    "DISCORD_CHANNEL_ID": ("hosted", "channel_id"),
}
"""API / multi-map mode (PARITY.md §3.11): with ``PLUGIN_NOTIFIER_API_KEY`` set, the maps come
from the map server, so these configure the hosted maps instead of one env-var map."""

LEGACY_VARIABLES: Final[frozenset[str]] = frozenset(
    {*_GLOBAL, *_MAP, *_LISTS, *_SPECIAL, *_HOSTED, "MAP_NAME"}
)
"""Every notifier variable the console understands."""


def _value(name: str, raw: str) -> Any:
    lowered = raw.strip().lower()
    if name.endswith("_ENABLED"):
        # The notifier accepts these spellings; anything else is passed through so the model
        # reports it as an error instead of silently falling back to a default.
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    return raw.strip()


def _put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = tree
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def legacy_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Translate notifier variables into a partial settings tree.

    Returns the tree and the names of the variables used (for the start-up log line).
    """
    tree: dict[str, Any] = {}
    used: list[str] = []
    for name, path in _GLOBAL.items():
        if environ.get(name, "").strip():
            _put(tree, path, _value(name, environ[name]))
            used.append(name)
    if tree.get("discord", {}).get("voice_mentions") is True:
        # FALLBACK_TO_HERE_ENABLED defaults to true upstream.
        tree["discord"].setdefault("fallback_to_here", True)
    if environ.get("PLUGIN_NOTIFIER_API_KEY", "").strip():
        for name, path in _HOSTED.items():
            if environ.get(name, "").strip():
                _put(tree, path, environ[name].strip())
                used.append(name)
        return tree, used
    map_name = _map_name(environ)
    map_fields = {name: path for name, path in {**_MAP, **_LISTS}.items() if environ.get(name)}
    if map_name or "MAP_URL" in map_fields:
        key = _map_key(map_name or "default")
        section: dict[str, Any] = {"slug": map_name} if map_name else {}
        if environ.get("MAP_NAME", "").strip():
            used.append("MAP_NAME")
        for name, path in map_fields.items():
            raw = environ[name]
            value: Any
            if name in _LISTS:
                value = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                value = _value(name, raw)
            _put(section, path, value)
            used.append(name)
        used += _special(environ, section)
        tree["maps"] = {key: section}
    return tree, used


def legacy_sources(environ: Mapping[str, str]) -> dict[tuple[str, ...], str]:
    """Which notifier variable set each settings key :func:`legacy_overrides` fills: a problem
    with that key is reported by the variable's name (the operator set that, not the key)."""
    sources: dict[tuple[str, ...], str] = {}
    for name, path in _GLOBAL.items():
        if environ.get(name, "").strip():
            sources[path] = name
    if environ.get("PLUGIN_NOTIFIER_API_KEY", "").strip():
        for name, path in _HOSTED.items():
            if environ.get(name, "").strip():
                sources[path] = name
        return sources
    map_name = _map_name(environ)
    if not (map_name or environ.get("MAP_URL")):
        return sources
    key = ("maps", _map_key(map_name or "default"))
    if map_name:
        sources[(*key, "slug")] = "MAP_NAME" if environ.get("MAP_NAME", "").strip() else "MAP_URL"
    for name, path in {**_MAP, **_LISTS}.items():
        if environ.get(name):
            sources[(*key, *path)] = name
    if environ.get("PRIORITY_SYSTEMS", "").strip():
        sources[(*key, "filters", "priority_systems")] = "PRIORITY_SYSTEMS"
        sources[(*key, "filters", "priority_system_names")] = "PRIORITY_SYSTEMS"
    if environ.get("FALLBACK_TO_HERE_ENABLED", "").strip():
        sources[(*key, "filters", "fallback_to_here")] = "FALLBACK_TO_HERE_ENABLED"
    elif environ.get("VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED", "").strip():
        sources[(*key, "filters", "fallback_to_here")] = "VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED"
    if environ.get("DEDUPLICATION_TTL_SECONDS", "").strip():
        for kind in ("system", "character"):
            sources[(*key, "dedup_ttl_seconds", kind)] = "DEDUPLICATION_TTL_SECONDS"
    return sources


def _special(environ: Mapping[str, str], section: dict[str, Any]) -> list[str]:
    """The variables that do not map one-to-one onto a key; returns those used."""
    used: list[str] = []
    raw = environ.get("PRIORITY_SYSTEMS", "")
    items = [item.strip() for item in raw.split(",") if item.strip()]
    if items:
        _put(section, ("filters", "priority_systems"), [i for i in items if i.isdigit()])
        _put(section, ("filters", "priority_system_names"), [i for i in items if not i.isdigit()])
        used.append("PRIORITY_SYSTEMS")
    voice = _value(
        "VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED",
        environ.get("VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED", ""),
    )
    if voice is True:
        fallback = _value(
            "FALLBACK_TO_HERE_ENABLED", environ.get("FALLBACK_TO_HERE_ENABLED", "true")
        )
        _put(section, ("filters", "fallback_to_here"), fallback)
        used.append("VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED")
        if environ.get("FALLBACK_TO_HERE_ENABLED", "").strip():
            used.append("FALLBACK_TO_HERE_ENABLED")
    ttl = environ.get("DEDUPLICATION_TTL_SECONDS", "").strip()
    if ttl:
        for kind in ("system", "character"):
            _put(section, ("dedup_ttl_seconds", kind), ttl)
        used.append("DEDUPLICATION_TTL_SECONDS")
    return used


def _map_name(environ: Mapping[str, str]) -> str:
    """The map's slug: ``MAP_NAME``, else the ``name`` query parameter
    of ``MAP_URL``, else the last segment of its path (``https://host/my-map``, the map's own
    address, as older ``.env`` files set it); empty when ``MAP_URL`` is an origin alone.

    Without this, such an ``.env`` asked the map API for a map called ``default``: only the
    URL's origin reaches the API (``ingest/map_rest.api_origin``), so its path must name the map.
    """
    explicit = environ.get("MAP_NAME", "").strip()
    if explicit:
        return explicit
    url = environ.get("MAP_URL", "").strip()
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL: validation of maps.<key>.url says so, naming MAP_URL
        return ""
    named = parse_qs(parts.query).get("name", [""])[0].strip()
    return named or parts.path.strip("/").rpartition("/")[2].strip()


def _map_key(map_name: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in map_name.lower())
    return cleaned.strip("-_")[:63] or "default"
