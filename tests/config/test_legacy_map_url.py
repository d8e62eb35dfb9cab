"""``MAP_URL`` as older notifier ``.env`` files set it, the map's own address
(``https://host/my-map``) with no ``MAP_NAME``: the slug comes from the URL, as the notifier
takes it (``MAP_NAME`` first, else the URL's ``name`` query parameter, else the last path
segment), and only the URL's origin reaches the map API."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from wanderer_console.config import parse_settings_text
from wanderer_console.sim import Simulator


def _map(env: dict[str, str]) -> tuple[str, str]:
    settings, _used = parse_settings_text("", environ={"MAP_API_KEY": "k", **env})
    ((key, map_settings),) = settings.maps.items()
    return key, map_settings.slug


def test_the_slug_comes_from_the_path_of_map_url_without_map_name() -> None:
    assert _map({"MAP_URL": "https://wanderer.example.com/my-map"}) == ("my-map", "my-map")
    assert _map({"MAP_URL": "https://wanderer.example.com/my-map/"}) == ("my-map", "my-map")


def test_the_slug_comes_from_the_name_parameter_as_the_notifier_reads_it() -> None:
    url = "https://wanderer.example.com/?name=home-chain"
    assert _map({"MAP_URL": url}) == ("home-chain", "home-chain")


def test_map_name_wins_over_the_path() -> None:
    env = {"MAP_URL": "https://wanderer.example.com/old-map", "MAP_NAME": "new-map"}
    assert _map(env) == ("new-map", "new-map")


def test_an_origin_alone_keeps_the_default_map() -> None:
    assert _map({"MAP_URL": "https://wanderer.example.com"}) == ("default", "default")


async def test_config_check_passes_on_the_maps_address_without_map_name(
    sim: Simulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The map API is asked for the map the address names (not a map called ``default``)."""
    from wanderer_console.cli import main

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(tmp_path))  # no config file: the .env alone
        patch.delenv("MAP_NAME", raising=False)
        patch.setenv("MAP_URL", f"{sim.map_url}/{sim.map_slug}")
        patch.setenv("MAP_API_KEY", sim.map_api_key)
        patch.setenv("DISCORD_WEBHOOK_URL", sim.webhook_url("primary"))
        code = await asyncio.to_thread(main, ["config", "check"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"maps: {sim.map_slug}" in captured.out
