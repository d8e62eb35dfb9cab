"""Sharding end to end: map events grow the subscription past one socket and shrink it back; a
kill in a system that moves between sockets reaches Discord exactly once.

The simulator's killstream enforces 20 systems per socket here (the real server: 10,000), and
the runtime shards with the same limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest

from tests.support import wait_for
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.kill_sources import ShardLimits
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _kill_embeds(sim: Simulator, killmail_id: int) -> int:
    footer = f"Killmail ID: {killmail_id}"
    return sum(
        1
        for m in sim.discord.received
        for embed in m.body.get("embeds") or []
        if str((embed.get("footer") or {}).get("text", "")).startswith(footer)
    )


async def test_a_kill_in_a_moving_system_reaches_discord_once(tmp_path: Path) -> None:
    async with Simulator(seed=21) as sim:
        ks = sim.killstream
        ks.max_systems, ks.max_characters = 20, 100
        runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
        runtime.kills.limits = ShardLimits(systems=20, characters=100)
        await runtime.start()
        try:
            kills = runtime.kills

            def settled() -> bool:
                subscribed = Counter(i for systems, _ in ks.subscriptions() for i in systems)
                plan = kills.plans.get("systems")
                return (
                    plan is not None
                    and all(not shard.held for shard in plan.shards)
                    and all(
                        s.health.state is ConnectionState.CONNECTED for s in kills.sockets.values()
                    )
                    and subscribed == Counter(runtime.index.all_system_ids())
                )

            await wait_for(lambda: "systems" in kills.sockets and settled())
            # The map grows past one socket's limit: a second systems socket opens.
            added = [sim.generator.new_system().id for _ in range(30)]
            for system_id in added:
                sim.map.add_system(system_id)
            await wait_for(lambda: runtime.index.all_system_ids() >= set(added))
            await wait_for(lambda: settled() and len(kills.plans["systems"].shards) == 2)
            assert sorted(k for k in kills.sockets if k.startswith("systems")) == [
                "systems:1",
                "systems:2",
            ]
            second = kills.plans["systems"].shards[1]
            target = sorted(second.ids)[-1]

            # Systems leave the map: what is left fits in one socket, the second one drains
            # into the first. The server confirms subscribes late, so the moving systems are
            # followed by both sockets for a while: a kill then arrives on both.
            ks.subscribe_reply_delay = 0.5
            first_added = [s for s in added if s not in second.ids]
            leaving = first_added + [s for s in sorted(second.ids) if s != target][:5]
            assert len(runtime.index.all_system_ids()) - len(leaving) <= 15  # 75 % of 20
            for system_id in leaving:
                sim.map.remove_system(system_id)
            await wait_for(
                lambda: sum(1 for systems, _ in ks.subscriptions() if target in systems) == 2,
                what="the moving system followed by both sockets",
            )
            kill = sim.generator.make_killmail(
                system_id=target, exclude_character_ids=sim.tracked_character_ids
            )
            assert await ks.push_kill(kill) == 2
            await wait_for(lambda: settled() and "systems" in kills.sockets, timeout=30)
            await wait_for(lambda: _kill_embeds(sim, kill["killmail_id"]) >= 1)
            await asyncio.sleep(1.0)  # a second notification would have arrived by now
            assert _kill_embeds(sim, kill["killmail_id"]) == 1
            assert ks.refused_joins == 0
            assert ks.limit_crashes == 0
            names = {c["name"] for c in runtime.snapshot()["connections"]}
            assert "killstream:systems" in names
            assert "killstream:systems:2" not in names
        finally:
            await runtime.stop()
