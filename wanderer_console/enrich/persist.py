"""The name cache survives restarts: warmed for a map when it loads, saved to the store often.

A restart starts warm (the runtime loads the saved entries before the sources connect), so the
first kills after it render with names instead of waiting on ESI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from wanderer_console.enrich.cache import CacheFacade, CacheStore

__all__ = ["keep_saved", "warm_and_save"]


async def warm_and_save(
    cache: CacheFacade, store: CacheStore, characters: Iterable[int], systems: Iterable[int]
) -> None:
    """Load the names a map's notifications will need before the first kill arrives."""
    await cache.warm(list(characters), list(systems))
    cache.save_warm(store)


async def keep_saved(cache: CacheFacade, store: CacheStore, *, every: float = 600.0) -> None:
    """Every ``every`` seconds: drop expired entries and save a warm copy (a supervised task)."""
    while True:
        await asyncio.sleep(every)
        cache.expire()
        cache.save_warm(store)
