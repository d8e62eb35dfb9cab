"""Interaction tests with Pilot: flag toggles saved to TOML, pause, palette entries."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette

from tests.ui.conftest import HEALTHY, FakeSource, make_app, make_settings
from wanderer_console.ui.commands import console_commands
from wanderer_console.ui.screens.help import HelpScreen
from wanderer_console.ui.screens.toggles import TogglesScreen

pytestmark = pytest.mark.slow

SIZE = (120, 40)

CONFIG = """\
# Operator config: keep this comment.
[console]
theme = "wanderer-dark"

[notifications]
kill = true  # kills in tracked systems

[maps.alpha]
url = "http://127.0.0.1:1"
api_key = "k1"
"""


async def test_toggle_kill_off_updates_settings_and_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = make_settings()
    app = make_app(HEALTHY, config_path=config, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        assert isinstance(app.screen, TogglesScreen)
        await pilot.press("right", "enter")  # cursor starts on global/enabled; kill is next
        await pilot.pause()
    assert settings.notifications.kill is False
    assert settings.notifications.enabled is True
    text = config.read_text(encoding="utf-8")
    assert "# Operator config: keep this comment." in text
    assert "# kills in tracked systems" in text
    assert tomllib.loads(text)["notifications"]["kill"] is False


async def test_toggle_per_map_flag_creates_table(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    settings = make_settings()
    app = make_app(HEALTHY, config_path=config, settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("down", "right", "right", "right", "right", "space")  # alpha/rally
        await pilot.pause()
    assert settings.maps["alpha"].notifications.rally is False
    assert settings.notifications.rally is True
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    assert data["maps"]["alpha"]["notifications"]["rally"] is False


async def test_pause_key_flips_dispatcher() -> None:
    source = FakeSource(HEALTHY)
    app = make_app(source=source)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p")
        await pilot.pause()
        assert source.dispatcher.paused is True
        await pilot.press("p")
        await pilot.pause()
        assert source.dispatcher.paused is False


async def test_pause_without_dispatcher_is_harmless() -> None:
    app = make_app(source=FakeSource(HEALTHY, with_dispatcher=False))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("p")
        await pilot.pause()
        assert app.is_running


async def test_palette_lists_toggle_commands() -> None:
    app = make_app(source=FakeSource(HEALTHY))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"toggle global kill")
        await pilot.pause(0.5)
        prompts = [str(option.prompt) for option in app.screen.query_one(CommandList).options]
        assert any("Toggle global kill notifications" in p for p in prompts), prompts
        titles = [command.title for command in console_commands(app)]
    assert "Toggle map alpha rally notifications" in titles
    assert "Pause delivery" in titles


async def test_help_and_dashboard_keys() -> None:
    app = make_app(source=FakeSource(HEALTHY))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert len(app.screen_stack) == 1


async def test_activity_filter_hides_other_lines() -> None:
    from textual.widgets import Input

    from tests.ui.conftest import degraded_snapshot
    from wanderer_console.ui.widgets.activity import ActivityPanel

    app = make_app(degraded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        panel = app.screen.query_one(ActivityPanel)
        everything = len(panel.lines)
        app.screen.query_one("#activity-filter", Input).value = "KILLSTREAM"
        await pilot.pause()
        texts = [strip.text for strip in panel.lines]
        assert 0 < len(texts) < everything
        assert all("killstream" in text for text in texts), texts
