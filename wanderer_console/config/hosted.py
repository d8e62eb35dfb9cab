"""Hosted / API multi-map mode: the map server's per-map notifier configuration as our maps.

The notifier-config endpoint (``GET {origin}/api/plugins/notifier/config``, PARITY.md §3.11)
lists one entry per map: ``slug``, ``name``, ``map_id`` (all three required), ``discord``
(``bot_token``, ``rally_group_ids``, ``channels{primary, system_kill, character_kill, system,
character, rally}``), ``features`` (flags; a value that is not a boolean gives the default, as
in the notifier) and ``settings`` (``corporation_kill_focus``, ``character_exclude_list``,
``system_exclude_list``). :func:`parse_notifier_config` turns the answer into
:class:`~.model.MapSettings` keyed like the file's maps; an entry that cannot be used is named,
with why, and left out (the others still run). :func:`diff_maps` says what a new answer changes.

A map's key (tenant id: its events, stream cursor, outbox rows and lease hang on it) is given
once, by its ``map_id``: its slug's (:func:`hosted_key`) when first seen, kept (in the store,
:mod:`wanderer_console.ingest.hosted`) when its owner renames it, so a rename restarts its feed
on the new slug rather than removing one map and adding another
(:func:`read_notifier_config`).

Precedence: the engine's global switches (``[notifications]``, ``NOTIFICATIONS_ENABLED`` and the
other ``*_NOTIFICATIONS_ENABLED``) are ANDed with a hosted map's features, so the map server
cannot turn on what the operator turned off; a map of the file (``[maps.<key>]``, or the
env-var map) wins over a hosted map of the same key, which is then ignored with a warning; a
hosted map's missing channels fall back to its primary, then to ``hosted.channel_id``
(``DISCORD_CHANNEL_ID``); its bot token falls back to ``discord.bot_token``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from wanderer_console.config.model import HostedSettings, MapSettings

__all__ = [
    "FEED_KEYS",
    "HostedConfig",
    "HostedMapsDiff",
    "diff_maps",
    "hosted_key",
    "parse_notifier_config",
    "read_notifier_config",
]

_FLAGS: Final[dict[str, tuple[tuple[str, str], bool]]] = {
    "notifications_enabled": (("notifications", "enabled"), True),
    "kill_notifications_enabled": (("notifications", "kill"), True),
    "system_notifications_enabled": (("notifications", "system"), True),
    "character_notifications_enabled": (("notifications", "character"), True),
    "rally_notifications_enabled": (("notifications", "rally"), True),
    "wormhole_only_kill_notifications": (("filters", "wormhole_only"), False),
    "track_kspace": (("filters", "track_kspace"), True),
    "priority_systems_only": (("filters", "priority_systems_only"), False),
    # The notifier pings voice participants on system-kill messages: as the env var
    # VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED does for its map, this makes them ping
    # (discord.voice_mentions decides whom: the people in voice, else @here).
    "voice_participant_notifications_enabled": (("filters", "fallback_to_here"), False),
}
"""``features.*`` -> (section, key) of :class:`MapSettings`, and the notifier's default."""

_CHANNELS: Final[dict[str, str]] = {
    "primary": "channel_id",
    "system_kill": "system_kill_channel_id",
    "character_kill": "character_kill_channel_id",
    "system": "system_channel_id",
    "character": "character_channel_id",
    "rally": "rally_channel_id",
}

_LISTS: Final[tuple[str, ...]] = (
    "corporation_kill_focus",
    "character_exclude_list",
    "system_exclude_list",
)

FEED_KEYS: Final[tuple[str, ...]] = (
    "url",
    "slug",
    "api_key",
    "sse_max_line_bytes",
    "sse_max_event_bytes",
)
"""What the map's REST client and SSE stream take when started: a change restarts the feed."""


def hosted_key(slug: str) -> str:
    """The map key (tenant id) a hosted map gets when first seen: its slug, cleaned to a valid
    key (kept when its slug changes: :func:`read_notifier_config`)."""
    cleaned = "".join(c if c.isalnum() or c in "-_" else "-" for c in slug.lower())
    return cleaned.strip("-_")[:63] or "map"


