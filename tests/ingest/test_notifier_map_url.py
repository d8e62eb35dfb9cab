"""A Wanderer Notifier ``.env`` whose ``MAP_URL`` is the map's own address streams and delivers:
only the origin of ``MAP_URL`` is used for the map API, as the notifier does; a wrong slug is
said plainly, with the fix, instead of being retried in silence."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tests.support import wait_for
from wanderer_console.config.loader import load_settings
from wanderer_console.config.model import Settings
from wanderer_console.ingest.map_rest import api_origin
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


def _notifier_env(sim: Simulator, tmp_path: Path, *, slug: str) -> dict[str, str]:
    return {
        "HOME": str(tmp_path),  # no config file in the default location: the .env alone
        "MAP_URL": f"{sim.map_url}/{slug}",  # the map's own address, as older setups have it
        "MAP_NAME": slug,
        "MAP_API_KEY": sim.map_api_key,
        "DISCORD_WEBHOOK_URL": sim.webhook_url("primary"),
        "DISCORD_API_URL": sim.discord_api_url,
        "WEBSOCKET_URL": sim.killstream_url,
        "ESI_URL": sim.esi_url,
        "STARTUP_SUPPRESSION_SECONDS": "0",
    }


def _settings(env: dict[str, str]) -> Settings:
    return load_settings(None, environ=env).settings


def test_the_origin_is_what_the_map_api_gets() -> None:
    assert api_origin("https://wanderer.example.com/my-map") == "https://wanderer.example.com"
    assert api_origin("http://127.0.0.1:4444/a/b/") == "http://127.0.0.1:4444"
    assert api_origin("https://wanderer.example.com") == "https://wanderer.example.com"


async def test_a_notifier_env_with_the_maps_address_streams_and_delivers(
    sim: Simulator, tmp_path: Path
) -> None:
    settings = _settings(_notifier_env(sim, tmp_path, slug=sim.map_slug))
    (map_settings,) = settings.maps.values()
    assert map_settings.url.endswith(f"/{sim.map_slug}")  # kept as given; the origin is derived
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    await runtime.start()
    try:
        await wait_for(
            lambda: (
                all(c["state"] == "connected" for c in runtime.snapshot()["connections"])
                and len(runtime.snapshot()["connections"]) >= 2
            ),
            20,
            "the map stream and killstream connected",
        )
        system = sorted(sim.tracked_system_ids)[0]
        kill = sim.generator.make_killmail(system_id=system)
        await sim.killstream.push_kill(kill)
        footer = f"Killmail ID: {kill['killmail_id']}"

        def delivered() -> bool:
            return any(
                str((embed.get("footer") or {}).get("text", "")).startswith(footer)
                for embed in sim.discord.embeds
            )

        await wait_for(delivered, 20, "the kill delivered")
    finally:
        await runtime.stop()


async def test_a_wrong_slug_is_an_error_naming_the_url_and_the_fix(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(_notifier_env(sim, tmp_path, slug="no-such-map"))
    runtime = Runtime(settings, data_dir=tmp_path / "data")
    with caplog.at_level(logging.ERROR, logger="wanderer_console"):
        await runtime.start()
        try:

            def reported() -> str | None:
                for record in caplog.records:
                    if record.getMessage() == "map not found; fix the configuration":
                        return str(record.ctx["error"])  # type: ignore[attr-defined]
                return None

            error = await wait_for(reported, 20, "the not-found error")
            connections = runtime.snapshot()["connections"]
        finally:
            await runtime.stop()
    assert f"{sim.map_url}/api/maps/no-such-map/systems" in error
    assert "check the slug (MAP_NAME" in error
    assert f"the path in {sim.map_url}/no-such-map is ignored" in error
    (connection,) = [c for c in connections if c["kind"] == "map_sse"]
    assert "no map 'no-such-map'" in connection["last_error"]


async def test_config_check_explains_a_wrong_slug(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``config check`` asks the map API: a wrong slug fails it with the URL tried and the fix
    (the engine runs on the same words); the right slug passes."""
    from wanderer_console.cli import main

    env = _notifier_env(sim, tmp_path, slug="no-such-map")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = await asyncio.to_thread(main, ["config", "check"])
        err = capsys.readouterr().err
        assert code == 1
        assert f"{sim.map_url}/api/maps/no-such-map/systems not found" in err
        assert "check the slug (MAP_NAME" in err
        assert f"the path in {sim.map_url}/no-such-map is ignored" in err

        patch.setenv("MAP_NAME", sim.map_slug)
        patch.setenv("MAP_URL", f"{sim.map_url}/{sim.map_slug}")
        assert await asyncio.to_thread(main, ["config", "check"]) == 0
        assert "config ok" in capsys.readouterr().out

        patch.setenv("MAP_API_KEY", "not-the-key")
        assert await asyncio.to_thread(main, ["config", "check"]) == 1
        err = capsys.readouterr().err
        assert "refused the key (401)" in err
        assert "not-the-key" not in err

        # --offline does not ask: the same refused key passes the file's own checks.
        assert await asyncio.to_thread(main, ["config", "check", "--offline"]) == 0


async def test_config_check_never_prints_the_password_of_a_map_url(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Credentials written into ``MAP_URL`` (``user:password@``): ``config check``'s answers
    name the server it asked, with the password masked (here the map API refuses: the URL's
    credentials go as Basic auth in place of the map's key)."""
    from wanderer_console.cli import main

    env = _notifier_env(sim, tmp_path, slug="no-such-map")
    env["MAP_URL"] = env["MAP_URL"].replace("http://", "http://ops:hunter2-pass@", 1)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = await asyncio.to_thread(main, ["config", "check"])
    err = capsys.readouterr().err
    assert code == 1
    assert "the map API on http://ops:***@127.0.0.1" in err
    assert "hunter2-pass" not in err
