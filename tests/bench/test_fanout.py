"""The fan-out scenario: its summary, a small real run over a fake fleet, and its pinning."""

from __future__ import annotations

import os

import pytest

from wanderer_console.bench.fanout import run_fanout, summarize
from wanderer_console.bench.pinning import choose_pinning
from wanderer_console.bench.scale import QUICK, engine_process, fleet_running, start_phase
from wanderer_console.sim.fleet import MapFleet


def test_the_summary_takes_medians_per_kill() -> None:
    kills = [
        {"fan_out": 11, "first_ms": 5.0, "last_ms": 15.0, "cpu_ms": 11.0},  # 1.0 ms apart
        {"fan_out": 21, "first_ms": 4.0, "last_ms": 14.0, "cpu_ms": 42.0},  # 0.5 ms apart
        {"fan_out": 5, "first_ms": 3.0, "last_ms": 11.0, "cpu_ms": 10.0},  # 2.0 ms apart
        {"fan_out": 1, "first_ms": 2.0, "last_ms": 2.0, "cpu_ms": 3.0},  # no gap to measure
    ]
    summary = summarize(kills)
    assert summary["kills"] == 4
    assert summary["ms_between_deliveries"] == 1.0
    assert summary["engine_cpu_ms_per_delivery"] == pytest.approx(2.0, abs=0.01)  # 1, 2, 2, 3
    assert summary["first_ms_median"] == 3.5
    assert summarize([])["ms_between_deliveries"] is None


def test_the_most_watched_systems_come_first() -> None:
    fleet = MapFleet(30, seed=3)
    top = fleet.most_watched(5)
    counts = [len(fleet.system_maps[s]) for s in top]
    assert counts == sorted(counts, reverse=True)
    assert counts[0] == max(len(maps) for maps in fleet.system_maps.values())


@pytest.mark.slow
async def test_a_small_run_delivers_every_fan_out_once() -> None:
    result = await run_fanout(20, 2)
    assert result["problems"] == []
    assert len(result["per_kill"]) == 2
    fleet = MapFleet(20, seed=17)  # the same fleet: the kills' systems and their watchers
    expected = [len(fleet.system_maps[s]) for s in fleet.most_watched(2)]
    assert [k["fan_out"] for k in result["per_kill"]] == expected
    for kill in result["per_kill"]:
        assert 0 < kill["first_ms"] <= kill["last_ms"]


@pytest.mark.slow
async def test_the_engine_and_the_fake_services_each_run_on_a_cpu_of_their_own() -> None:
    """Left to the scheduler, the fake Discord's woken thread ran on the engine's CPU: a fifth
    of the largest fan-out's time at 1,000 maps was the engine waiting its turn."""
    pinning = choose_pinning()
    if pinning.router_cpu is None:
        pytest.skip(f"not pinned here: {pinning.why_not}")
    assert pinning.bench_cpu is not None
    fleet = MapFleet(3, seed=17)
    with pinning.bench():
        assert os.sched_getaffinity(0) == {pinning.bench_cpu}
        async with (
            fleet_running(fleet, http=None, prefix="wc-test-pin-") as run,
            engine_process(run.config, run.data, run.log, pinning=pinning) as engine,
        ):
            # taskset sets the CPU, then runs the engine in its place: once the engine is
            # streaming, the process is the engine's.
            await start_phase(fleet, engine, QUICK)
            assert os.sched_getaffinity(engine.pid) == {pinning.router_cpu}
    assert os.sched_getaffinity(0) != {pinning.bench_cpu}  # this thread's CPUs given back
