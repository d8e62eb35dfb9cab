"""A slow map API holds only its own map's stream, never the pipeline and the kills behind it.

A system added to the map is notified with its static information (class, statics) from the map
API. That call used to be made by the pipeline while it decided the event, so every event queued
behind it (other maps' events, kills) waited for the map API. It is now made on the map's stream
task before the event is queued, and kept: a system is asked for once.
"""

from __future__ import annotations

import pytest

from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.timeout(60)


def _kill_notified(sim: Simulator, kill_id: int) -> bool:
    return any(str(kill_id) in str(message.body) for message in sim.discord.received)


async def test_a_kill_is_delivered_while_the_map_api_is_still_answering_for_a_new_system(
    sim: Simulator, runtime: Runtime
) -> None:
    sim.map.static_info_delay = 3.0
    system = sim.generator.new_system(wormhole=True)
    sim.map.add_system(system.system_id, name=system.name)
    await wait_for(lambda: sim.map.static_info_in_flight == 1, what="the static info asked")

    tracked = sorted(sim.tracked_system_ids)[0]
    kill = sim.generator.make_killmail(system_id=tracked)
    await sim.killstream.push_kill(kill)
    await wait_for(lambda: _kill_notified(sim, kill["killmail_id"]), what="the kill delivered")
    # Delivered while the map API was still working on the system's static information.
    assert sim.map.static_info_in_flight == 1

    def system_notified() -> bool:
        return any(system.name in str(message.body) for message in sim.discord.received)

    await wait_for(system_notified, what="the system's notification")
    # With its static information, asked once (the pipeline found it kept).
    assert sim.map.static_info_calls == 1
