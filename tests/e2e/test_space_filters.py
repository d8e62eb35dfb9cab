"""The kill filters that need a system's static facts (wormhole class, region), end to end over
the simulator: the running console must know them for a tracked system, or such a filter
matches nothing."""

from __future__ import annotations

from typing import Any

from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


async def _kill_delivered(sim: Simulator, runtime: Runtime, system_id: int) -> dict[str, Any]:
    await wait_for(lambda: runtime.kills.following({system_id}), 20, "followed")
    kill = sim.generator.make_killmail(
        system_id=system_id, exclude_character_ids=sim.tracked_character_ids
    )
    await sim.killstream.push_kill(kill)
    footer = f"Killmail ID: {kill['killmail_id']}"

    def embed() -> dict[str, Any] | None:
        for e in sim.discord.embeds:
            if str((e.get("footer") or {}).get("text", "")).startswith(footer):
                return e
        return None

    found: dict[str, Any] = await wait_for(embed, 20, "the kill delivered")
    return found


async def test_a_wormhole_class_filter_matches_a_tracked_system_of_that_class(
    sim: Simulator, runtime: Runtime
) -> None:
    jspace = [s for s in sim.tracked_system_ids if 1 <= sim.generator.system(s).system_class <= 6]
    assert jspace, "the simulated map tracks a C1-C6 system"
    system = sim.generator.system(jspace[0])
    settings = runtime.settings.model_copy(deep=True)
    settings.maps[sim.map_slug].filters.include_security_classes = [f"c{system.system_class}"]
    runtime.apply_settings(settings)
    embed = await _kill_delivered(sim, runtime, system.id)
    assert str(embed["footer"]["text"]).startswith("Killmail ID: ")


async def test_a_region_filter_matches_a_tracked_system_in_that_region(
    sim: Simulator, runtime: Runtime
) -> None:
    system = sim.generator.system(sorted(sim.tracked_system_ids)[0])
    settings = runtime.settings.model_copy(deep=True)
    settings.maps[sim.map_slug].filters.require_regions = [system.region_id]
    runtime.apply_settings(settings)
    embed = await _kill_delivered(sim, runtime, system.id)
    assert str(embed["footer"]["text"]).startswith("Killmail ID: ")


async def test_a_victim_ship_group_filter_matches_a_kill_of_that_group(
    sim: Simulator, runtime: Runtime
) -> None:
    """``require_victim_ship_groups`` (aa-killtracker's capital trackers): the group comes from
    the type's ESI document, looked up when a filter asks for it."""
    system_id = sorted(sim.tracked_system_ids)[0]
    await wait_for(lambda: runtime.kills.following({system_id}), 20, "followed")
    kill = sim.generator.make_killmail(
        system_id=system_id, exclude_character_ids=sim.tracked_character_ids
    )
    group = sim.generator.ship_types[kill["victim"]["ship_type_id"]].group_id
    settings = runtime.settings.model_copy(deep=True)
    settings.maps[sim.map_slug].filters.require_victim_ship_groups = [group]
    runtime.apply_settings(settings)
    await sim.killstream.push_kill(kill)
    footer = f"Killmail ID: {kill['killmail_id']}"
    await wait_for(
        lambda: any(
            str((e.get("footer") or {}).get("text", "")).startswith(footer)
            for e in sim.discord.embeds
        ),
        20,
        "the kill delivered",
    )
