"""The Discord bot end to end: the engine against the simulator's fake gateway and fake Discord.

Slash commands arrive over a real websocket (``INTERACTION_CREATE``) and are answered over HTTP
at the interaction callback endpoint; a priority system added that way makes the next kill in
it ping the people in voice (``@here`` when nobody is there).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.support import connected, wait_for
from wanderer_console.config.model import Settings
from wanderer_console.console_api import EngineSnapshot
from wanderer_console.control.discord_commands import COMMANDS
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.sim.discord import ReceivedMessage
from wanderer_console.sim.discord_gateway import FakeGateway, Interaction
from wanderer_console.sim.simulator import SIM_GUILD_ID, SIM_VOICE_CHANNEL

pytestmark = pytest.mark.slow

PILOT_IN_VOICE = "700000000000000001"
COMMAND_ROLE = "800000000000000001"


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 7, "gateway": True, "discord_webhook_limit": 100}


@pytest.fixture
def runtime_settings(sim: Simulator, tmp_path: Path) -> Settings:
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.discord.command_role_id = COMMAND_ROLE
    return settings


@pytest.fixture
async def bot(runtime: Runtime, sim: Simulator) -> FakeGateway:
    assert runtime.gateway is not None
    assert sim.gateway is not None
    await wait_for(runtime.gateway.ready.is_set, 10, "the gateway's READY")
    await wait_for(
        lambda: runtime.gateway is not None and runtime.gateway.voice.known(SIM_GUILD_ID),
        10,
        "GUILD_CREATE",
    )
    return sim.gateway


def _options(*words: str, **values: str) -> list[dict[str, Any]]:
    """Discord's nesting: sub-command group, sub-command, then the values."""
    leaf: list[dict[str, Any]] = [
        {"type": 3, "name": name, "value": value} for name, value in values.items()
    ]
    for i, word in enumerate(reversed(words)):
        kind = 1 if i == 0 else 2
        leaf = [{"type": kind, "name": word, "options": leaf}]
    return leaf


async def _command(
    gateway: FakeGateway, *words: str, roles: list[str] | None = None, **values: str
) -> str:
    interaction = await gateway.inject_interaction(_options(*words, **values), roles=roles)
    await wait_for(lambda: interaction.final_text() is not None, 10, f"answer to {words}")
    _ephemeral(interaction)
    text = interaction.final_text()
    assert text is not None
    return text


def _ephemeral(interaction: Interaction) -> None:
    first = interaction.responses[0]
    assert first["type"] in (4, 5)
    assert first["data"]["flags"] == 64
    assert interaction.answered_at is not None
    assert interaction.answered_at - interaction.sent_at < 3.0


def _kill_messages(sim: Simulator, killmail_id: int) -> list[ReceivedMessage]:
    return [
        m
        for m in sim.discord.received
        if any(n.killmail_id == killmail_id for n in m.notifications)
    ]


async def _kill_in(sim: Simulator, system_id: int) -> ReceivedMessage:
    km = sim.generator.make_killmail(
        system_id=system_id, exclude_character_ids=sim.tracked_character_ids
    )
    await sim.killstream.push_kill(km)
    found = await wait_for(lambda: _kill_messages(sim, km["killmail_id"]), 15, "kill delivered")
    assert len(found) == 1
    return found[0]


async def test_commands_are_registered_in_the_guild(
    runtime: Runtime, sim: Simulator, bot: FakeGateway
) -> None:
    scope = f"guild:{SIM_GUILD_ID}"
    await wait_for(lambda: scope in sim.discord.bot_app.commands, 10, "registration")
    (command,) = sim.discord.bot_app.commands[scope]
    assert command["name"] == "notifier"
    names = {o["name"] for o in command["options"]}
    assert names == {"status", "system", "priority", "pause", "resume"}
    # Minimum intents, the token from the config.
    assert bot.identify_payloads[0]["intents"] == 129


async def test_the_commands_work_only_in_the_consoles_server(
    runtime: Runtime, sim: Simulator, bot: FakeGateway
) -> None:
    """Registered globally (no guild configured), the commands would reach the bot from a direct
    message or from any server it is in: anyone could add priority systems there and have the
    map's channel pinged. They are offered in servers only, and answered in the console's own."""
    (command,) = COMMANDS
    assert command["contexts"] == [0]
    assert command["dm_permission"] is False
    name = sim.generator.systems[sorted(sim.tracked_system_ids)[0]].name
    for where in ({"direct_message": True}, {"guild_id": "1999999999999999999"}):
        interaction = await bot.inject_interaction(
            _options("system", "add-priority", system=name), **where
        )
        await wait_for(lambda i=interaction: i.final_text() is not None, 10, f"answer {where}")
        _ephemeral(interaction)
        assert "server" in (interaction.final_text() or ""), interaction.final_text()
    assert runtime.store.priority_systems() == []


