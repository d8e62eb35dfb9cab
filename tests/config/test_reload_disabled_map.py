"""``maps.<key>.enabled`` changed in the file of an engine alone needs a restart, as the reload
says: until then the map keeps running and notifying as it did. Before, the reload said "needs a
restart" while the running settings already had the map disabled: its feed kept streaming and
every event of it was refused (``map_disabled``), never to be notified, even if the operator put
the switch back before restarting."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomlkit

from tests.support import connected, wait_for
from wanderer_console.config.loader import load_settings
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.timeout(90)


async def test_a_map_disabled_in_the_file_keeps_notifying_until_the_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    doc = tomllib.loads(demo_config_text(sim, data_dir=data, dry_run=False))
    path = tmp_path / "config.toml"
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
    path.chmod(0o600)
    runtime = Runtime(load_settings(path).settings, data_dir=data, config_path=path)
    await runtime.start()
    try:
        await connected(runtime)
        reloader = runtime.reloader
        assert reloader is not None
        doc["maps"][sim.map_slug]["enabled"] = False
        doc["console"]["theme"] = "wanderer-light"  # a live change in the same save
        path.write_text(tomlkit.dumps(doc), encoding="utf-8")

        result = reloader.reload(source="test")

        assert result.status == "applied"
        assert result.restart_required == [f"maps.{sim.map_slug}.enabled"]
        assert result.hot == ["console.theme"]
        assert runtime.settings.console.theme == "wanderer-light"
        assert runtime.settings.maps[sim.map_slug].enabled  # as it runs, until the restart
        assert reloader.snapshot()["restart_required"] == [f"maps.{sim.map_slug}.enabled"]

        system = sorted(sim.tracked_system_ids)[0]
        kill = sim.generator.make_killmail(system_id=system)
        await sim.killstream.push_kill(kill)
        footer = f"Killmail ID: {kill['killmail_id']}"

        def delivered() -> bool:
            return any(
                str((embed.get("footer") or {}).get("text", "")).startswith(footer)
                for embed in sim.discord.embeds
            )

        await wait_for(delivered, 20, "the disabled map's kill delivered before the restart")

        # The switch put back: nothing waits for a restart any more.
        doc["maps"][sim.map_slug]["enabled"] = True
        path.write_text(tomlkit.dumps(doc), encoding="utf-8")
        back = reloader.reload(source="test")
        assert back.status == "applied"
        assert reloader.snapshot()["restart_required"] == []
    finally:
        await runtime.stop()
