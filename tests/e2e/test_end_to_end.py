"""End to end: the simulator's real sockets → the engine → the fake Discord.

Each test starts the simulator (fake map SSE + REST, fake Phoenix killstream, fake Discord) on
loopback ports and a real :class:`Runtime` on a temporary data directory.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support import connected, wait_for
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.sim.summary import discord_summary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def messages(sim: Simulator, prefix: str) -> list[Any]:
    """Messages the fake Discord accepted whose first embed title starts with ``prefix``."""
    return [
        m
        for m in sim.discord.received
        if str((m.body.get("embeds") or [{}])[0].get("title", "")).startswith(prefix)
    ]


def embeds(sim: Simulator, prefix: str) -> list[dict[str, Any]]:
    """Every embed the fake Discord accepted whose title starts with ``prefix`` (batches too)."""
    return [
        embed
        for m in sim.discord.received
        for embed in m.body.get("embeds") or []
        if str(embed.get("title", "")).startswith(prefix)
    ]


@pytest.fixture
def sim_options() -> dict[str, Any]:
    """The shared ``sim`` and ``runtime`` fixtures (tests/conftest.py), on seed 3."""
    return {"seed": 3}


async def test_kill_system_character_and_rally_payloads(sim: Simulator, runtime: Runtime) -> None:
    gen = sim.generator
    system_id = sorted(sim.tracked_system_ids)[0]
    system_name = gen.system(system_id).name

    # A kill in a tracked system, nobody tracked involved → the system-kill webhook.
    km = gen.make_killmail(system_id=system_id, exclude_character_ids=sim.tracked_character_ids)
    await sim.killstream.push_kill(km)
    footer = f"Killmail ID: {km['killmail_id']}"
    (kill,) = await wait_for(
        lambda: [
            m
            for m in sim.discord.received
            if str(m.body["embeds"][0].get("footer", {}).get("text", "")).startswith(footer)
        ]
    )
    assert kill.target == f"webhook:{sim.webhook_id('system-kills')}"
    embed = kill.body["embeds"][0]
    ship = km["victim"]["ship_name"]
    assert embed["title"] == f"{ship} destroyed in {system_name}"
    assert embed["url"] == f"https://zkillboard.com/kill/{km['killmail_id']}/"
    assert embed["author"]["name"] == "Killmail"
    assert embed["author"]["url"] == embed["url"]
    assert embed["thumbnail"]["url"].startswith(
        f"https://images.evetech.net/types/{km['victim']['ship_type_id']}/render"
    )
    assert km["victim"]["character_name"] in embed["description"]
    assert f"lost their **{ship}**" in embed["description"]
    assert "ISK ISK" not in embed["description"]
    assert "Value: " in embed["description"]
    assert embed["timestamp"].startswith(km["kill_time"][:19])
    assert isinstance(embed["color"], int)
    assert kill.body["allowed_mentions"] == {"parse": []}
    assert kill.body["username"] == "Wanderer"

    # A new system → the bot channel configured for systems.
    new_system = gen.new_system(wormhole=True)
    sim.map.add_system(new_system.system_id, name=new_system.name)
    (system_msg,) = await wait_for(lambda: messages(sim, "New System Tracked"))
    assert system_msg.target == "channel:100000000000000001"
    assert system_msg.headers.get("authorization") == f"Bot {sim.bot_token}"
    embed = system_msg.body["embeds"][0]
    assert embed["title"] == f"New System Tracked: {new_system.name}"
    assert "wormhole system" in embed["description"]
    assert embed["color"] == 0x9D4EDD
    assert embed["footer"]["text"].startswith(f"System ID: {new_system.system_id}")
    field_names = [f["name"] for f in embed["fields"]]
    assert field_names[0] == "System"
    assert "Class" in field_names
    assert "username" not in system_msg.body  # bot messages take no webhook-only fields

    # A new character → the primary webhook, with the EVE id resolved through REST.
    pilot = gen.new_character()
    sim.map.add_character(pilot.eve_id, pilot.name)
    (char_msg,) = await wait_for(lambda: messages(sim, "New Character Tracked"))
    assert char_msg.target == f"webhook:{sim.webhook_id('primary')}"
    embed = char_msg.body["embeds"][0]
    assert embed["title"] == f"New Character Tracked: {pilot.name}"
    assert embed["url"] == f"https://zkillboard.com/character/{pilot.eve_id}/"
    assert embed["color"] == 0x00FFFF
    assert embed["footer"]["text"].startswith(f"Character ID: {pilot.eve_id}")
    assert embed["fields"][0]["name"] == "Character"

    # A rally → the rally webhook, pinging only the configured role.
    sim.map.add_rally(system_id, message="form up")
    (rally,) = await wait_for(lambda: messages(sim, "⚔️ Rally Point Created"))
    assert rally.target == f"webhook:{sim.webhook_id('rally')}"
    assert rally.body["content"].startswith("<@&200000000000000002>")
    assert "Rally point created!" in rally.body["content"]
    assert rally.body["allowed_mentions"] == {"parse": [], "roles": ["200000000000000002"]}
    embed = rally.body["embeds"][0]
    assert "has created a rally point in" in embed["description"]
    assert "💬 form up" in embed["description"]
    assert [f["name"] for f in embed["fields"]][:2] == ["System", "Created By"]

    assert discord_summary(sim.discord)["duplicate_deliveries"] == 0


async def test_untracked_kill_is_not_notified_and_duplicates_are_absorbed(
    sim: Simulator, runtime: Runtime
) -> None:
    gen = sim.generator
    tracked = sorted(sim.tracked_system_ids)[0]
    untracked = next(
        s.system_id
        for s in (gen.new_system() for _ in range(50))
        if s.system_id not in sim.tracked_system_ids
    )
    quiet = gen.make_killmail(system_id=untracked, exclude_character_ids=sim.tracked_character_ids)
    loud = gen.make_killmail(system_id=tracked)
    await sim.killstream.push_kill(quiet)
    await sim.killstream.push_kill(loud)
    await sim.killstream.push_kill(loud)  # and the server itself sends real-time updates twice
    footer = f"Killmail ID: {loud['killmail_id']}"
    await wait_for(lambda: [m for m in sim.discord.received if footer in str(m.body["embeds"][0])])
    await runtime.drain(timeout=2.0)
    kills = [m for m in sim.discord.received if "Killmail ID" in str(m.body["embeds"][0])]
    assert len(kills) == 1
    assert runtime.metrics.total("wc_events_duplicate_total") >= 1


async def test_restart_resumes_from_the_saved_cursor(sim: Simulator, tmp_path: Path) -> None:
    settings = demo_settings(sim, data_dir=tmp_path)
    gen = sim.generator
    first = Runtime(settings, data_dir=tmp_path)
    await first.start()
    await connected(first)

    published: list[dict[str, Any]] = []

    async def stream_systems(count: int) -> None:
        for _ in range(count):
            system = gen.new_system()
            published.append(sim.map.add_system(system.system_id, name=system.name))
            await asyncio.sleep(0.01)

    await stream_systems(5)
    await wait_for(lambda: len(embeds(sim, "New System Tracked")) >= 3)
    # Stop mid-stream: events keep coming while the engine is down.
    producer = asyncio.create_task(stream_systems(10))
    await asyncio.sleep(0.03)
    await first.stop()
    await producer

    second = Runtime(settings, data_dir=tmp_path)
    cursor = second.store.get_cursor("sse:demo")
    assert cursor is not None
    await second.start()
    try:
        await connected(second)
        await wait_for(lambda: len(embeds(sim, "New System Tracked")) >= len(published))
        await second.drain(timeout=3.0)
        await asyncio.sleep(0.3)
    finally:
        await second.stop()

    resumed = sim.map.connect_log[-1]
    assert resumed["last_event_id"] == cursor
    titles = [embed["title"] for embed in embeds(sim, "New System Tracked")]
    assert len(titles) == len(published)
    assert len(set(titles)) == len(titles)
    assert discord_summary(sim.discord)["duplicate_deliveries"] == 0