async def test_add_priority_then_a_kill_pings_voice_then_here(
    runtime: Runtime, sim: Simulator, bot: FakeGateway
) -> None:
    system_id = sorted(sim.tracked_system_ids)[0]
    name = sim.generator.systems[system_id].name
    # Before: an ordinary tracked-system kill pings nobody.
    plain = await _kill_in(sim, system_id)
    assert plain.body["allowed_mentions"] == {"parse": []}
    assert "content" not in plain.body or "@here" not in plain.body["content"]

    await bot.set_voice(SIM_GUILD_ID, PILOT_IN_VOICE, SIM_VOICE_CHANNEL)
    voice = runtime.gateway.voice if runtime.gateway else None
    assert voice is not None
    await wait_for(lambda: voice.participants(SIM_GUILD_ID) == [PILOT_IN_VOICE], 10, "in voice")

    text = await _command(bot, "system", "add-priority", system=name.lower())
    assert "is now a priority system" in text
    assert [p.name for p in runtime.store.priority_systems()] == [name.lower()]
    assert runtime.store.priority_changes()[-1].actor.startswith("discord:pilot")

    pinged = await _kill_in(sim, system_id)
    assert pinged.body["content"].startswith(f"<@{PILOT_IN_VOICE}>")
    assert pinged.body["allowed_mentions"] == {"parse": [], "users": [PILOT_IN_VOICE]}

    # Nobody in voice, fallback on: @here instead.
    await bot.set_voice(SIM_GUILD_ID, PILOT_IN_VOICE, None)
    await wait_for(lambda: voice.participants(SIM_GUILD_ID) == [], 10, "left voice")
    here = await _kill_in(sim, system_id)
    assert here.body["content"].startswith("@here")
    assert here.body["allowed_mentions"] == {"parse": ["everyone"]}

    listed = await _command(bot, "priority", "list")
    assert name.lower() in listed
    removed = await _command(bot, "system", "remove-priority", system=name)
    assert "no longer a priority system" in removed
    after = await _kill_in(sim, system_id)
    assert after.body["allowed_mentions"] == {"parse": []}


async def test_status_and_the_role_guard(
    runtime: Runtime, sim: Simulator, bot: FakeGateway
) -> None:
    status = await _command(bot, "status")
    assert "Wanderer Console status" in status
    assert "Sources:" in status
    assert "discord:gateway" not in status or "connected" in status

    refused = await _command(bot, "pause", type="kill")
    assert "role" in refused
    assert runtime.settings.notifications.kill is True

    paused = await _command(bot, "pause", type="kill", roles=[COMMAND_ROLE])
    assert "kill notifications off" in paused
    assert runtime.settings.notifications.kill is False
    resumed = await _command(bot, "resume", type="kill", roles=[COMMAND_ROLE])
    assert "kill notifications on" in resumed
    assert runtime.settings.notifications.kill is True


async def test_a_slow_operation_is_deferred_then_edited(
    runtime: Runtime, sim: Simulator, bot: FakeGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert runtime.bot is not None
    commands = runtime.bot.commands
    assert commands is not None
    # A slow engine (injected: the snapshot takes 0.5 s), a short answer window.
    real = runtime.console.snapshot

    async def slow_snapshot() -> EngineSnapshot:
        await asyncio.sleep(0.5)
        return await real()

    monkeypatch.setattr(runtime.console, "snapshot", slow_snapshot)
    monkeypatch.setattr(commands, "answer_within", 0.1)
    interaction = await bot.inject_interaction(_options("priority", "list"))
    await wait_for(lambda: len(interaction.responses) == 2, 10, "deferral and edit")
    assert interaction.responses[0] == {"type": 5, "data": {"flags": 64}}
    assert interaction.responses[1]["type"] == "edit"
    assert "No priority systems" in (interaction.final_text() or "")


async def test_the_gateway_is_a_connection_like_every_source(
    runtime: Runtime, bot: FakeGateway
) -> None:
    await connected(runtime, sources=4)
    names = [c["name"] for c in runtime.snapshot()["connections"]]
    assert "discord:gateway" in names
    snap = await runtime.console.snapshot()
    gateway = next(c for c in snap.connections if c.name == "discord:gateway")
    assert gateway.state == "connected"
    assert gateway.kind == "gateway"
    text = runtime.metrics.exposition().decode()
    assert 'wc_gateway_dispatches_total{event="READY"} 1.0' in text
