"""The data directory's disk fills during a burst: delivery pauses, nothing repeats or is lost.

The data directory is a real, small tmpfs (mounting it needs root, as CI runs; elsewhere the
test is skipped with the reason). A filler file leaves almost no room, a burst of kills arrives,
and SQLite answers "database or disk is full". The engine must keep what it read, stop sending,
say so on ``/ready``, and carry on once the filler is removed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import connected, fill_disk, posted_kills, wait_for
from tests.support import small_disk as mounted_small_disk
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.server.health import readiness_problems
from wanderer_console.sim import Simulator
from wanderer_console.store.sqlite import SqliteStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

BURST = 600


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted on a fresh directory (unmounted afterwards)."""
    with mounted_small_disk(tmp_path / "data", "16m") as mount:
        yield mount


async def test_a_full_disk_pauses_delivery_reports_it_and_resumes_without_repeats_or_loss(
    small_disk: Path,
) -> None:
    async with Simulator(seed=23) as sim:
        settings = demo_settings(sim, data_dir=small_disk)
        settings.discord.channel_messages_per_minute = 300  # the burst drains in seconds
        runtime = Runtime(settings, data_dir=small_disk)
        await runtime.start()
        try:
            await connected(runtime)
            filler = fill_disk(small_disk, leave=64 * 1024)
            tracked = sorted(sim.tracked_system_ids)
            expected: set[int] = set()
            for i in range(BURST):
                km = sim.generator.make_killmail(system_id=tracked[i % len(tracked)])
                expected.add(int(km["killmail_id"]))
                await sim.killstream.push_kill(km)
            await wait_for(lambda: runtime.store.write_fault is not None, 30)
            # The fault is explicit: /ready says why, and nothing is sent in a loop meanwhile.
            reasons = readiness_problems(runtime)
            assert any("store: cannot write" in r and "full" in r for r in reasons), reasons
            posted_during_fault = len(sim.discord.received)
            await asyncio.sleep(2.0)
            assert len(sim.discord.received) - posted_during_fault <= 2  # at most in flight
            assert runtime.metrics.value("wc_store_writable") == 0
            filler.unlink()
            await wait_for(lambda: runtime.store.write_fault is None, 30)
            await wait_for(lambda: set(posted_kills(sim)) >= expected, 90)
            await runtime.drain(timeout=5.0)
        finally:
            await runtime.stop()
    posted = posted_kills(sim)
    assert set(posted) >= expected  # nothing lost
    assert max(posted.values()) == 1  # nothing posted twice
    assert runtime.metrics.total("wc_store_write_errors_total") >= 1


async def test_the_name_cache_is_not_saved_onto_a_nearly_full_disk(small_disk: Path) -> None:
    # The saved copy of the name cache only spares ESI calls after a restart: on a disk with
    # less than the reserve free (this one has 16 MiB in all) it is never written, so it cannot
    # take the room events and notifications need. What it would have written stays in memory.
    async with Simulator(seed=29) as sim:
        runtime = Runtime(demo_settings(sim, data_dir=small_disk), data_dir=small_disk)
        await runtime.start()
        try:
            await connected(runtime)
            runtime.cache.put_with_ttl("character", 95_000_001, {"name": "Pilot"}, 3600)
            await runtime.cache_saver.warm([], [])  # a map warmed: a save is asked for
            await wait_for(lambda: runtime.cache_saver.skipped >= 1, 20, "the save skipped")
            assert runtime.cache_saver.saves == 0
        finally:
            await runtime.stop()
    assert isinstance(runtime.store.path, Path)
    reopened = SqliteStore(runtime.store.path)
    try:
        assert reopened.load_cache_entries(runtime.cache.version, 0.0) == []
    finally:
        reopened.close()
