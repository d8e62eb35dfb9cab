"""The console's view of each map's kill trackers, and where a tracker's switch is in the file.

Built from the running settings and the engine's match counts
(:class:`~wanderer_console.pipeline.trackers.TrackerMatches`); a tracker's target is shown by its
key (``webhook:<id>``), never its URL, which holds a token.
"""

from __future__ import annotations

import tomllib
from typing import Any

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import tracker_target
from wanderer_console.config.trackers import DEFAULT_TRACKER
from wanderer_console.pipeline.trackers import TrackerMatches

__all__ = ["tracker_switch", "tracker_switch_in_text", "tracker_views"]


def tracker_views(settings: Settings, matches: TrackerMatches) -> list[dict[str, Any]]:
    """Every map's trackers (its default one first) with their matches, for the snapshot;
    empty when no map has ``[[maps.<key>.trackers]]``."""
    if not any(m.trackers for m in settings.maps.values()):
        return []
    out: list[dict[str, Any]] = []
    for tenant, map_settings in settings.maps.items():
        counts = {
            name: {
                "matches_last_hour": matches.last_hour(tenant, name),
                "matches_total": matches.total(tenant, name),
                "last_match_at": matches.last_at(tenant, name),
            }
            for name in [DEFAULT_TRACKER, *(t.name for t in map_settings.trackers)]
        }
        out.append(
            {
                "tenant": tenant,
                "name": DEFAULT_TRACKER,
                "enabled": map_settings.filters.default_tracker,
                "default": True,
                "target": "routes",
                "ping": "",
                **counts[DEFAULT_TRACKER],
            }
        )
        for tracker in map_settings.trackers:
            target = tracker_target(settings, tenant, tracker)
            pings = {"none": [], "here": ["@here"], "everyone": ["@everyone"]}[tracker.ping]
            pings += [f"<@&{role}>" for role in tracker.ping_role_ids]
            out.append(
                {
                    "tenant": tenant,
                    "name": tracker.name,
                    "enabled": tracker.enabled,
                    "scope": tracker.scope,
                    "target": "" if target is None else target.key,
                    "ping": " ".join(pings),
                    **counts[tracker.name],
                }
            )
    return out


def tracker_switch(settings: Settings, tenant: str, name: str) -> tuple[str | int, ...] | str:
    """The config path of a tracker's on/off switch, or why there is none (an error message)."""
    map_settings = settings.maps.get(tenant)
    if map_settings is None:
        known = ", ".join(sorted(settings.maps)) or "none"
        return f"no map {tenant!r} (maps: {known})"
    if name == DEFAULT_TRACKER:
        return ("maps", tenant, "filters", "default_tracker")
    for index, tracker in enumerate(map_settings.trackers):
        if tracker.name == name:
            return ("maps", tenant, "trackers", index, "enabled")
    names = ", ".join([DEFAULT_TRACKER, *(t.name for t in map_settings.trackers)])
    return f"map {tenant} has no tracker {name!r} (trackers: {names})"


def tracker_switch_in_text(
    text: str, tenant: str, name: str, where: str
) -> tuple[str | int, ...] | str | None:
    """Where a tracker's switch is in a config file's ``text`` now (``where`` names the file).

    The running settings give a tracker's place among its map's trackers as of the last
    reload; the file may have been edited since (a tracker added ahead of it, not read yet), so
    the entry to write is found by its name (compared as the names' uniqueness is). ``None``
    when the file does not hold the map's trackers at all (not TOML, a hosted map): the caller
    keeps its own path; an error message when the map's trackers there lack this one.
    """
    if name == DEFAULT_TRACKER:
        return None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None
    maps = document.get("maps")
    map_table = maps.get(tenant) if isinstance(maps, dict) else None
    entries = map_table.get("trackers") if isinstance(map_table, dict) else None
    if not isinstance(entries, list):
        return None
    wanted = name.strip().casefold()
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and str(entry.get("name", "")).strip().casefold() == wanted:
            return ("maps", tenant, "trackers", index, "enabled")
    return (
        f"{where} has no tracker {name!r} in map {tenant} any more (edited since it was last"
        " loaded): reload the configuration, then switch the tracker again"
    )
