"""The notifier's richer messages, end to end over the simulator: the "Recent Kills" field of a
new-system notification, read from the killstream's REST API and kept in the cache facade."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 11, "killstream_rest": True}


async def test_a_new_system_shows_its_recent_kills(sim: Simulator, runtime: Runtime) -> None:
    system = sim.generator.new_system(wormhole=True)
    kills = [sim.generator.make_killmail(system_id=system.system_id) for _ in range(4)]
    for kill in kills:
        await sim.killstream.push_kill(kill)  # not tracked yet: nothing notified
    sim.map.add_system(system.system_id, name=system.name)

    def system_embed() -> dict[str, Any] | None:
        for embed in sim.discord.embeds:
            if embed.get("title") == f"New System Tracked: {system.name}":
                return embed
        return None

    embed = await wait_for(system_embed, 20, "the new-system notification")
    (field,) = [f for f in embed["fields"] if f["name"] == "Recent Kills"]
    lines = field["value"].split("\n")
    assert len(lines) == 3  # the newest three of four
    ids = {int(k["killmail_id"]) for k in kills}
    shown = {int(line.split("/kill/")[1].split("/")[0]) for line in lines}
    assert shown <= ids
    assert len(shown) == 3
    # Kept in the cache facade: asking again does not reach the killstream again.
    recent = runtime.recent_kills
    assert recent is not None
    asked = recent.requests
    again = await recent.for_system(system.system_id)
    assert again is not None
    assert {k["killmail_id"] for k in again} == shown
    assert recent.requests == asked
    assert runtime.cache.stats()["namespaces"]["recent_kills"]["size"] >= 1


async def test_a_text_only_route_gets_the_plain_text_form(sim: Simulator, runtime: Runtime) -> None:
    """``maps.<key>.discord.text_only = ["system"]`` (live): new systems arrive as text, with the
    Recent Kills lines; kills on the same map keep their embeds."""
    settings = runtime.settings.model_copy(deep=True)
    settings.maps[sim.map_slug].discord.text_only = ["system"]
    runtime.apply_settings(settings)
    system = sim.generator.new_system(wormhole=True)
    kill = sim.generator.make_killmail(system_id=system.system_id)
    await sim.killstream.push_kill(kill)
    sim.map.add_system(system.system_id, name=system.name)

    def text_message() -> str | None:
        for message in sim.discord.received:
            content = str(message.body.get("content") or "")
            if f"**New System Tracked: {system.name}**" in content:
                assert not message.body.get("embeds")
                return content
        return None

    content = await wait_for(text_message, 20, "the plain-text system notification")
    assert f"/kill/{kill['killmail_id']}/" in content.split("Recent Kills:")[1]
    # A kill in the now tracked system still comes as an embed (system_kill is not text-only).
    await wait_for(lambda: runtime.kills.following({system.system_id}), 20, "followed")
    second = sim.generator.make_killmail(system_id=system.system_id)
    await sim.killstream.push_kill(second)
    footer = f"Killmail ID: {second['killmail_id']}"
    await wait_for(
        lambda: any(
            str((e.get("footer") or {}).get("text", "")).startswith(footer)
            for e in sim.discord.embeds
        ),
        20,
        "the kill as an embed",
    )