def _ids(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _object(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name)
    return value if isinstance(value, dict) else {}


def _entry(raw: Mapping[str, Any], hosted: HostedSettings) -> MapSettings:
    missing = [name for name in ("slug", "name", "map_id") if not raw.get(name)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    if hosted.url is None or hosted.map_api_key is None:  # the model refuses this at load
        raise ValueError("hosted mode needs hosted.url and hosted.map_api_key")
    discord = _object(raw, "discord")
    channels = _object(discord, "channels")
    features = _object(raw, "features")
    settings = _object(raw, "settings")
    tree: dict[str, Any] = {
        "url": hosted.url,
        "slug": str(raw["slug"]),
        "name": str(raw["name"]),
        "api_key": hosted.map_api_key.get_secret_value(),
        "notifications": {},
        "filters": {},
        "discord": {},
    }
    for name, key in _CHANNELS.items():
        value = channels.get(name)
        if value not in (None, ""):
            tree["discord"][key] = str(value).strip()
    if not tree["discord"].get("channel_id") and hosted.channel_id:
        tree["discord"]["channel_id"] = hosted.channel_id
    token = discord.get("bot_token")
    if isinstance(token, str) and token.strip():
        tree["discord"]["bot_token"] = token.strip()
    roles = _ids(discord.get("rally_group_ids"))
    if roles:
        tree["discord"]["rally_group_ids"] = roles
    for name, ((section, key), default) in _FLAGS.items():
        value = features.get(name, default)
        tree[section][key] = value if isinstance(value, bool) else default
    for name in _LISTS:
        values = _ids(settings.get(name))
        if values:
            tree["filters"][name] = values
    return MapSettings.model_validate(tree)


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}"
    return str(exc)


def _entries(body: Any) -> list[Any]:
    entries = body
    if isinstance(body, dict):
        entries = body.get("data", body.get("maps"))
    if not isinstance(entries, list):
        raise ValueError("the notifier config is not a list of maps (nor {data: [...]})")
    return entries


def _apart(key: str, map_id: str) -> str:
    """The key of a new map whose slug's key belongs to another map: the slug's key and the
    first characters of its ``map_id`` (the same on every engine)."""
    tail = "".join(c for c in map_id.lower() if c.isalnum())[:8] or "map"
    return f"{key[:54]}-{tail}"


@dataclass(slots=True)
class HostedConfig:
    """A notifier-config answer read (:func:`read_notifier_config`)."""

    maps: dict[str, MapSettings] = field(default_factory=dict)
    """The usable maps, by key."""
    map_ids: dict[str, str] = field(default_factory=dict)
    """Each map's ``map_id``, by key."""
    problems: list[str] = field(default_factory=list)
    """One line per entry left out, and per map keyed apart, with why."""

    @property
    def new_keys(self) -> dict[str, tuple[str, str]]:
        """``map_id -> (key, slug)`` of every map (to keep: a map already keyed is not
        changed by :meth:`~wanderer_console.store.base.Store.keep_hosted_map_keys`)."""
        return {m: (key, self.maps[key].slug) for key, m in self.map_ids.items()}


def read_notifier_config(
    body: Any, hosted: HostedSettings, known: Mapping[str, str] | None = None
) -> HostedConfig:
    """The maps of a notifier-config answer, keyed, and one problem line per entry left out.

    ``body`` is the decoded JSON: a list of entries, or an object holding it under ``data`` or
    ``maps``. Raises :class:`ValueError` when it is none of these (nothing can be used).

    A map's key is the one ``known`` keeps for its ``map_id`` (the key it got when first seen:
    a map whose slug changed keeps its key, so its cursor, event log, outbox and lease), else
    its slug's (:func:`hosted_key`); a new map whose slug's key is another map's (one renamed
    away from that slug, or one listed before it with a slug of the same key) gets its slug's
    key followed by the start of its ``map_id``, said in the problems. A second entry of one
    ``map_id`` is left out.
    """
    known = dict(known or {})
    owners = {key: map_id for map_id, key in known.items()}
    result = HostedConfig()
    seen: dict[str, str] = {}
    """``map_id`` -> the label of the entry that listed it first."""
    for number, raw in enumerate(_entries(body)):
        label = f"entry {number}"
        if not isinstance(raw, dict):
            result.problems.append(f"{label}: not an object")
            continue
        if raw.get("slug"):
            label += f" ({raw['slug']})"
        try:
            map_settings = _entry(raw, hosted)
        except (ValueError, ValidationError) as exc:
            result.problems.append(f"{label}: {_problem(exc)}")
            continue
        map_id = str(raw["map_id"])
        if map_id in seen:
            result.problems.append(
                f"{label}: the map {map_id} is listed twice (first as {seen[map_id]});"
                " the first is kept"
            )
            continue
        seen[map_id] = label
        key = known.get(map_id)
        if key is None:
            key = hosted_key(map_settings.slug)
            owner = owners.get(key)
            if owner is not None and owner != map_id:
                apart = _apart(key, map_id)
                if owners.get(apart, map_id) != map_id:
                    result.problems.append(
                        f"{label}: its keys {key!r} and {apart!r} belong to other maps;"
                        " rename the map on the map server"
                    )
                    continue
                result.problems.append(
                    f"{label}: the key {key!r} is the map {owner}'s (it had this slug, or one"
                    f" of the same key, first); this map runs as {apart!r}"
                )
                key = apart
            owners[key] = map_id
        result.maps[key] = map_settings
        result.map_ids[key] = map_id
    return result


def parse_notifier_config(
    body: Any, hosted: HostedSettings, known: Mapping[str, str] | None = None
) -> tuple[dict[str, MapSettings], list[str]]:
    """:func:`read_notifier_config`'s maps and problems."""
    config = read_notifier_config(body, hosted, known)
    return config.maps, config.problems


@dataclass(slots=True)
class HostedMapsDiff:
    """What a new notifier config changes in the running maps (keys, sorted)."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    """Settings changed and applied live (channels, flags, filters, token, name)."""
    restarted: list[str] = field(default_factory=list)
    """Changed in what the feed took at start (:data:`FEED_KEYS`): the feed is restarted."""

    @property
    def empty(self) -> bool:
        """True when nothing changes."""
        return not (self.added or self.removed or self.changed or self.restarted)

    def as_json(self) -> dict[str, list[str]]:
        """The four lists by name."""
        return {
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "restarted": self.restarted,
        }


def _dump(map_settings: MapSettings) -> dict[str, Any]:
    data = map_settings.model_dump()
    data["api_key"] = map_settings.api_key.get_secret_value()
    token = map_settings.discord.bot_token
    data["discord"]["bot_token"] = None if token is None else token.get_secret_value()
    return data


def diff_maps(old: Mapping[str, MapSettings], new: Mapping[str, MapSettings]) -> HostedMapsDiff:
    """Compare two sets of hosted maps (secrets compared by value)."""
    diff = HostedMapsDiff(added=sorted(set(new) - set(old)), removed=sorted(set(old) - set(new)))
    for key in sorted(set(old) & set(new)):
        before, after = _dump(old[key]), _dump(new[key])
        if before == after:
            continue
        if any(before[name] != after[name] for name in FEED_KEYS):
            diff.restarted.append(key)
        else:
            diff.changed.append(key)
    return diff
