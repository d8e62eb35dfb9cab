"""The alert banner and the alerts screen over the live engine: a threshold edited in the console
takes effect at the engine's next evaluation, and the banner follows.

A real runtime over the simulator, the app under Pilot over its own LocalBackend. The disk-space
floor is set far above the free space, so it fires at once: the banner shows it; the operator
opens the alerts screen (``a``), moves to the rule's threshold, types 0 and presses Enter; the
engine saves it to the config file and the alert resolves; the banner goes and the history shows
the alert closed.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from tests.support import wait_for
from tests.ui.conftest import HEALTHY, NOW, AppFactory
from tests.ui.fakes import SeededBackend, first_frame, record_toasts, screen_lines, settle
from wanderer_console.config.alerts import RULES
from wanderer_console.config.loader import load_settings
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.ui.app import build_app
from wanderer_console.ui.screens.alerts import COLUMNS, AlertsScreen

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def config(sim: Simulator, data: Path) -> str:
    lines = ["", "[alerts]", "interval_seconds = 0.05"]
    for rule in RULES:
        lines.append(f"[alerts.{rule}]")
        if rule == "disk_space":
            lines += ["threshold = 1e12  # MiB: far above any disk", "for_seconds = 0"]
        else:
            lines.append("enabled = false")
    return demo_config_text(sim, data_dir=data, dry_run=True) + "\n".join(lines) + "\n"


async def test_a_threshold_changed_in_the_console_applies_live(
    sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(config(sim, tmp_path / "data"), encoding="utf-8")
    path.chmod(0o600)
    runtime = Runtime(load_settings(path).settings, data_dir=tmp_path / "data", config_path=path)
    await runtime.start()
    try:
        await wait_for(lambda: runtime.alerts.firing(), 10, "disk_space firing")
        app = build_app(runtime.console, actor="tui:tester@console-host")
        async with app.run_test(size=(140, 44)) as pilot:
            await first_frame(pilot)
            badge = app.screen.query_one("#alert-badge")

            def banner() -> str:
                return str(badge.render()) if badge.has_class("-shown") else ""

            await wait_for(lambda: "ALERT disk_space [data_dir]" in banner(), 10, "the banner")

            await pilot.press("a")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, AlertsScreen)
            rules = screen.query_one("#alert-rules", DataTable)
            assert "FIRING" in str(rules.get_cell("disk_space", "state"))
            row = list(RULES).index("disk_space")
            rules.move_cursor(row=row, column=COLUMNS.index("threshold"))
            await pilot.press("enter")
            await pilot.pause()
            editor = screen.query_one("#alert-edit", Input)
            assert editor.has_focus
            assert editor.value == "1e+12"
            editor.value = ""
            await pilot.press("0", "enter")
            await settle(pilot)

            assert runtime.settings.alerts.disk_space.threshold == 0
            await wait_for(lambda: not runtime.alerts.firing(), 10, "disk_space resolved")
            saved = tomllib.loads(path.read_text(encoding="utf-8"))
            assert saved["alerts"]["disk_space"]["threshold"] == 0

            await wait_for(lambda: "ok" in str(rules.get_cell("disk_space", "state")), 10, "ok")
            history = screen.query_one("#alert-history", DataTable)

            def latest() -> list[str]:
                return [str(c) for c in history.get_row_at(0)] if history.row_count else []

            await wait_for(lambda: latest() and latest()[1] != "firing", 10, "resolved in history")
            assert latest()[2] == "disk_space"
            await pilot.press("escape")
            await pilot.pause()
            await wait_for(lambda: banner() == "", 10, "the banner gone")
    finally:
        await runtime.stop()


async def test_opening_and_saving_a_duration_keeps_it_exactly(
    sim: Simulator, tmp_path: Path
) -> None:
    """The editor opens with the rule's exact value: Enter on it without a change saves the
    same number (a value shown rounded, ``86399.8`` for ``86399.75``, would be saved rounded,
    changing a rule the operator did not touch)."""
    path = tmp_path / "config.toml"
    text = config(sim, tmp_path / "data").replace(
        "[alerts.outbox_depth]\nenabled = false", "[alerts.outbox_depth]\nfor_seconds = 86399.75"
    )
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    runtime = Runtime(load_settings(path).settings, data_dir=tmp_path / "data", config_path=path)
    await runtime.start()
    try:
        assert runtime.settings.alerts.outbox_depth.for_seconds == 86399.75
        app = build_app(runtime.console, actor="tui:tester@console-host")
        async with app.run_test(size=(140, 44)) as pilot:
            await first_frame(pilot)
            await pilot.press("a")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, AlertsScreen)
            rules = screen.query_one("#alert-rules", DataTable)
            assert str(rules.get_cell("outbox_depth", "for_seconds")) == "86399.75"
            row = list(RULES).index("outbox_depth")
            rules.move_cursor(row=row, column=COLUMNS.index("for_seconds"))
            await pilot.press("enter")
            await pilot.pause()
            editor = screen.query_one("#alert-edit", Input)
            assert editor.value == "86399.75"
            before = path.stat().st_ino
            await pilot.press("enter")  # saved as it was opened
            await settle(pilot)
            # The engine rewrites its file atomically (a new inode) when it saves the value.
            await wait_for(lambda: path.stat().st_ino != before, 10, "saved")
            saved = tomllib.loads(path.read_text(encoding="utf-8"))
            assert saved["alerts"]["outbox_depth"]["for_seconds"] == 86399.75
            assert runtime.settings.alerts.outbox_depth.for_seconds == 86399.75
    finally:
        await runtime.stop()


async def test_a_value_that_is_not_a_number_stays_in_the_editor_to_be_corrected(
    make_app: AppFactory,
) -> None:
    """A typo (``1O0``, a letter O) was refused and the editor closed with it: the operator had
    to find the cell again and type the whole value anew. It now stays, focused, as typed."""
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["alerts"] = {"rules": {"queue_depth": {"threshold": 500, "unit": "items"}}}
    engine = SeededBackend(snapshot)
    app = make_app(engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        await pilot.press("a")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AlertsScreen)
        screen.query_one("#alert-rules", DataTable).move_cursor(
            row=0, column=COLUMNS.index("threshold")
        )
        await pilot.press("enter")
        await pilot.pause()
        editor = screen.query_one("#alert-edit", Input)
        editor.value = ""
        await pilot.press(*"1O0", "enter")
        await settle(pilot)
        assert [t for t in toasts if t[1] == "error"] == [
            ("'1O0' is not a number: correct it, or Escape to cancel", "error")
        ]
        assert editor.display
        assert editor.has_focus
        assert editor.value == "1O0"
        assert not [op for op in engine.operations if op.name == "set_alert_rule"]
        editor.value = "100"
        await pilot.press("enter")
        await settle(pilot)
        assert not editor.display
        assert [op.args for op in engine.operations if op.name == "set_alert_rule"] == [
            ("queue_depth", "threshold", 100.0)
        ]


async def test_on_a_small_terminal_a_firing_rule_says_so_in_full(make_app: AppFactory) -> None:
    """80×24 with every rule: the state column came last, after the long units ("fraction of
    its bound"), and was cut to its first two letters: "FIRING (1)" read "FI"."""
    snapshot = copy.deepcopy(HEALTHY)
    rules = {
        name: {"threshold": 300, "for_seconds": 86399.75, "unit": info.unit, "above": info.above}
        for name, info in RULES.items()
    }
    firing = {"rule": "disk_space", "subject": "data_dir", "fired_at": NOW, "value": 10.0}
    firing |= {"threshold": 300.0, "summary": "disk space under 300 MiB"}
    snapshot["alerts"] = {"rules": rules, "firing": [firing]}
    app = make_app(snapshot)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_frame(pilot)
        await pilot.press("a")
        await settle(pilot)
        lines = screen_lines(app)
        [row] = [line for line in lines if line.startswith(" disk_space")]
        assert "FIRING (1)" in row, "\n".join(lines)
        assert any("state" in line and "rule" in line for line in lines)
