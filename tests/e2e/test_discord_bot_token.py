"""A bot token Discord rejects: the gateway says so, stops asking, and a reload with a new
token starts it again (the engine against the simulator's fake Discord and fake gateway)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.support import wait_for
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.slow


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 7, "gateway": True}


async def test_a_rejected_bot_token_stops_the_gateway_until_a_reload_brings_a_new_one(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = demo_settings(sim, data_dir=tmp_path)
    settings.discord.bot_token = SecretStr("not-the-bot-token")
    runtime = Runtime(settings, data_dir=tmp_path)
    await runtime.start()
    try:
        gateway = runtime.gateway
        assert gateway is not None
        app = sim.discord.bot_app
        await wait_for(lambda: gateway.health.state is ConnectionState.FAILED, 10, "failed")
        assert gateway.health.last_error == "bot token rejected (401): fix discord.bot_token"
        assert gateway.fatal == gateway.health.last_error
        # Not retried: without the fix a backoff of 1 s would have asked again within 2 s.
        await asyncio.sleep(2.5)
        assert app.gateway_refusals == 1
        assert gateway.health.state is ConnectionState.FAILED
        snap = await runtime.console.snapshot()
        shown = next(c for c in snap.connections if c.name == "discord:gateway")
        assert shown.state == "failed"
        assert "not-the-bot-token" not in runtime.metrics.exposition().decode()

        # A reload that changes something else leaves it stopped ...
        same = runtime.settings.model_copy(deep=True)
        same.discord.username = "Renamed"
        runtime.apply_settings(same)
        # ... one with the right token starts it again.
        fixed = runtime.settings.model_copy(deep=True)
        fixed.discord.bot_token = SecretStr(sim.bot_token)
        runtime.apply_settings(fixed)
        await wait_for(gateway.ready.is_set, 10, "READY with the new token")
        assert gateway.health.state is ConnectionState.CONNECTED
        assert gateway.fatal is None
        assert app.gateway_refusals == 1
        assert sim.gateway is not None
        assert sim.gateway.identify_payloads[-1]["token"] == sim.bot_token
    finally:
        await runtime.stop()
