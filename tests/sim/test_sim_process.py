"""The simulator in its own process: the console connects to it and it pushes the asked load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support import connected, wait_for
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim.process import SimProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


async def test_console_runs_against_a_simulator_process(tmp_path: Path) -> None:
    async with SimProcess(seed=3) as sim:
        assert sim.address is not None
        assert sim.address.map_url.startswith("http://127.0.0.1:")
        assert set(sim.address.webhooks) >= {"primary", "system-kills", "rally"}
        runtime = Runtime(demo_settings(sim.address, data_dir=tmp_path), data_dir=tmp_path)
        await runtime.start()
        try:
            await connected(runtime)
            assert (await sim.stats())["pushed"] == 0
            await sim.set_rate(200)
            await asyncio.sleep(1.0)
            pushed = (await sim.stats())["pushed"]
            assert 100 <= pushed <= 300  # about 200 per second, never a burst
            # Every pushed kill reaches the console's pipeline over the real socket.
            await wait_for(lambda: runtime.metrics.total("wc_events_received_total") >= pushed, 10)
            await wait_for(lambda: runtime.metrics.total("wc_notifications_queued_total") > 0, 10)
        finally:
            await runtime.stop()
    assert sim.address is not None  # the address outlives the process; the process is gone
    with pytest.raises(RuntimeError, match="not started"):
        await sim.stats()


async def test_unknown_request_is_answered_not_fatal() -> None:
    async with SimProcess() as sim:
        answer = await sim._ask({"jump": 1})
        assert "unknown request" in answer["error"]
        assert (await sim.stats())["pushed"] == 0
