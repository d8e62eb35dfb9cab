"""The runtime's task supervisor: restart after a crash, a bounded stop.

(No restart while stopping: ``tests/e2e/test_bad_input.py``, through the runtime.)
"""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from wanderer_console.domain.clock import FrozenClock
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.supervisor import TaskSupervisor
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(20)


def _errors(metrics: Metrics, task: str) -> float:
    return metrics.value("wc_errors_total", component=task)


async def test_a_crashed_task_is_counted_and_started_again() -> None:
    metrics = Metrics()
    clock = FrozenClock()
    supervisor = TaskSupervisor(metrics, clock=clock)
    runs = 0
    second_run = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            raise RuntimeError("first run fails")
        second_run.set()
        await asyncio.Event().wait()

    supervisor.spawn("flaky", flaky)
    assert supervisor
    await asyncio.wait_for(second_run.wait(), 5)
    assert _errors(metrics, "flaky") == 1
    assert len(clock.sleeps) == 1
    assert 0.5 <= clock.sleeps[0] <= 1.0  # after the first backoff (about a second)
    await supervisor.stop()
    assert not supervisor


async def test_the_backoff_doubles_and_resets_after_a_long_healthy_run() -> None:
    clock = FrozenClock()
    supervisor = TaskSupervisor(
        Metrics(), clock=clock, backoff=lambda: Backoff(1.0, 60.0, rng=random.Random(7))
    )
    runs = 0
    done = asyncio.Event()

    async def failing() -> None:
        nonlocal runs
        runs += 1
        if runs == 4:
            clock.advance(61)  # a healthy run of over a minute, then a failure
        if runs == 6:
            done.set()
            await asyncio.Event().wait()
        raise RuntimeError(f"run {runs} fails")

    supervisor.spawn("failing", failing)
    await asyncio.wait_for(done.wait(), 5)
    await supervisor.stop()
    bounds = [1.0, 2.0, 4.0, 1.0, 2.0]  # doubling, back to the base after the long run
    assert len(clock.sleeps) == len(bounds)
    for slept, bound in zip(clock.sleeps, bounds, strict=True):
        assert bound / 2 <= slept <= bound


async def test_stop_is_bounded_by_a_task_that_ignores_cancellation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = TaskSupervisor(Metrics())
    release = asyncio.Event()
    running = asyncio.Event()

    async def stubborn() -> None:
        running.set()
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                continue  # refuses to stop until released

    supervisor.spawn("stubborn", stubborn)
    await running.wait()
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(supervisor.stop(timeout=0.2), 2)
    assert "task did not stop in time" in caplog.text
    release.set()
    await asyncio.sleep(0.01)
