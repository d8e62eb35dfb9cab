"""The console over the live engine: a kill toggle made in the UI stops kill notifications.

The simulator (fake map, killstream and Discord on loopback ports) and a real
:class:`~wanderer_console.runtime.Runtime` run in the test's event loop, next to the app under
Pilot, built over the runtime's own :class:`~wanderer_console.control.local.LocalBackend` (as the
launcher runs it). The runtime's settings are loaded from a TOML file in ``tmp_path`` so the test
can check that the engine writes the flip back with the operator's comments intact.
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from tests.support import posted_kills, wait_for
from tests.ui.fakes import first_frame, settle
from wanderer_console.config.loader import load_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.ui.app import build_app
from wanderer_console.ui.screens.toggles import TogglesScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SIZE = (120, 40)
COMMENT = "# Operator config: this comment must survive a toggle from the console."
KILL_COMMENT = "# kills in tracked systems"
PUSH_INTERVAL = 0.1
"""Seconds between kills pushed to the fake killstream (10 a second)."""
GRACE = 1.0
"""Kills pushed this long after the toggle must not be notified."""


def write_config(sim: Simulator, data_dir: Path, path: Path) -> None:
    """The demo's settings as a TOML file, with comments (what the engine's write must keep)."""
    document = tomlkit.document()
    document.add(tomlkit.comment(COMMENT.removeprefix("# ")))
    document["console"] = {"data_dir": str(data_dir), "startup_suppression_seconds": 0}
    document["discord"] = {"api_url": sim.discord_api_url, "bot_token": sim.bot_token}
    document["esi"] = {"enabled": False}
    document["killstream"] = {"websocket_url": sim.killstream_url, "rest_url": sim.map_url}
    notifications = tomlkit.table()
    notifications.add("kill", tomlkit.item(True).comment(KILL_COMMENT.removeprefix("# ")))
    document["notifications"] = notifications
    document["maps"] = {
        sim.map_slug: {
            "url": sim.map_url,
            "api_key": sim.map_api_key,
            "name": "Demo Map",
            "discord": {
                "webhook_url": sim.webhook_url("primary"),
                "system_kill_webhook_url": sim.webhook_url("system-kills"),
                "character_kill_webhook_url": sim.webhook_url("character-kills"),
            },
        }
    }
    path.write_text(tomlkit.dumps(document), encoding="utf-8")


def delivered_kill_ids(sim: Simulator) -> set[int]:
    """Killmail ids of the kill notifications the fake Discord accepted."""
    return set(posted_kills(sim))


@pytest.fixture
def sim_options() -> dict[str, Any]:
    # A generous webhook limit: rate limiting would only delay deliveries, not change the test.
    return {"seed": 11, "discord_webhook_limit": 1000, "discord_webhook_window": 1.0}


async def test_kill_toggle_in_console_stops_kill_notifications(
    sim: Simulator, tmp_path: Path
) -> None:
    config = tmp_path / "config.toml"
    write_config(sim, tmp_path, config)
    settings = load_settings(config, environ={}).settings
    runtime = Runtime(settings, data_dir=tmp_path, config_path=config)
    pushed: list[tuple[float, int]] = []
    system_id = sorted(sim.tracked_system_ids)[0]

    async def feed() -> None:
        while True:
            kill = sim.generator.make_killmail(system_id=system_id)
            pushed.append((time.monotonic(), kill["killmail_id"]))
            await sim.killstream.push_kill(kill)
            await asyncio.sleep(PUSH_INTERVAL)

    await runtime.start()
    feeder: asyncio.Task[None] | None = None
    try:
        await wait_for(lambda: "systems" in runtime.kills.sockets)
        await wait_for(
            lambda: all(c["state"] == "connected" for c in runtime.snapshot()["connections"])
        )
        app = build_app(runtime.console, actor="tui:tester@console-host")
        async with app.run_test(size=SIZE) as pilot:
            await first_frame(pilot)
            feeder = asyncio.create_task(feed())
            await wait_for(lambda: delivered_kill_ids(sim))  # kills are flowing

            await pilot.press("t")
            await pilot.pause()
            assert isinstance(app.screen, TogglesScreen)
            await pilot.press("right", "enter")  # global/enabled → global/kill, flip
            toggled_at = time.monotonic()
            await settle(pilot)
            assert runtime.settings.notifications.kill is False
            assert runtime.engine.settings.notifications.kill is False
            table = app.screen.query_one("#flags")
            assert str(table.get_cell("", "kill")) == "off"  # type: ignore[attr-defined]

            await asyncio.sleep(GRACE + 1.5)
            feeder.cancel()
            await runtime.drain(timeout=5.0)
            await asyncio.sleep(0.3)
    finally:
        if feeder is not None:
            feeder.cancel()
        await runtime.stop()

    delivered = delivered_kill_ids(sim)
    before = {kid for at, kid in pushed if at < toggled_at}
    late = {kid for at, kid in pushed if at >= toggled_at + GRACE}
    assert delivered & before, "no kill was notified before the toggle"
    assert len(late) >= 5, f"only {len(late)} kills pushed after the grace period"
    assert not delivered & late, f"kills notified after the toggle: {sorted(delivered & late)}"

    text = config.read_text(encoding="utf-8")
    assert COMMENT in text
    assert KILL_COMMENT in text
    assert tomllib.loads(text)["notifications"]["kill"] is False
