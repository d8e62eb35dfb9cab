"""The config pane with Pilot: the engine's text with secrets masked, edits the engine validates,
located problems, conflicts with a change made elsewhere, and following the file."""

from __future__ import annotations

import asyncio
import tomllib
from typing import Any

import pytest
from textual.widgets import Static, TextArea

from tests.ui.conftest import ACTOR, CONFIG_TEXT, HEALTHY, NOW, AppFactory
from tests.ui.fakes import (
    SeededBackend,
    first_frame,
    next_frame,
    record_toasts,
    screen_lines,
    settle,
)
from wanderer_console.console_api import ApplyResult, BackendError, ConfigProblem, LinkState
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.screens.choice import ChoiceScreen
from wanderer_console.ui.screens.config import ConfigScreen, describe_problem, reload_summary
from wanderer_console.ui.screens.dashboard import DashboardScreen

pytestmark = pytest.mark.slow

SIZE = (120, 40)

SECRETS = ("alpha-api-key-123", "hook-token-xyz")


async def open_pane(app: WandererApp, pilot: Any) -> tuple[ConfigScreen, TextArea]:
    await first_frame(pilot)
    await pilot.press("c")
    await settle(pilot)
    screen = app.screen
    assert isinstance(screen, ConfigScreen)
    return screen, screen.query_one("#config-text", TextArea)


def _problems(screen: ConfigScreen) -> str:
    return str(screen.query_one("#config-problems", Static).render())


def _hint(screen: ConfigScreen) -> str:
    return str(screen.query_one("#config-hint", Static).render())


async def test_secrets_never_reach_the_pane(make_app: AppFactory) -> None:
    app = make_app(HEALTHY, config_text=CONFIG_TEXT)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        assert not any(secret in editor.text for secret in SECRETS)
        assert 'api_key = "«secret-1»"' in editor.text
        assert "https://discord.com/api/webhooks/42/«secret-2»" in editor.text
        assert editor.border_title == "config.toml"
        hint = _hint(screen)
        assert "2 secret(s)" in hint
        assert "edited in the file on the engine's host" in hint
        await pilot.press("ctrl+r")  # no reveal: the console never holds a secret
        await pilot.pause()
        assert "«secret-1»" in editor.text


