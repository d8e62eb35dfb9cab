"""``notify test``: one real message to the fake Discord, and Discord's answer reported."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from wanderer_console.config import parse_settings_text
from wanderer_console.delivery.notify_cli import parse_target, send_test
from wanderer_console.sim import AppServer, FakeDiscord, webhook_url

pytestmark = pytest.mark.timeout(60)


def _config(base: str) -> str:
    return f"""
[discord]
api_url = "{base}/api/v10"
bot_token = "bot-secret"
[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"
[maps.home.discord]
webhook_url = "{webhook_url(base, 11, "tok-11")}"
rally_channel_id = "42"
"""


async def test_sends_to_the_resolved_target_and_reports_the_answer() -> None:
    discord = FakeDiscord(bot_token="bot-secret")
    async with AppServer(discord.app) as server:
        settings, _ = parse_settings_text(_config(server.url), environ={})
        ok = await send_test(settings, *parse_target(settings, "home"))
        assert ok == {
            "ok": True,
            "target": "webhook:11",
            "outcome": "sent",
            "status": 200,
            "detail": "",
            "retry_after": None,
        }
        bot = await send_test(settings, *parse_target(settings, "home:rally"))
        assert bot["ok"] is True
        assert bot["target"] == "channel:42"
        discord.disable_webhook(11)
        dead = await send_test(settings, *parse_target(settings, "home:system"))
        assert dead["ok"] is False
        assert (dead["status"], dead["outcome"]) == (404, "dead_target")
        assert "Unknown Webhook" in dead["detail"]
    assert [m.target for m in discord.received] == ["webhook:11", "channel:42"]
    assert discord.received[0].body["embeds"][0]["title"] == "Wanderer Console test message"


def test_bad_targets_are_explained() -> None:
    settings, _ = parse_settings_text(_config("http://127.0.0.1:9"), environ={})
    with pytest.raises(ValueError, match="unknown map 'away'"):
        parse_target(settings, "away")
    with pytest.raises(ValueError, match="unknown route 'kills'"):
        parse_target(settings, "home:kills")


@pytest.mark.slow
async def test_cli_exit_codes(tmp_path: Path) -> None:
    discord = FakeDiscord(bot_token="bot-secret")
    async with AppServer(discord.app) as server:
        config = tmp_path / "c.toml"
        config.write_text(_config(server.url))
        discord.disable_webhook(11)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wanderer_console",
            "notify",
            "test",
            "home",
            "--config",
            str(config),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode == 1
    answer = json.loads(out)
    assert answer["status"] == 404
    assert "tok-11" not in out.decode()
