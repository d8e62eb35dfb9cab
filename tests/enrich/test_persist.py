"""The cache's saved copy: maps warming together are saved once, soon after, not once each."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from tests.support import wait_for
from wanderer_console.enrich.cache import NAMESPACES, CacheFacade, CacheRow
from wanderer_console.enrich.persist import CacheSaver
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.store.writes import StoreWriteError


class CountingStore(SqliteStore):
    """The real store, counting whole-cache saves."""

    saves = 0
    rows: list[int]

    def save_cache_entries(self, rows: Iterable[CacheRow]) -> int:
        self.saves += 1
        written = super().save_cache_entries(rows)
        self.rows = [*getattr(self, "rows", []), written]
        return written


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
        cache.put_with_ttl("character", 90_000_002, {"name": "Other"}, 3600.0)
        await saver.warm([], [])  # a later map: one more save, of what changed only
        await wait_for(lambda: saver.saves >= 2, what="the next save")
        assert store.saves == 2
        assert store.rows == [1, 1]
    finally:
        task.cancel()
        store.close()


async def test_the_copy_is_saved_every_period_without_warming(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "events.db")
    cache = CacheFacade(None)
    saver = CacheSaver(cache, store, every=0.05, delay=5.0)
    task = asyncio.create_task(saver.run())
    try:
        cache.put_with_ttl("character", 90_000_001, {"name": "Pilot"}, 3600.0)
        await wait_for(lambda: store.saves >= 1, what="the change saved without a warm")
        await wait_for(lambda: saver.saves >= 3, what="periodic saves")
        assert store.rows == [1]  # later periods had nothing new to write
    finally:
        task.cancel()
        store.close()


async def test_a_save_writes_only_what_changed_in_small_transactions(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "events.db")
    try:
        cache = CacheFacade(None)
        for n in range(1_200):
            cache.put_with_ttl("character", 90_000_000 + n, {"name": f"Pilot {n}"}, 3600.0)
        assert await cache.save_changed(store, chunk=500) == 1_200
        assert store.rows == [500, 500, 200]
        cache.put_with_ttl("system", 31_000_001, {"name": "J100001"}, 3600.0)
        assert await cache.save_changed(store) == 1
        assert await cache.save_changed(store) == 0  # nothing new
        # A restart reads them all back, and has nothing of its own to write.
        restarted = CacheFacade(None)
        assert restarted.load_warm(store) == 1_201
        assert restarted.peek("character", 90_000_999) == {"name": "Pilot 999"}
        assert await restarted.save_changed(store) == 0
    finally:
        store.close()


class RefusingStore(CountingStore):
    """The real store, refusing the first ``refuse`` saves as a full disk would."""

    refuse = 1

    def save_cache_entries(self, rows: Iterable[CacheRow]) -> int:
        if self.refuse > 0:
            self.refuse -= 1
            raise StoreWriteError(self.path, "save cache", OSError("database or disk is full"))
        return super().save_cache_entries(rows)


async def test_a_skipped_or_refused_save_keeps_its_rows_for_the_next(tmp_path: Path) -> None:
    store = RefusingStore(tmp_path / "events.db")
    cache = CacheFacade(None)
    cache.put_with_ttl("character", 90_000_001, {"name": "Pilot"}, 3600.0)
    room = [False]
    saver = CacheSaver(cache, store, every=0.05, delay=0.0, room=lambda: room[0])
    task = asyncio.create_task(saver.run())
    try:
        await wait_for(lambda: saver.skipped >= 2, what="saves skipped: no room")
        assert store.saves == 0
        room[0] = True  # room again: the first save is refused, the next one writes the row
        await wait_for(lambda: saver.saves >= 1, what="the row saved")
        assert saver.skipped >= 3
        assert store.rows == [1]
        assert [row[1] for row in store.load_cache_entries(cache.version, 0.0)] == ["90000001"]
    finally:
        task.cancel()
        store.close()


async def test_what_waits_for_a_save_is_bounded_by_the_cache(tmp_path: Path) -> None:
    """Saves skipped for a long time (no room on the disk): the ids waiting to be saved stay
    within what the cache holds, not one per entry ever put; the save, when it comes, writes
    what the cache still has."""
    store = CountingStore(tmp_path / "events.db")
    cache = CacheFacade(None, maxsize=100)
    saver = CacheSaver(cache, store, every=0.05, delay=0.0, room=lambda: False)
    task = asyncio.create_task(saver.run())
    try:
        for n in range(10_000):  # a day of kills' pilots, each put once
            cache.put_with_ttl("character", 90_000_000 + n, {"name": f"Pilot {n}"}, 3600.0)
        await wait_for(lambda: saver.skipped >= 1, what="a save skipped: no room")
        assert len(cache._unsaved) <= 2 * 100 * len(NAMESPACES)
    finally:
        task.cancel()
    try:
        assert await cache.save_changed(store) == 100
        assert len(cache._unsaved) == 0
    finally:
        store.close()
