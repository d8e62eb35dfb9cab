"""The name cache survives restarts: warmed for a map when it loads, saved to the store often.

A restart starts warm (the runtime loads the saved entries before the sources connect), so the
first kills after it render with names instead of waiting on ESI.

A save writes only the entries put since the last one, a few hundred a transaction with the event
loop free between them, and saves are coalesced: maps warming together (a thousand loading at
start) ask for one save a few seconds after the last of them, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from wanderer_console.enrich.cache import CacheFacade, CacheStore
from wanderer_console.store.writes import StoreWriteError

__all__ = ["CacheSaver"]


class CacheSaver:
    """Warms the cache for a map and keeps a saved copy: every ``every`` seconds, and ``delay``
    seconds after warming finished (one save for every warm finished meanwhile).

    The copy only saves ESI calls after a restart, so it never competes for a store in trouble:
    a save is skipped while the store cannot write or ``room()`` says the disk is nearly full
    (what it would have written is kept for the next save), so the last free space stays for
    events and notifications.
    """

    def __init__(
        self,
        cache: CacheFacade,
        store: CacheStore,
        *,
        every: float = 600.0,
        delay: float = 5.0,
        room: Callable[[], bool] = lambda: True,
    ) -> None:
        self._cache = cache
        self._store = store
        self._every = every
        self._delay = delay
        self._room = room
        self._wanted = asyncio.Event()
        self.saves = 0
        """Saves done (the periodic and the requested ones)."""
        self.skipped = 0
        """Saves skipped or refused: the store could not write, or the disk was nearly full."""

    async def warm(self, characters: Iterable[int], systems: Iterable[int]) -> None:
        """Load the names a map's notifications will need before its first kill, then ask for a
        save."""
        await self._cache.warm(list(characters), list(systems))
        self._wanted.set()

    async def run(self) -> None:
        """Save when asked (after ``delay``) or every ``every`` seconds (a supervised task)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._every):
                    await self._wanted.wait()
            if self._wanted.is_set():
                await asyncio.sleep(self._delay)  # others warming now land in the same save
                self._wanted.clear()
            self._cache.expire()
            if self._store.write_fault is not None or not self._room():
                self.skipped += 1
                continue
            try:
                await self._cache.save_changed(self._store)
            except StoreWriteError:
                self.skipped += 1  # the rows wait for the next save (the store logged why)
                continue
            self.saves += 1