async def test_valid_save_is_applied_by_the_engine_with_its_secrets(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    engine.restart_required = ("console.data_dir",)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        toasts = record_toasts(app)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert("\nrally = false  # added from the console")
        await pilot.pause()
        assert editor.border_subtitle == "modified"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert toasts == [
            ("Saved config.toml; restart needed for console.data_dir.", "information")
        ]
        assert editor.border_subtitle == ""
        assert not screen.modified()
        assert "«secret-1»" in editor.text  # reloaded from the engine: still masked
    [apply] = [op for op in engine.operations if op.name == "apply_config"]
    text, base_digest, force = apply.args
    assert "«secret-1»" in text  # what crossed was masked
    assert base_digest is not None
    assert force is False
    assert apply.actor == ACTOR
    data = tomllib.loads(engine.text)
    assert "# added from the console" in engine.text
    assert data["notifications"]["rally"] is False
    assert data["maps"]["alpha"]["api_key"] == SECRETS[0]  # the engine put its own back
    assert data["maps"]["alpha"]["discord"]["webhook_url"].endswith("/42/hook-token-xyz")


async def test_invalid_save_is_refused_with_line_and_key(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert('\nsound = "loud"')
        editor.move_cursor((0, 0))
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert [(p.line, p.key) for p in screen.problems] == [(7, "notifications.sound")]
        assert "line 7 · notifications.sound" in _problems(screen)
        assert editor.cursor_location[0] == 6
        assert editor.border_subtitle == "modified"
    assert engine.text == CONFIG_TEXT


async def test_on_a_small_terminal_the_line_of_a_problem_is_in_view(make_app: AppFactory) -> None:
    """80×24: the problems panel appears as the cursor jumps, shrinking the editor; the line the
    panel names must still be on screen (it was scrolled into view before the panel took its
    rows, so it ended below the editor's last visible line)."""
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.load_text(
            editor.text
            + '\n[maps.beta]\nurl = "http://127.0.0.1:2"\napi_key = "k"\n'
            + '[maps.beta.discord]\nwebhook_url = "htp://nowhere"\n'
        )
        editor.move_cursor((0, 0))
        await pilot.press("ctrl+s")
        await settle(pilot)
        [problem] = screen.problems
        assert problem.key == "maps.beta.discord.webhook_url"
        assert problem.line is not None
        assert editor.cursor_location[0] == problem.line - 1
        await pilot.pause()
        shown = screen_lines(app)
        assert any(f"line {problem.line} · maps.beta" in line for line in shown)
        assert any(
            line.startswith(f'│ {problem.line}  webhook_url = "htp://nowhere"') for line in shown
        ), "\n".join(shown)


async def test_edited_mask_is_refused_by_the_engine(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.load_text(editor.text.replace("«secret-1»", "«secret-»"))
        await pilot.press("ctrl+s")
        await settle(pilot)
        shown = _problems(screen)
        assert "no line · secrets: masked secrets were edited" in shown
    assert engine.text == CONFIG_TEXT


async def test_a_new_key_typed_with_its_real_value_is_saved(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        _screen, editor = await open_pane(app, pilot)
        editor.load_text(
            editor.text + '\n[maps.bravo]\nurl = "http://127.0.0.1:2"\napi_key = "bravo-key-789"\n'
        )
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "bravo-key-789" not in editor.text  # shown masked once the engine has it
        assert "«secret-3»" in editor.text
    assert tomllib.loads(engine.text)["maps"]["bravo"]["api_key"] == "bravo-key-789"


async def test_pane_without_file_is_read_only(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        assert editor.read_only
        assert "No config file" in _hint(screen)
        assert not screen.editable
        await pilot.press("escape")
        await pilot.pause()
        assert len(app.screen_stack) == 1


async def test_unedited_pane_follows_the_file_changing_on_disk(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        _screen, editor = await open_pane(app, pilot)
        toasts = record_toasts(app)
        engine.edit_file(CONFIG_TEXT.replace("kill = true", "kill = false"))
        await next_frame(pilot, engine)  # the snapshot's digest changed
        await settle(pilot)
        assert "kill = false  # kills in tracked systems" in editor.text
        assert 'api_key = "«secret-1»"' in editor.text  # still masked
        assert editor.border_subtitle == ""
        assert toasts == [("config.toml changed on disk; reloaded.", "information")]


async def test_save_over_someone_elses_change_needs_a_second_press(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.move_cursor((5, 0))
        await pilot.press("end")
        editor.insert("\nrally = false")
        theirs = CONFIG_TEXT.replace('theme = "wanderer-dark"', 'theme = "wanderer-light"')
        engine.edit_file(theirs)  # e.g. vim on the engine's host
        await next_frame(pilot, engine)
        await settle(pilot)
        assert editor.border_subtitle == "modified · file changed on disk"
        assert "rally = false" in editor.text  # the operator's edit is kept
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert engine.text == theirs  # not overwritten
        assert "changed on disk since it was opened here" in _problems(screen)
        assert "ctrl+s again" in _problems(screen)
        await pilot.press("ctrl+s")  # confirmed: this text wins
        await settle(pilot)
    applies = [op.args[2] for op in engine.operations if op.name == "apply_config"]
    assert applies == [False, True]  # the second press forced it
    data = tomllib.loads(engine.text)
    assert data["notifications"]["rally"] is False
    assert data["console"]["theme"] == "wanderer-dark"


class SlowEngine(SeededBackend):
    """An engine at the end of a slow link: a save is answered only when the test says so."""

    def __init__(self) -> None:
        super().__init__(HEALTHY, config_text=CONFIG_TEXT)
        self.answer = asyncio.Event()

    async def apply_config(
        self, text: str, *, base_digest: str | None, force: bool = False, actor: str
    ) -> ApplyResult:
        await self.answer.wait()
        return await super().apply_config(text, base_digest=base_digest, force=force, actor=actor)


async def test_ctrl_s_pressed_again_while_saving_is_not_a_conflict(make_app: AppFactory) -> None:
    """Over a slow link the operator presses ctrl+s twice: the second save went out with the
    digest the first one replaced, came back as "changed on disk since it was opened here" and
    armed an overwrite, though nobody else had touched the file."""
    engine = SlowEngine()
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        toasts = record_toasts(app)
        await _edit(pilot, editor, "rally = false")
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("ctrl+s")  # no answer yet: pressed again
        await pilot.pause()
        engine.answer.set()
        await settle(pilot)
        assert "changed on disk" not in _problems(screen)
        assert not screen.problems
        assert toasts == [
            ("Still saving: waiting for the engine's answer.", "warning"),
            ("Saved config.toml; applied.", "information"),
        ]
        assert not screen.modified()
    assert [op.args[2] for op in engine.operations if op.name == "apply_config"] == [False]
    assert tomllib.loads(engine.text)["notifications"]["rally"] is False


async def test_an_unreachable_engine_keeps_the_edits_and_says_why(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        toasts = record_toasts(app)
        editor.insert("# mine\n")
        engine.refuse["apply_config"] = BackendError("engine lost: connection refused")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.is_running
        assert "Not saved: engine lost: connection refused" in _problems(screen)
        assert toasts == [("Not saved: engine lost: connection refused", "error")]
        assert editor.text.startswith("# mine\n")
        assert editor.border_subtitle == "modified"
    assert engine.text == CONFIG_TEXT


async def test_a_text_the_engine_cannot_send_is_said_in_the_hint(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    engine.refuse["config_text"] = BackendError("engine lost: connection refused")
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        assert "Cannot load the config: engine lost: connection refused" in _hint(screen)
        assert editor.read_only
        assert not screen.editable


async def test_a_pane_that_could_not_load_loads_when_the_engine_is_back(
    make_app: AppFactory,
) -> None:
    """Opened while the engine was lost, the pane said "Cannot load the config" and stayed
    read-only for good, even once the engine answered again: it now loads when the link is
    live again."""
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        engine.link = LinkState(state="lost", detail="connection refused", since=NOW)
        engine.refuse["config_text"] = BackendError("engine lost: connection refused")
        await next_frame(pilot, engine)
        screen, editor = await open_pane(app, pilot)
        assert "Cannot load the config: engine lost" in _hint(screen)
        assert not screen.editable
        del engine.refuse["config_text"]
        engine.link = LinkState()
        await next_frame(pilot, engine)
        await settle(pilot)
        assert screen.editable
        assert not editor.read_only
        assert 'api_key = "«secret-1»"' in editor.text
        assert "Editing config.toml" in _hint(screen)


async def test_a_conflict_even_forcing_cannot_resolve_says_what_the_engine_said(
    make_app: AppFactory,
) -> None:
    """The engine restarted since the text was sent: it cannot put its secrets back, so even a
    forced save is refused, and the pane passes on what to do instead of asking again."""
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)

    async def restarted(text: str, **kwargs: Any) -> ApplyResult:
        return ApplyResult(
            status="conflict",
            message="config.toml changed since it was opened here (or the engine restarted):"
            " open it again to start from the current file",
        )

    engine.apply_config = restarted  # type: ignore[method-assign]
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        editor.insert("# mine\n")
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "ctrl+s again" in _problems(screen)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert _problems(screen) == (
            "Not saved: config.toml changed since it was opened here (or the engine restarted):"
            " open it again to start from the current file"
        )


def test_reload_summaries() -> None:
    assert reload_summary(ApplyResult(status="unchanged", message="no changes")) == (
        "Reload unchanged"
    )
    rejected = ApplyResult(
        status="rejected",
        message="rejected",
        problems=(ConfigProblem(line=None, key="", message="config.toml:3: bad value"),),
    )
    assert reload_summary(rejected) == "Reload rejected: config.toml:3: bad value"
    located = ConfigProblem(line=7, key="maps.alpha.url", message="not a URL")
    assert describe_problem(located) == "line 7 · maps.alpha.url: not a URL"
    assert reload_summary(ApplyResult(status="unavailable", message="no config file")) == (
        "Reload unavailable: no config file"
    )


# -- leaving with unsaved edits --------------------------------------------------------------------


async def _edit(pilot: Any, editor: TextArea, line: str) -> None:
    editor.move_cursor((5, 0))
    await pilot.press("end")
    editor.insert(f"\n{line}")
    await pilot.pause()


async def test_escape_without_edits_leaves_at_once(make_app: AppFactory) -> None:
    app = make_app(HEALTHY, config_text=CONFIG_TEXT)
    async with app.run_test(size=SIZE) as pilot:
        await open_pane(app, pilot)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


async def test_escape_with_edits_asks_and_stay_keeps_them(make_app: AppFactory) -> None:
    app = make_app(HEALTHY, config_text=CONFIG_TEXT)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        await _edit(pilot, editor, "rally = false")
        await pilot.press("escape")
        await pilot.pause()
        question = app.screen
        assert isinstance(question, ChoiceScreen)
        assert "config.toml has edits that are not saved" in question.message
        assert [c.label for c in question.choices] == ["Save", "Discard", "Stay"]
        await pilot.press("escape")  # Escape again: stay
        await pilot.pause()
        assert app.screen is screen
        assert "rally = false" in editor.text
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("c")  # the Stay key
        await pilot.pause()
        assert app.screen is screen
        assert screen.modified()


async def test_escape_with_edits_then_discard_throws_them_away(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        _screen, editor = await open_pane(app, pilot)
        await _edit(pilot, editor, "rally = false")
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        assert not [op for op in engine.operations if op.name == "apply_config"]
        assert "rally = false" not in engine.text


async def test_escape_with_edits_then_save_applies_and_leaves(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        _screen, editor = await open_pane(app, pilot)
        await _edit(pilot, editor, "rally = false")
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("s")
        await settle(pilot)
        assert isinstance(app.screen, DashboardScreen)
        assert "rally = false" in engine.text


async def test_quitting_with_unsaved_edits_asks_first(make_app: AppFactory) -> None:
    """ctrl+q (Textual's quit key, live in the editor) or the palette's quit ended the console
    and threw unsaved edits away without a word, where Escape asks."""
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    engine.data["counters"]["outbox"] = {}  # nothing pending: quitting never asked before
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        await _edit(pilot, editor, "rally = false")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert app.is_running
        question = app.screen
        assert isinstance(question, ChoiceScreen)
        assert "config.toml has edits that are not saved" in question.message
        await pilot.press("s")  # stay
        await pilot.pause()
        assert app.screen is screen
        assert "rally = false" in editor.text
        await pilot.press("ctrl+q")
        await pilot.pause()
        await pilot.press("q")  # quit all the same
        await pilot.pause()
        assert not app.is_running
    assert "rally = false" not in engine.text


async def test_escape_with_an_invalid_edit_then_save_stays_with_the_problem(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        screen, editor = await open_pane(app, pilot)
        await _edit(pilot, editor, "kil = false")
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("s")
        await settle(pilot)
        assert app.screen is screen
        assert "notifications.kil" in _problems(screen)
        assert "kil = false" not in engine.text
