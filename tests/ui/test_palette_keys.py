"""The palette provider, the [keymap] section and live theme switching."""

from __future__ import annotations

import re

import pytest
from textual.app import App
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.ui.conftest import ACTOR, CONFIG_TEXT, HEALTHY, AppFactory
from tests.ui.fakes import (
    Operation,
    SeededBackend,
    first_frame,
    next_frame,
    record_toasts,
    screen_lines,
    settle,
)
from wanderer_console.console_api import (
    ApplyResult,
    BackendError,
    ConfigProblem,
    FlagSet,
    OperationResult,
)
from wanderer_console.ui.app import binding_ids
from wanderer_console.ui.commands import console_commands
from wanderer_console.ui.keynames import key_problem
from wanderer_console.ui.screens.config import ConfigScreen
from wanderer_console.ui.screens.help import HelpScreen
from wanderer_console.ui.screens.toggles import TogglesScreen

SIZE = (120, 40)


async def _palette_prompts(app: App[object], pilot: Pilot[object], query: str) -> list[str]:
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
async def test_palette_lists_provider_commands(make_app: AppFactory) -> None:
    app = make_app(HEALTHY, config_text=CONFIG_TEXT)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
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


async def test_reload_is_offered_only_with_a_config_file(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        titles = [command.title for command in console_commands(app)]
    assert "Reload config" not in titles
    assert "Open config editor" in titles  # it says there is no file


@pytest.mark.slow
async def test_palette_theme_switch_is_live_and_saved_by_the_engine(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        command = next(c for c in console_commands(app) if c.title.endswith("wanderer-light"))
        command.callback()
        await settle(pilot)
        assert app.theme == "wanderer-light"
        assert app.theme_variables["breaker-open"] == "#B3261E"
        await next_frame(pilot, engine)  # the engine's snapshot now says light: nothing undone
        assert app.theme == "wanderer-light"
    assert engine.operations == [Operation("set_theme", ("wanderer-light",), ACTOR)]
    assert engine.settings.theme == "wanderer-light"


async def test_a_theme_the_engine_could_not_save_stays_applied_with_a_warning(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend(HEALTHY)

    async def refuse(name: str, *, actor: str) -> OperationResult:
        return OperationResult(ok=False, message="config.toml is read-only")

    engine.set_theme = refuse  # type: ignore[method-assign]
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        app.switch_theme("wanderer-light")
        await settle(pilot)
        assert app.theme == "wanderer-light"
        assert toasts == [("Theme applied, but not saved: config.toml is read-only", "warning")]


@pytest.mark.slow
async def test_settings_theme_change_switches_live(make_app: AppFactory) -> None:
    """A theme changed elsewhere (the file on the engine's host, another console) follows."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert app.theme == "wanderer-dark"
        engine.settings = engine.settings.model_copy(update={"theme": "wanderer-light"})
        await next_frame(pilot, engine)
        assert app.theme == "wanderer-light"


@pytest.mark.slow
async def test_keymap_remaps_a_binding(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    keymap = {"app.toggles": "f2", "app.config": "ctrl+o"}
    engine.settings = engine.settings.model_copy(update={"keymap": keymap})
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
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
async def test_help_shows_the_keys_the_keymap_set(make_app: AppFactory) -> None:
    """With ``[keymap]`` moving the toggles to f2, help must say f2: an operator who presses the
    ``t`` help showed gets nothing."""
    engine = SeededBackend(HEALTHY)
    keymap = {"app.toggles": "f2", "app.config": "ctrl+o,f3"}
    engine.settings = engine.settings.model_copy(update={"keymap": keymap})
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        found = (re.search(r"│ +([^│\s]+) +[^│]*?(app\.\w+)", line) for line in screen_lines(app))
        rows = {match[2]: match[1] for match in found if match}
    assert rows["app.toggles"] == "f2", rows
    assert rows["app.config"] == "^o,f3", rows
    assert rows["app.quit"] == "q", rows


@pytest.mark.slow
async def test_hot_reloaded_keymap_is_applied(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        engine.settings = engine.settings.model_copy(
            update={"keymap": {"app.help": "f1", "app.nothing": "f9"}}
        )
        await next_frame(pilot, engine)
        await pilot.press("f1")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "HelpScreen"
        assert any("names no binding: app.nothing" in t for t, _ in toasts), toasts


@pytest.mark.slow
async def test_keymap_naming_the_alerts_and_trends_keys_is_not_called_unknown(
    make_app: AppFactory,
) -> None:
    """``alerts.flip`` and ``trends.7d`` are bindings a ``[keymap]`` may move: no toast may
    tell the operator they name nothing."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        engine.settings = engine.settings.model_copy(
            update={"keymap": {"alerts.flip": "f3", "trends.7d": "f4", "app.nothing": "f9"}}
        )
        await next_frame(pilot, engine)
        unknown = [t for t, _ in toasts if "names no binding" in t]
        assert unknown == ["[keymap] names no binding: app.nothing (see ? for the ids)"], toasts


@pytest.mark.slow
async def test_a_keymap_taking_the_quit_key_says_so(make_app: AppFactory) -> None:
    """``app.toggles = "q"`` took q from quit without a word: the key bar simply lost "q Quit".
    The operator is now told which binding lost its key, once."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        engine.settings = engine.settings.model_copy(update={"keymap": {"app.toggles": "q"}})
        await next_frame(pilot, engine)
        await pilot.press("q")  # the keymap holds: q opens the toggles
        await pilot.pause()
        assert isinstance(app.screen, TogglesScreen)
        await pilot.press("escape")
        await next_frame(pilot, engine)
        taken = [t for t, _ in toasts if "[keymap]" in t]
        assert taken == [
            "[keymap] gives q to app.toggles: q no longer runs app.quit"
            " (move one of them, see ? for the ids)"
        ], toasts


def test_every_binding_has_an_id() -> None:
    ids = binding_ids()
    assert {"app.quit", "app.config", "config.save", "toggles.flip"} <= ids
    assert "config.reveal" not in ids  # secrets never cross to the console


@pytest.mark.slow
async def test_hot_reload_adding_a_map_rebuilds_the_toggles(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("t")
        await pilot.pause()
        settings = engine.settings
        engine.settings = settings.model_copy(
            update={
                "maps": {**settings.maps, "charlie": FlagSet(kill=False)},
                "map_names": {**settings.map_names, "charlie": "Charlie"},
            }
        )
        await next_frame(pilot, engine)
        table = app.screen.query_one("#flags", DataTable)
        assert [row.value for row in table.rows] == ["", "alpha", "bravo", "charlie"]
        assert str(table.get_cell("charlie", "scope")) == "map Charlie"
        assert str(table.get_cell("charlie", "kill")) == "off"


async def test_reload_from_the_palette_toasts_what_the_engine_did(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    engine.reload_result = ApplyResult(
        status="applied", message="applied", restart_required=("console.data_dir",)
    )
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        [reload] = [c for c in console_commands(app) if c.title == "Reload config"]
        reload.callback()
        await settle(pilot)
        engine.refuse["reload_config"] = BackendError("engine lost: connection refused")
        reload.callback()
        await settle(pilot)
        assert app.is_running
    assert toasts == [
        ("Reload applied; restart needed for console.data_dir", "information"),
        ("Could not reload the config: engine lost: connection refused", "error"),
    ]
    assert engine.operations == [Operation("reload_config", (), ACTOR)]


async def test_a_reload_refused_for_several_problems_says_how_many(make_app: AppFactory) -> None:
    """The toast named the first problem only: the operator fixed it, reloaded and met the
    next one, with nothing saying there were more."""
    engine = SeededBackend(HEALTHY, config_text=CONFIG_TEXT)
    problems = (
        ConfigProblem(line=6, key="notifications.kil", message="unknown key 'kil'"),
        ConfigProblem(line=9, key="maps.alpha.url", message="not a URL"),
        ConfigProblem(line=12, key="maps.alpha.name", message="must not be empty"),
    )
    engine.reload_result = ApplyResult(status="rejected", message="rejected", problems=problems)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        [reload] = [c for c in console_commands(app) if c.title == "Reload config"]
        reload.callback()
        await settle(pilot)
    assert toasts == [
        (
            "Reload rejected: line 6 · notifications.kil: unknown key 'kil' (and 2 more problems)",
            "warning",
        )
    ]


@pytest.mark.slow
async def test_a_keymap_key_name_that_is_no_key_is_said_and_the_rest_applies(
    make_app: AppFactory,
) -> None:
    """``app.toggles = "ctrl+shfit+x"`` was accepted without a word: the toggles lost t for a
    key no terminal sends. The entry is named with what is valid, the binding keeps its key,
    and the keymap's other entries apply; a reload with a typo keeps what runs."""
    engine = SeededBackend(HEALTHY)
    keymap = {"app.toggles": "ctrl+shfit+x", "app.help": "f1", "app.config": "f3,ctrl+f99"}
    engine.settings = engine.settings.model_copy(update={"keymap": keymap})
    app = make_app(engine=engine)
    toasts = record_toasts(app)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.pause()
        said = [t for t, _ in toasts if "[keymap]" in t]
        assert said == [
            "[keymap] app.config = 'f3,ctrl+f99': f99 is not a key name (keys: a character,"
            " f1-f35, enter, escape, tab, space, backspace, delete, insert, home, end, pageup,"
            " pagedown, up, down, left, right, or a name such as question_mark; modifiers:"
            " ctrl, shift, alt, meta, super, hyper). app.config keeps c",
            "[keymap] app.toggles = 'ctrl+shfit+x': shfit is not a modifier (modifiers:"
            " ctrl, shift, alt, meta, super, hyper). app.toggles keeps t",
        ], toasts
        await pilot.press("f1")  # the valid entry applies
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("t")  # the entry with a typo left the toggles on t
        await pilot.pause()
        assert isinstance(app.screen, TogglesScreen)
        await pilot.press("escape")
        await pilot.pause()

        # A reload moves the toggles to f2, then a typo: f2 stays, as the running keymap had it.
        engine.settings = engine.settings.model_copy(update={"keymap": {"app.toggles": "f2"}})
        await next_frame(pilot, engine)
        engine.settings = engine.settings.model_copy(update={"keymap": {"app.toggles": "F2"}})
        await next_frame(pilot, engine)
        assert [t for t, _ in toasts if "[keymap]" in t][-1].endswith("app.toggles keeps f2")
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, TogglesScreen)


def test_every_key_the_console_binds_is_a_key_name() -> None:
    """The check of ``[keymap]`` keys must accept every key the console's own bindings use."""
    from wanderer_console.ui.app import _binding_owners, _bindings_of

    for owner in _binding_owners():
        for binding in _bindings_of(owner):
            assert key_problem(binding.key) is None, (binding.id, binding.key)
    for keys in ("q,ctrl+q", "f2", "ctrl+shift+up", "?", "question_mark", "space", "+", "f35"):
        assert key_problem(keys) is None, keys
    assert key_problem("F2") is not None
    assert key_problem("ctrl+ctrl+x") == "ctrl+ctrl+x names a modifier twice"
    assert key_problem(" , ") == "no key given"
