"""Simulator end to end: all three fakes up on 127.0.0.1, a short scenario, clean stop."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from wanderer_console.sim.simulator import SCENARIO_KINDS, Simulator
from wanderer_console.sim.ulid import is_valid_ulid

pytestmark = pytest.mark.slow


async def collect_sse(url: str, headers: dict[str, str], stop: asyncio.Event) -> list[str]:
    events: list[str] = []
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", url, headers=headers) as resp,
    ):
        async for line in resp.aiter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
            if stop.is_set():
                break
    return events


async def test_start_addresses_and_stop() -> None:
    sim = Simulator(seed=2)
    await sim.start()
    try:
        assert sim.map_url.startswith("http://127.0.0.1:")
        assert sim.discord_url.startswith("http://127.0.0.1:")
        assert sim.killstream_url.startswith("ws://127.0.0.1:")
        assert sim.discord_api_url == sim.discord_url + "/api/v10"
        assert sim.webhook_url("kills") == sim.webhook_url("kills")
        assert sim.webhook_url("kills") != sim.webhook_url("systems")
        systems = sim.tracked_system_ids
        assert any(31_000_000 <= s < 32_000_000 for s in systems)
        assert any(30_000_000 <= s < 31_000_000 for s in systems)
        assert len(sim.tracked_character_ids) >= 3
        headers = {"Authorization": f"Bearer {sim.map_api_key}"}
        async with httpx.AsyncClient(timeout=5) as client:
            resp = await client.get(
                f"{sim.map_url}/api/maps/{sim.map_slug}/systems", headers=headers
            )
            assert resp.status_code == 200
            ids = [s["solar_system_id"] for s in resp.json()["data"]["systems"]]
            assert ids == systems
            hook = await client.post(
                sim.webhook_url("kills"), params={"wait": "true"}, json={"content": "x"}
            )
            assert hook.status_code == 200
            bot = await client.post(
                f"{sim.discord_api_url}/channels/1/messages",
                headers={"Authorization": f"Bot {sim.bot_token}"},
                json={"content": "y"},
            )
            assert bot.status_code == 200
        assert sim.discord.received[0].target == sim.webhook_target("kills")
    finally:
        await asyncio.wait_for(sim.stop(), 5)


async def test_same_seed_same_world() -> None:
    a, b = Simulator(seed=9), Simulator(seed=9)
    async with a, b:
        assert a.tracked_system_ids == b.tracked_system_ids
        assert a.tracked_character_ids == b.tracked_character_ids
        assert a.map_id == b.map_id


async def test_scenario_produces_every_kind() -> None:
    async with Simulator(seed=4) as sim:
        start_systems = set(sim.tracked_system_ids)
        start_characters = set(sim.tracked_character_ids)
        frames: list[list[Any]] = []
        stop = asyncio.Event()
        headers = {"Authorization": f"Bearer {sim.map_api_key}"}
        sse_url = f"{sim.map_url}/api/maps/{sim.map_slug}/events/stream"

        async with (
            connect(f"{sim.killstream_url}/socket/websocket?vsn=2.0.0") as by_system,
            connect(f"{sim.killstream_url}/socket/websocket?vsn=2.0.0") as by_char,
        ):
            join_sys = ["1", "1", "killmails:lobby", "phx_join", {"systems": sorted(start_systems)}]
            join_chr = [
                "1",
                "1",
                "killmails:lobby",
                "phx_join",
                {"character_ids": sorted(start_characters)},
            ]
            await by_system.send(json.dumps(join_sys))
            await by_char.send(json.dumps(join_chr))
            assert json.loads(await by_system.recv())[4]["status"] == "ok"
            assert json.loads(await by_char.recv())[4]["status"] == "ok"

            async def drain(ws: Any) -> None:
                while True:
                    frames.append(json.loads(await ws.recv()))

            sse_task = asyncio.create_task(collect_sse(sse_url, headers, stop))
            drains = [asyncio.create_task(drain(ws)) for ws in (by_system, by_char)]
            await asyncio.sleep(0.2)
            stats = await asyncio.wait_for(sim.run_scenario(3.0, rate=5.0), 6)
            await asyncio.sleep(0.3)
            for task in drains:
                task.cancel()
            await asyncio.gather(*drains, return_exceptions=True)
            stop.set()
            sim.map.drop_connections()
            sse_events = await asyncio.wait_for(sse_task, 3)

    assert set(stats.counts) == set(SCENARIO_KINDS)
    assert all(stats[kind] >= 1 for kind in SCENARIO_KINDS), stats.counts
    # Ran its whole duration (the wait_for above bounds it; an upper bound here would time the
    # machine's load, not the simulator).
    assert stats.elapsed >= 2.5
    assert stats.total >= 10
    delivered = {
        k["killmail_id"] for f in frames if f[3] == "killmail_update" for k in f[4]["killmails"]
    }
    assert set(stats.expected_kill_ids) <= delivered
    assert not set(stats.untracked_kill_ids) & delivered
    assert sse_events[0] == "connected"
    assert sse_events.count("add_system") == stats["add_system"]
    assert sse_events.count("character_added") == stats["add_character"]
    assert sse_events.count("rally_point_added") == stats["add_rally"]
    assert all(is_valid_ulid(e["id"]) for e in sim.map.events)
    assert set(stats.added_system_ids) <= set(sim.tracked_system_ids)
    assert set(stats.added_character_ids) <= set(sim.tracked_character_ids)


async def test_scenario_stops_early_on_event() -> None:
    async with Simulator(seed=5) as sim:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, stop.set)
        stats = await asyncio.wait_for(sim.run_scenario(30.0, rate=5.0, stop=stop), 3)
    # Stopped by the event, long before its 30 s: the wait_for above fails the test otherwise.
    assert stats.elapsed < 30.0
    assert all(stats[kind] >= 1 for kind in SCENARIO_KINDS)
