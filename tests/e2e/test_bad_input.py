"""Bad input over real sockets is counted and skipped; the events after it still flow."""

from __future__ import annotations

import pytest

from tests.e2e.test_end_to_end import messages, sim_options
from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

__all__ = ["sim_options"]  # the end-to-end module's simulator seed, for the shared fixtures

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


async def test_unknown_and_malformed_map_events(sim: Simulator, runtime: Runtime) -> None:
    sim.map.extra_event_types = frozenset({"mystery_event_from_the_future"})
    # Every type asked for (no events filter): a newer server's types reach the console. The
    # stream reads its map's settings at each connect.
    runtime.settings.maps["demo"].sse_events = ["*"]
    sim.map.drop_connections()  # reconnect so the new stream carries the extra type
    await wait_for(lambda: sim.map.open_streams == 1 and len(sim.map.connect_log) >= 2)
    await wait_for(lambda: runtime.snapshot()["connections"][0]["state"] == "connected", timeout=15)
    sim.map.publish("mystery_event_from_the_future", {"anything": 1})
    sim.map.publish("add_system", {"solar_system_id": "not-a-number"})
    system = sim.generator.new_system()
    sim.map.add_system(system.system_id, name=system.name)
    (delivered,) = await wait_for(lambda: messages(sim, "New System Tracked"))
    assert delivered.body["embeds"][0]["title"] == f"New System Tracked: {system.name}"
    m = runtime.metrics
    assert m.value("wc_events_unknown_type_total", source="sse:demo") == 1
    assert m.value("wc_events_invalid_total", source="sse:demo", reason="payload") == 1
    assert m.total("wc_errors_total") == 0
    # Every event, good or bad, is in the event log (nothing is lost for replay).
    assert runtime.store.event_count() == 3


async def test_malformed_killmails_do_not_stop_the_socket(sim: Simulator, runtime: Runtime) -> None:
    gen = sim.generator
    tracked = sorted(sim.tracked_system_ids)[0]
    bad = {"system_id": tracked, "victim": {"ship_type_id": 587}}  # no killmail_id
    await sim.killstream.push_kill(bad)
    good = gen.make_killmail(system_id=tracked)
    await sim.killstream.push_kill(good)
    footer = f"Killmail ID: {good['killmail_id']}"
    await wait_for(lambda: [m for m in sim.discord.received if footer in str(m.body["embeds"][0])])
    assert (
        runtime.metrics.value("wc_events_invalid_total", source="killstream", reason="killmail")
        >= 1
    )
    states = {c["name"]: c["state"] for c in runtime.snapshot()["connections"]}
    assert states["killstream:systems"] == "connected"


async def test_a_task_failing_while_being_cancelled_is_not_restarted(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import time

    starts = 0

    async def fails_on_cancel() -> None:
        nonlocal starts
        starts += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            raise RuntimeError("cleanup went wrong") from None

    runtime._tasks.spawn("fragile", fails_on_cancel)
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await runtime.stop()
    assert time.monotonic() - started < 5  # not left running until the 10 s shutdown bound
    assert starts == 1
    assert any("task failed while stopping" in r.getMessage() for r in caplog.records)
    assert not any("did not stop in time" in r.getMessage() for r in caplog.records)
