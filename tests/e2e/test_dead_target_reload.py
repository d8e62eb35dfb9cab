"""A wrong bot token, then the operator fixes the config file: the held kills are delivered.

The whole engine runs against the simulator; the fix goes through the real hot-reload path
(the config file is rewritten and :class:`ConfigReloader` applies it), as an operator's edit
does. Before, the target stayed disabled until a restart and every kill in between was lost.
The same fix of a deleted webhook made while the engine is stopped is applied by its start.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support import connected, wait_for
from wanderer_console.config.loader import load_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

CHANNEL = "100000000000000007"


def _config(sim: Simulator, data: Path, token: str) -> str:
    return f"""
[console]
startup_suppression_seconds = 0
data_dir = "{data}"
[server]
enabled = true
port = 0
[discord]
api_url = "{sim.discord_api_url}"
bot_token = "{token}"
[esi]
enabled = false
[killstream]
websocket_url = "{sim.killstream_url}"
[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.home.discord]
system_kill_channel_id = "{CHANNEL}"
"""


async def test_a_wrong_bot_token_fixed_by_hot_reload_delivers_every_held_kill(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=41) as sim:
        data = tmp_path / "data"
        path = tmp_path / "config.toml"
        path.write_text(_config(sim, data, "wrong-token"))
        runtime = Runtime(load_settings(path, environ={}).settings, config_path=path)
        await runtime.start()
        try:
            await connected(runtime)
            tracked = sorted(sim.tracked_system_ids)
            ids = []
            for i in range(24):
                km = sim.generator.make_killmail(
                    system_id=tracked[i % len(tracked)],
                    exclude_character_ids=sim.tracked_character_ids,
                )
                ids.append(int(km["killmail_id"]))
                await sim.killstream.push_kill(km)
            await wait_for(lambda: runtime.dispatcher.dead_targets, 20)
            assert runtime.http is not None
            async with httpx.AsyncClient(base_url=runtime.http.url) as client:
                ready = (await client.get("/ready")).json()
            assert ready["status"] == "degraded"
            assert ready["dead_targets"] == [{"map": "home", "target": f"channel:{CHANNEL}"}]
            await wait_for(lambda: runtime.store.outbox_counts() == {"pending": 24}, 20)
            assert sim.discord.rejected_401 == 1  # one refused request, then the kills wait

            path.write_text(_config(sim, data, sim.bot_token))
            assert runtime.reloader is not None
            assert runtime.reloader.reload(source="file").status == "applied"
            await wait_for(lambda: runtime.store.outbox_counts() == {"sent": 24}, 30)
        finally:
            await runtime.stop()
    posted = [
        int(str(embed["footer"]["text"]).removeprefix("Killmail ID: ").split()[0])
        for message in sim.discord.messages_for(f"channel:{CHANNEL}")
        for embed in message.body["embeds"]
    ]
    assert sorted(posted) == sorted(ids)


def _webhook_config(sim: Simulator, data: Path, webhook: str) -> str:
    return f"""
[console]
startup_suppression_seconds = 0
data_dir = "{data}"
[discord]
api_url = "{sim.discord_api_url}"
[esi]
enabled = false
[killstream]
websocket_url = "{sim.killstream_url}"
[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.home.discord]
webhook_url = "{webhook}"
"""


async def test_a_deleted_webhook_replaced_while_the_engine_was_stopped_gets_its_held_kills(
    tmp_path: Path,
) -> None:
    """Discord deleted the map's webhook (404): its kills are held. The operator stops the
    engine, puts a new webhook's URL in the config and starts it again: every held kill is
    posted once to the new webhook, none fails as no longer configured."""
    async with Simulator(seed=43) as sim:
        data = tmp_path / "data"
        path = tmp_path / "config.toml"
        path.write_text(_webhook_config(sim, data, sim.webhook_url("old")))
        sim.discord.disable_webhook(sim.webhook_id("old"))
        runtime = Runtime(load_settings(path, environ={}).settings, config_path=path)
        await runtime.start()
        try:
            await connected(runtime)
            tracked = sorted(sim.tracked_system_ids)
            ids = []
            for i in range(6):
                km = sim.generator.make_killmail(
                    system_id=tracked[i % len(tracked)],
                    exclude_character_ids=sim.tracked_character_ids,
                )
                ids.append(int(km["killmail_id"]))
                await sim.killstream.push_kill(km)
            await wait_for(lambda: runtime.dispatcher.dead_targets, 20)
            await wait_for(lambda: runtime.store.outbox_counts() == {"pending": 6}, 20)
        finally:
            await runtime.stop()

        path.write_text(_webhook_config(sim, data, sim.webhook_url("new")))
        runtime = Runtime(load_settings(path, environ={}).settings, config_path=path)
        await runtime.start()
        try:
            await wait_for(lambda: runtime.store.outbox_counts() == {"sent": 6}, 30)
            assert runtime.store.failed_rows() == []
        finally:
            await runtime.stop()
        new = sim.webhook_target("new")
        posted = [
            int(str(embed["footer"]["text"]).removeprefix("Killmail ID: ").split()[0])
            for message in sim.discord.messages_for(new)
            for embed in message.body["embeds"]
        ]
    assert sorted(posted) == sorted(ids)
    assert sim.discord.rejected_404 == 1
