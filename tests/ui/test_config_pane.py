"""The config pane with Pilot: masked secrets, validation with located problems, atomic saves."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static, TextArea

from tests.ui.conftest import CONFIG_TEXT, HEALTHY, FakeSource, make_app
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.screens.config import ConfigScreen

pytestmark = pytest.mark.slow

SIZE = (120, 40)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(path: Path) -> list[Path]:
    return list(path.parent.glob("*.tmp"))


SECRETS = ("alpha-api-key-123", "hook-token-xyz")


class FakeReloader:
    """Records the reloads the pane asks for."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def reload(self, *, source: str = "file") -> Any:
        self.calls.append(source)
        return type("Result", (), {"status": "applied", "restart_required": [], "problems": []})()


async def open_pane(app: WandererApp, pilot: Any) -> tuple[ConfigScreen, TextArea]:
    await pilot.pause()
    await pilot.press("c")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, ConfigScreen)
    return screen, screen.query_one("#config-text", TextArea)


async def test_secrets_are_masked_until_revealed(config_file: Path) -> None:
    app = make_app(HEALTHY, config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        assert not any(secret in editor.text for secret in SECRETS)
        assert 'api_key = "«secret-1»"' in editor.text
        assert "https://discord.com/api/webhooks/42/«secret-2»" in editor.text
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert screen.revealed
        assert editor.text == CONFIG_TEXT
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert not screen.revealed
        assert not any(secret in editor.text for secret in SECRETS)


async def test_valid_save_writes_real_secrets_keeps_comments_and_mode(config_file: Path) -> None:
    source = FakeSource(HEALTHY)
    source.reloader = FakeReloader()  # type: ignore[attr-defined]
    app = make_app(source=source, config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        _screen, editor = await open_pane(app, pilot)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert("\nrally = false  # added from the console")
        await pilot.press("ctrl+s")
        await pilot.pause()
    text = _read(config_file)
    assert "# Operator config: keep this comment." in text
    assert "# added from the console" in text
    assert "«secret" not in text
    data = tomllib.loads(text)
    assert data["notifications"]["rally"] is False
    assert data["maps"]["alpha"]["api_key"] == SECRETS[0]
    assert data["maps"]["alpha"]["discord"]["webhook_url"].endswith("/42/hook-token-xyz")
    assert _mode(config_file) == 0o600
    assert source.reloader.calls == ["tui"]  # type: ignore[attr-defined]
    assert not _leftovers(config_file)


async def test_invalid_save_is_refused_with_line_and_key(config_file: Path) -> None:
    app = make_app(HEALTHY, config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert('\nsound = "loud"')
        editor.move_cursor((0, 0))
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert [(p.line, p.key) for p in screen.problems] == [(7, "notifications.sound")]
        shown = str(screen.query_one("#config-problems", Static).render())
        assert "line 7 · notifications.sound" in shown
        assert editor.cursor_location[0] == 6
    assert _read(config_file) == CONFIG_TEXT


async def test_edited_mask_is_never_saved(config_file: Path) -> None:
    app = make_app(HEALTHY, config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.load_text(editor.text.replace("«secret-1»", "«secret-»"))
        await pilot.press("ctrl+s")
        await pilot.pause()
        shown = str(screen.query_one("#config-problems", Static).render())
        assert "masked secrets were edited" in shown
        await pilot.press("ctrl+r")  # cannot reveal either: the mask no longer matches
        await pilot.pause()
        assert not screen.revealed
    assert _read(config_file) == CONFIG_TEXT


async def test_secret_changed_after_reveal_is_saved(config_file: Path) -> None:
    app = make_app(HEALTHY, config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        _screen, editor = await open_pane(app, pilot)
        await pilot.press("ctrl+r")
        await pilot.pause()
        editor.load_text(editor.text.replace(SECRETS[0], "rotated-key-456"))
        await pilot.press("ctrl+r")  # mask again before saving: the new value is kept
        await pilot.pause()
        assert "rotated-key-456" not in editor.text
        await pilot.press("ctrl+s")
        await pilot.pause()
    data = tomllib.loads(_read(config_file))
    assert data["maps"]["alpha"]["api_key"] == "rotated-key-456"


async def test_pane_without_file_is_read_only() -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        _screen, editor = await open_pane(app, pilot)
        assert editor.read_only
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1


async def test_unedited_pane_follows_the_file_changing_on_disk(config_file: Path) -> None:
    app = make_app(HEALTHY, config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        _write(config_file, CONFIG_TEXT.replace("kill = true", "kill = false"))
        screen.check_disk()  # what the pane's 1 s timer does
        await pilot.pause()
        assert "kill = false  # kills in tracked systems" in editor.text
        assert 'api_key = "«secret-1»"' in editor.text  # still masked
        assert editor.border_subtitle == ""


async def test_save_over_someone_elses_change_needs_a_second_press(config_file: Path) -> None:
    source = FakeSource(HEALTHY)
    source.reloader = FakeReloader()  # type: ignore[attr-defined]
    app = make_app(source=source, config_path=config_file)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert("\nrally = false")
        theirs = CONFIG_TEXT.replace('theme = "wanderer-dark"', 'theme = "wanderer-light"')
        _write(config_file, theirs)  # e.g. vim in another window
        screen.check_disk()
        await pilot.pause()
        assert editor.border_subtitle == "modified · file changed on disk"
        assert "rally = false" in editor.text  # the operator's edit is kept
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert _read(config_file) == theirs  # not overwritten
        message = str(screen.query_one("#config-problems", Static).render())
        assert "changed on disk" in message
        assert source.reloader.calls == []  # type: ignore[attr-defined]
        await pilot.press("ctrl+s")  # confirmed: this text wins
        await pilot.pause()
    data = tomllib.loads(_read(config_file))
    assert data["notifications"]["rally"] is False
    assert data["console"]["theme"] == "wanderer-dark"
    assert source.reloader.calls == ["tui"]  # type: ignore[attr-defined]
