"""The collector's policy: slow full collections freeze their survivors; a refresh reclaims
cycles that died frozen."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from wanderer_console.gcpolicy import (
    YOUNG_THRESHOLD,
    IdleCollector,
    SurvivorFreezer,
    frozen_survivors,
)


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


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Collections:
    """Records the generation of every collection that starts (automatic or not)."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.seen.append(info["generation"])


@pytest.fixture
def collections() -> Iterator[_Collections]:
    thresholds = gc.get_threshold()
    watch = _Collections()
    gc.collect()
    gc.callbacks.append(watch)
    try:
        yield watch
    finally:
        gc.callbacks.remove(watch)
        gc.set_threshold(*thresholds)


def _allocate(count: int) -> list[list[int]]:
    """``count`` tracked containers, kept alive: the youngest generation's count grows by as
    many."""
    return [[] for _ in range(count)]


def test_a_due_collection_waits_while_the_engine_is_busy_and_runs_once_it_is_idle(
    collections: _Collections,
) -> None:
    busy = [True]
    collector = IdleCollector(lambda: busy[0], young=500, backstop=10**7, clock=_Clock())
    collector.install()
    try:
        assert gc.get_threshold()[0] == 10**7  # CPython's own check: only a backstop
        kept = _allocate(2_000)  # four times past the young threshold: due
        assert collector.due() == 0
        assert collector.check() is None  # busy: it waits ...
        assert collections.seen == []  # ... and CPython did not start one either
        busy[0] = False
        assert collector.check() == 0
        assert collections.seen == [0]
        assert collector.collections == [1, 0, 0]
        assert collector.check() is None  # nothing due any more
        assert len(kept) == 2_000
    finally:
        collector.uninstall()


def test_a_collection_due_for_too_long_runs_even_while_busy(collections: _Collections) -> None:
    clock = _Clock()
    collector = IdleCollector(
        lambda: True, young=500, backstop=10**7, most_deferred=0.5, clock=clock
    )
    collector.install()
    try:
        kept = _allocate(1_000)
        assert collector.check() is None
        clock.now += 0.4
        assert collector.check() is None
        clock.now += 0.1  # due for half a second: a burst keeps CPython's cadence
        assert collector.check() == 0
        assert (collections.seen, collector.overdue) == ([0], 1)
        kept += _allocate(1_000)
        assert collector.check() is None  # due again: the wait starts over
        assert len(kept) == 2_000
    finally:
        collector.uninstall()


def test_the_generation_collected_is_the_one_cpython_collects_on_its_own(
    collections: _Collections,
) -> None:
    """Collections by CPython alone, then by the idle collector: the same generations in the
    same order. That includes CPython's check of how much of the oldest generation is new: after
    three middle collections the counts call a full one due, and CPython runs a young one
    instead (the process's heap is large next to what this test adds to it)."""
    gc.set_threshold(300, 2, 2)
    kept: list[list[int]] = []
    while len(collections.seen) < 14:
        kept += _allocate(100)
    alone = collections.seen[:14]
    gc.collect()
    collections.seen.clear()
    collector = IdleCollector(lambda: False, young=300, backstop=10**7, clock=_Clock())
    collector.install()
    due = []
    try:
        for _ in range(14):
            kept += _allocate(400)  # (no collection: the backstop is far)
            due.append(collector.due())
            assert collector.check() is not None
    finally:
        collector.uninstall()
    assert collections.seen == alone
    assert alone[:4] == [0, 0, 0, 1]  # a middle one once two young ones passed its threshold
    assert (due[12], collections.seen[12]) == (2, 0)  # a full one due by the counts, not run
    assert sum(collector.collections) == 14
    assert gc.get_threshold() == (300, 2, 2)


def test_a_collector_turned_off_stays_off(collections: _Collections) -> None:
    gc.set_threshold(0, 10, 10)  # CPython's own way to turn automatic collection off
    collector = IdleCollector(lambda: False, young=10, backstop=10**7, clock=_Clock())
    collector.install()
    try:
        kept = _allocate(1_000)
        assert gc.get_threshold()[0] == 0
        assert collector.check() is None
        assert collections.seen == []
        assert len(kept) == 1_000
    finally:
        collector.uninstall()
    assert gc.get_threshold() == (0, 10, 10)


async def test_the_task_lifts_the_threshold_while_it_runs_and_gives_it_back() -> None:
    thresholds = gc.get_threshold()
    collector = IdleCollector(lambda: False, every=0.001, young=-1, backstop=10**7)
    task = asyncio.create_task(collector.run())
    try:
        await asyncio.sleep(0)
        assert gc.get_threshold()[0] == 10**7
        kept = _allocate(100)  # (young=-1: due whatever the count)
        for _ in range(200):  # bounded: a check runs every millisecond
            if sum(collector.collections):
                break
            await asyncio.sleep(0.001)
        assert sum(collector.collections) >= 1
        assert len(kept) == 100
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert gc.get_threshold() == thresholds


async def test_a_failing_busy_check_gives_cpython_its_cadence_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    thresholds = gc.get_threshold()

    def busy() -> bool:
        raise RuntimeError("no engine")

    collector = IdleCollector(busy, every=0.001, young=-1, backstop=10**7)
    kept = _allocate(100)
    await asyncio.wait_for(collector.run(), 5.0)  # ends: logged, not raised
    assert gc.get_threshold() == thresholds
    assert len(kept) == 100
    assert "idle collector stopped" in caplog.text
