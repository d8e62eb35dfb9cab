"""The bot's presence and the hourly status line, against the simulator's fake gateway and
fake Discord (the status interval shortened)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_for
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.slow

STATUS_CHANNEL = "100000000000000077"


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 17, "gateway": True}


async def test_presence_and_status_line(sim: Simulator, tmp_path: Path) -> None:
    assert sim.gateway is not None
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.discord.status_messages = True
    settings.discord.status_channel_id = STATUS_CHANNEL
    runtime = Runtime(settings, data_dir=tmp_path)
    assert runtime.bot is not None
    runtime.bot.status_interval = 0.5
    runtime.bot.presence_interval = 0.2
    await runtime.start()
    try:
        gateway = sim.gateway

        def shown() -> str:
            activities = gateway.presences[-1]["activities"] if gateway.presences else []
            return str(activities[0]["name"]) if activities else ""

        await wait_for(lambda: "map" in shown(), 10, "the presence text")
        assert "kills notified" in shown()
        await wait_for(
            lambda: sim.discord.messages_for(f"channel:{STATUS_CHANNEL}"), 10, "a status line"
        )
        line = sim.discord.messages_for(f"channel:{STATUS_CHANNEL}")[0]
        assert line.body["content"].startswith("**Wanderer Console status**")
        assert line.body["allowed_mentions"] == {"parse": []}
    finally:
        await runtime.stop()
