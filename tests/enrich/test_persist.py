"""The cache's saved copy: maps warming together are saved once, soon after, not once each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from tests.support import wait_for
from wanderer_console.enrich.cache import CacheFacade, CacheRow
from wanderer_console.enrich.persist import CacheSaver
from wanderer_console.store.sqlite import SqliteStore


class CountingStore(SqliteStore):
    """The real store, counting whole-cache saves."""

    saves = 0

    def save_cache_entries(self, rows: Iterable[CacheRow]) -> int:
        self.saves += 1
        return super().save_cache_entries(rows)


async def test_many_maps_warming_together_are_saved_once(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "events.db")
    cache = CacheFacade(None)
    cache.put_with_ttl("character", 90_000_001, {"name": "Pilot"}, 3600.0)
    saver = CacheSaver(cache, store, every=600.0, delay=0.2)
    task = asyncio.create_task(saver.run())
    try:
        for _ in range(50):  # fifty maps loaded (nothing to load: no ESI here)
            await saver.warm([], [])
        await wait_for(lambda: saver.saves >= 1, what="the coalesced save")
        await asyncio.sleep(0.5)  # past another delay: nothing more was asked
        assert saver.saves == 1
        assert store.saves == 1
        assert [row[1] for row in store.load_cache_entries(cache.version, 0.0)] == ["90000001"]
        await saver.warm([], [])  # a later map: one more save
        await wait_for(lambda: saver.saves >= 2, what="the next save")
        assert store.saves == 2
    finally:
        task.cancel()
        store.close()


async def test_the_copy_is_saved_every_period_without_warming(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "events.db")
    cache = CacheFacade(None)
    saver = CacheSaver(cache, store, every=0.05, delay=5.0)
    task = asyncio.create_task(saver.run())
    try:
        await wait_for(lambda: store.saves >= 3, what="periodic saves")
    finally:
        task.cancel()
        store.close()
