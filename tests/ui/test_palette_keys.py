"""The palette provider, the [keymap] section and live theme switching."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable

from tests.ui.conftest import HEALTHY, FakeSource, make_app, make_settings
from wanderer_console.ui.app import binding_ids
from wanderer_console.ui.commands import console_commands
from wanderer_console.ui.screens.config import ConfigScreen
from wanderer_console.ui.screens.toggles import TogglesScreen

SIZE = (120, 40)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


async def _palette_prompts(app: object, pilot: object, query: str) -> list[str]:
    from textual.app import App
    from textual.pilot import Pilot

    assert isinstance(app, App)
    assert isinstance(pilot, Pilot)
    await pilot.press("ctrl+p")
    await pilot.pause()
    assert isinstance(app.screen, CommandPalette)
    await pilot.press(*query)
    await pilot.pause(0.5)
    prompts = [str(option.prompt) for option in app.screen.query_one(CommandList).options]
    await pilot.press("escape")
    await pilot.pause()
    return prompts


@pytest.mark.slow
async def test_palette_lists_provider_commands(config_file: Path) -> None:
    app = make_app(source=FakeSource(HEALTHY), config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        themes = await _palette_prompts(app, pilot, "switch theme")
        assert any("Switch theme to wanderer-light" in p for p in themes), themes
        per_map = await _palette_prompts(app, pilot, "map bravo rally")
        assert any("Toggle map bravo rally notifications" in p for p in per_map), per_map
        reload = await _palette_prompts(app, pilot, "reload config")
        assert any("Reload config" in p for p in reload), reload
        titles = [command.title for command in console_commands(app)]
    assert {"Pause delivery", "Open config editor", "Toggle global system notifications"} <= set(
        titles
    )


@pytest.mark.slow
async def test_palette_theme_switch_is_live_and_saved(config_file: Path) -> None:
    settings = make_settings()
    app = make_app(HEALTHY, config_path=config_file, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        command = next(c for c in console_commands(app) if c.title.endswith("wanderer-light"))
        command.callback()
        await pilot.pause()
        assert app.theme == "wanderer-light"
        assert app.theme_variables["breaker-open"] == "#B3261E"
    assert settings.console.theme == "wanderer-light"
    text = _read(config_file)
    assert tomllib.loads(text)["console"]["theme"] == "wanderer-light"
    assert "# Operator config: keep this comment." in text


@pytest.mark.slow
async def test_settings_theme_change_switches_live() -> None:
    settings = make_settings()
    app = make_app(HEALTHY, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        settings.console.theme = "wanderer-light"
        app.sync_settings()
        await pilot.pause()
        assert app.theme == "wanderer-light"


@pytest.mark.slow
async def test_keymap_remaps_a_binding() -> None:
    settings = make_settings()
    settings.keymap = {"app.toggles": "f2", "app.config": "ctrl+o"}
    app = make_app(HEALTHY, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t")  # the default key no longer opens the toggles
        await pilot.pause()
        assert len(app.screen_stack) == 1
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, TogglesScreen)
        await pilot.press("ctrl+o")
        await pilot.pause()
        assert isinstance(app.screen, ConfigScreen)


@pytest.mark.slow
async def test_hot_reloaded_keymap_is_applied() -> None:
    source = FakeSource(HEALTHY)
    settings = make_settings()
    source.settings = settings  # type: ignore[attr-defined]
    app = make_app(source=source, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        reloaded = settings.model_copy(deep=True)
        reloaded.keymap = {"app.help": "f1"}
        source.settings = reloaded  # type: ignore[attr-defined]  # what a hot reload does
        app.sync_settings()
        await pilot.press("f1")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HelpScreen"
        assert app.state.settings is reloaded


def test_every_binding_has_an_id() -> None:
    assert {"app.quit", "app.config", "config.save", "config.reveal", "toggles.flip"} <= (
        binding_ids()
    )


@pytest.mark.slow
async def test_hot_reload_adding_a_map_rebuilds_the_toggles() -> None:
    source = FakeSource(HEALTHY)
    settings = make_settings()
    source.settings = settings  # type: ignore[attr-defined]
    app = make_app(source=source, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        reloaded = settings.model_copy(deep=True)
        reloaded.maps["charlie"] = reloaded.maps["bravo"].model_copy(update={"name": "Charlie"})
        source.settings = reloaded  # type: ignore[attr-defined]
        app.sync_settings()
        await pilot.pause()
        table = app.screen.query_one("#flags", DataTable)
        assert [row.value for row in table.rows] == ["", "alpha", "bravo", "charlie"]
