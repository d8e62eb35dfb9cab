"""The runtime's task supervisor: restart after a crash, a bounded stop.

(No restart while stopping: ``tests/e2e/test_bad_input.py``, through the runtime.)
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from wanderer_console.supervisor import TaskSupervisor
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(20)


def _errors(metrics: Metrics, task: str) -> float:
    return metrics.value("wc_errors_total", component=task)


async def test_a_crashed_task_is_counted_and_started_again() -> None:
    metrics = Metrics()
    supervisor = TaskSupervisor(metrics)
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
    await asyncio.wait_for(second_run.wait(), 5)  # after the first backoff (about a second)
    assert _errors(metrics, "flaky") == 1
    await supervisor.stop()
    assert not supervisor


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
