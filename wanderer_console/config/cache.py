"""The ``[cache]`` section: how the name cache keeps what notifications need at hand.

The tracked pilots and systems of every map are the critical entries: each notification of the
map names them. They are warmed when a map loads, kept whatever the cache's size bound (pinned),
and reloaded before they expire. Every field is read at use, so every field applies live.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from wanderer_console.config.section import Live, Section

__all__ = ["CacheSettings"]

_FRESH: Final = Live("the cache refresh task reads it at every round")


class CacheSettings(Section):
    """Warming, pinning and refreshing the critical name-cache entries."""

    warm_on_load: Annotated[bool, Live("read when a map has loaded")] = True
    """Load a map's tracked pilots (their corporations, alliances) and systems into the cache
    as soon as the map has loaded, before its first kill."""
    pin_tracked: Annotated[bool, _FRESH] = True
    """Keep the tracked pilots and systems whatever the size bound (``[esi] cache_entries``)."""
    refresh_interval_seconds: Annotated[float, _FRESH] = Field(default=300.0, ge=1, le=86_400)
    """How often the pinned entries are looked at."""
    refresh_ahead_seconds: Annotated[float, _FRESH] = Field(default=600.0, ge=0, le=86_400)
    """A pinned entry that expires within this is reloaded (from ESI) before it does."""
