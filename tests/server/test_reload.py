"""Hot reload over the live simulator: a file edit turns a type off; a bad edit is rejected."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import connected, wait_for
from wanderer_console.cli import main
from wanderer_console.config.loader import load_settings
from wanderer_console.config.reload import needs_restart
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.timeout(60)


def config_text(sim: Simulator, data_dir: Path) -> str:
    return f"""\
# written by the hot-reload test
[console]
data_dir = "{data_dir}"
startup_suppression_seconds = 0

[discord]
api_url = "{sim.discord_api_url}"
bot_token = "{sim.bot_token}"

[esi]
enabled = false

[killstream]
websocket_url = "{sim.killstream_url}"
rest_url = "{sim.map_url}"

[maps.{sim.map_slug}]
url = "{sim.map_url}"
api_key = "{sim.map_api_key}"
name = "Demo Map"

[maps.{sim.map_slug}.notifications]
system = true

[maps.{sim.map_slug}.discord]
webhook_url = "{sim.webhook_url("primary")}"
system_channel_id = "100000000000000001"
"""


@pytest.fixture
async def watched(sim: Simulator, tmp_path: Path) -> AsyncIterator[tuple[Runtime, Path]]:
    path = tmp_path / "config.toml"
    path.write_text(config_text(sim, tmp_path / "data"), encoding="utf-8")
    path.chmod(0o600)
    loaded = load_settings(path)
    runtime = Runtime(loaded.settings, data_dir=tmp_path / "data", config_path=path)
    await runtime.start()
    try:
        await connected(runtime)
        yield runtime, path
    finally:
        await runtime.stop()


def system_messages(sim: Simulator) -> list[Any]:
    return [
        m
        for m in sim.discord.received
        if str(m.body["embeds"][0].get("title", "")).startswith("New System Tracked")
    ]


@pytest.mark.slow
async def test_file_edit_turns_a_type_off_and_a_bad_edit_is_rejected(
    sim: Simulator,
    watched: tuple[Runtime, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    runtime, path = watched
    gen = sim.generator
    first = gen.new_system()
    sim.map.add_system(first.system_id, name=first.name)
    await wait_for(lambda: system_messages(sim))

    # Turn system notifications off by editing the file while everything runs.
    text = path.read_text()
    path.write_text(text.replace("system = true", "system = false"))
    await wait_for(lambda: not runtime.settings.maps[sim.map_slug].notifications.system)
    config = runtime.snapshot()["config"]
    assert config["last_status"] == "applied"
    assert config["last_hot"] == [f"maps.{sim.map_slug}.notifications.system"]
    assert config["restart_required"] == []
    assert runtime.engine.settings is runtime.settings

    second = gen.new_system()
    sim.map.add_system(second.system_id, name=second.name)
    await wait_for(
        lambda: runtime.metrics.value("wc_notifications_filtered_total", reason="disabled") >= 1
    )
    await runtime.drain(timeout=2.0)
    titles = [m.body["embeds"][0]["title"] for m in system_messages(sim)]
    assert titles == [f"New System Tracked: {first.name}"]

    # An invalid edit keeps the running configuration and reports file, line and key.
    path.write_text(text.replace("system = true", 'system = "maybe"'))
    await wait_for(lambda: runtime.snapshot()["config"]["last_status"] == "rejected")
    (problem,) = runtime.snapshot()["config"]["errors"]
    line = text.splitlines().index("system = true") + 1
    assert problem.startswith(f"{path}:{line}: maps.{sim.map_slug}.notifications.system:")
    assert runtime.settings.maps[sim.map_slug].notifications.system is False

    # Both changes are in the history, secrets masked.
    assert main(["config", "history", "--data-dir", str(tmp_path / "data")]) == 0
    history = json.loads(capsys.readouterr().out)["history"]
    assert [h["source"] for h in history] == ["startup", "file", "file"]
    assert [h["status"] for h in history] == ["applied", "applied", "rejected"]
    assert history[1]["changes"] == [
        {"key": f"maps.{sim.map_slug}.notifications.system", "old": True, "new": False}
    ]
    assert str(line) in history[2]["problems"][0]
    assert sim.map_api_key not in json.dumps(history)

    # Restore the first version: the file is back and the watcher applies it.
    assert main(["config", "restore", "1", "--data-dir", str(tmp_path / "data")]) == 0
    assert path.read_text() == text
    await wait_for(lambda: runtime.settings.maps[sim.map_slug].notifications.system)


def test_restart_required_keys_are_classified() -> None:
    maps = {"home"}
    assert needs_restart("maps.home.url", maps, maps)
    assert needs_restart("maps.home.api_key", maps, maps)
    assert needs_restart("console.data_dir", maps, maps)
    assert needs_restart("server.port", maps, maps)
    assert needs_restart("maps.new.url", maps, {"home", "new"})
    assert not needs_restart("maps.home.notifications.kill", maps, maps)
    assert not needs_restart("maps.home.filters.wormhole_only", maps, maps)
    assert not needs_restart("maps.home.discord.webhook_url", maps, maps)
    assert not needs_restart("console.theme", maps, maps)
    assert not needs_restart("console.log_level", maps, maps)


@pytest.mark.slow
async def test_reload_checks_secret_hygiene_again(
    sim: Simulator, watched: tuple[Runtime, Path], caplog: pytest.LogCaptureFixture
) -> None:
    runtime, path = watched
    assert runtime.reloader is not None
    caplog.set_level("WARNING", logger="wanderer_console.config.reload")
    path.chmod(0o644)  # someone opened the file up while the console runs
    text = path.read_text()
    path.write_text(text.replace("system = true", "system = false"))  # the watcher applies it

    def hygiene() -> list[str]:
        return [
            r.__dict__["ctx"]["warning"]
            for r in caplog.records
            if r.getMessage() == "config secret hygiene"
        ]

    warnings = await wait_for(hygiene)
    assert runtime.snapshot()["config"]["last_status"] == "applied"
    assert len(warnings) == 1
    assert "readable by group and others (mode 0644)" in warnings[0]
    assert f"chmod 600 {path}" in warnings[0]
    assert sim.map_api_key not in str(warnings)
