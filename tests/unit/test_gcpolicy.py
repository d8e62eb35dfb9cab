"""The collector's policy: slow full collections freeze their survivors; a refresh reclaims
cycles that died frozen."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from wanderer_console.gcpolicy import YOUNG_THRESHOLD, SurvivorFreezer, frozen_survivors


@pytest.fixture
def restore_gc() -> Iterator[None]:
    yield
    gc.unfreeze()


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


async def test_a_slow_full_collection_freezes_its_survivors(restore_gc: None) -> None:
    freezer = SurvivorFreezer(asyncio.get_running_loop(), slow=0.0)
    survivor = [_Node() for _ in range(100)]
    freezer.install()
    try:
        gc.unfreeze()
        gc.collect()  # a full collection: the freeze is scheduled on the loop, not done inside
        assert gc.get_freeze_count() == 0
        await asyncio.sleep(0)
        assert freezer.freezes == 1
        assert gc.get_freeze_count() > len(survivor)
        assert gc.get_count()[2] == 0  # the oldest generation holds nothing left to walk
        gc.collect(0)  # the youngest generation's collections are not watched
        await asyncio.sleep(0)
        assert freezer.freezes == 1
        gc.collect(1)  # a middle one is: its survivors go to the oldest generation
        await asyncio.sleep(0)
        assert freezer.freezes == 2
    finally:
        freezer.uninstall()


async def test_a_fast_full_collection_freezes_nothing(restore_gc: None) -> None:
    freezer = SurvivorFreezer(asyncio.get_running_loop(), slow=3600.0)
    freezer.install()
    try:
        gc.unfreeze()
        gc.collect()
        await asyncio.sleep(0)
        assert (freezer.freezes, gc.get_freeze_count()) == (0, 0)
        assert freezer.slowest > 0
    finally:
        freezer.uninstall()
    gc.collect()
    await asyncio.sleep(0)
    assert freezer.freezes == 0  # uninstalled: no longer watching


async def test_a_refresh_reclaims_a_cycle_that_died_frozen(restore_gc: None) -> None:
    freezer = SurvivorFreezer(asyncio.get_running_loop())
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    gc.freeze()
    del a, b  # a cycle among frozen objects: no collection reaches it ...
    gc.collect()
    assert gone() is not None
    assert freezer.refresh() >= 2  # ... until a refresh walks the frozen objects once more
    assert gone() is None
    assert gc.get_freeze_count() > 0


async def test_the_task_watches_while_it_runs() -> None:
    freezer = SurvivorFreezer(asyncio.get_running_loop())
    task = asyncio.create_task(freezer.run())
    await asyncio.sleep(0)
    assert freezer._watch in gc.callbacks
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert freezer._watch not in gc.callbacks


async def test_a_benchmark_process_takes_the_policy_and_gives_it_back() -> None:
    thresholds = gc.get_threshold()
    gc.unfreeze()
    with frozen_survivors(asyncio.get_running_loop()) as freezer:
        assert gc.get_freeze_count() > 0
        assert freezer._watch in gc.callbacks
        assert gc.get_threshold()[0] >= YOUNG_THRESHOLD
    assert freezer._watch not in gc.callbacks
    assert (gc.get_freeze_count(), gc.get_threshold()) == (0, thresholds)
