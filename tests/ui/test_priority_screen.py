"""The priority screen over the live engine: the gateway's state and the priority list; a system
added or removed in the console is what ``/notifier priority list`` answers next (the command
sent over the simulator's fake gateway, answered at its interaction endpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input

from tests.support import wait_for
from tests.ui.fakes import first_frame, screen_lines, settle
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.sim.discord_gateway import FakeGateway
from wanderer_console.ui.app import build_app
from wanderer_console.ui.screens.priority import PriorityScreen
from wanderer_console.ui.widgets.keybar import KeyBar

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SIZE = (120, 40)
LIST = [{"type": 2, "name": "priority", "options": [{"type": 1, "name": "list", "options": []}]}]


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 13, "gateway": True}


async def _listed(gateway: FakeGateway) -> str:
    interaction = await gateway.inject_interaction(LIST)
    await wait_for(lambda: interaction.final_text() is not None, 10, "the list's answer")
    return interaction.final_text() or ""


async def test_priority_edits_in_the_console_reach_the_slash_command(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.gateway is not None
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await runtime.start()
    try:
        gateway = runtime.gateway
        assert gateway is not None
        await wait_for(gateway.ready.is_set, 10, "the gateway's READY")
        assert "No priority systems" in await _listed(sim.gateway)
        app = build_app(runtime.console, actor="tui:tester@console-host")
        async with app.run_test(size=SIZE) as pilot:
            await first_frame(pilot)
            await pilot.press("s")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, PriorityScreen)
            await wait_for(
                lambda: "connected" in str(screen.query_one("#priority-gateway").render()),
                10,
                "the gateway's state shown",
            )
            await pilot.press(*"J154624", "enter")
            await settle(pilot)
            await wait_for(lambda: runtime.priority.names() == ["J154624"], 10, "added")
            table = screen.query_one("#priority-list")
            await wait_for(lambda: table.row_count == 1, 10, "listed")  # type: ignore[attr-defined]
            assert str(table.get_cell("J154624", "by")).startswith("tui:tester")  # type: ignore[attr-defined]
            assert "J154624" in await _listed(sim.gateway)

            table.focus()
            await pilot.press("delete")
            await settle(pilot)
            await wait_for(lambda: runtime.priority.names() == [], 10, "removed")
            await wait_for(lambda: table.row_count == 0, 10, "unlisted")  # type: ignore[attr-defined]
            assert "No priority systems" in await _listed(sim.gateway)

            # Names and user names come from Discord: shown as written, never as markup.
            runtime.priority.add("[red]J1", actor="discord:[bold]pilot[/bold] (1)")
            await wait_for(lambda: table.row_count == 1, 10, "the odd name listed")  # type: ignore[attr-defined]
            await settle(pilot)
            shown = "\n".join(screen_lines(app))
            assert "[red]J1" in shown
            assert "discord:[bold]pilot[/bold]" in shown
            runtime.priority.remove("[red]J1", actor="t")
        changes = [(c.action, c.name) for c in runtime.store.priority_changes()]
        assert changes[:2] == [("add", "J154624"), ("remove", "J154624")]
    finally:
        await runtime.stop()


async def test_delete_removes_the_selected_system_as_the_screen_opens(
    sim: Simulator, tmp_path: Path
) -> None:
    """The input has the focus when the screen opens, and it kept Delete for itself: the
    selected system was removed only after Tab, and the key bar did not offer Delete. Delete
    now removes the selected row at once (the bar says so); with text in the input it edits
    the text, as in any input."""
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await runtime.start()
    try:
        runtime.priority.add("J154624", actor="t")
        runtime.priority.add("Jita", actor="t")
        app = build_app(runtime.console, actor="tui:tester@console-host")
        async with app.run_test(size=SIZE) as pilot:
            await first_frame(pilot)
            await pilot.press("s")
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, PriorityScreen)
            table = screen.query_one("#priority-list", DataTable)
            field = screen.query_one("#priority-add", Input)
            await wait_for(lambda: table.row_count == 2, 10, "listed")
            await pilot.pause()
            assert field.has_focus
            assert ("del", "Remove", True) in screen.query_one(KeyBar).entries()

            await pilot.press(*"Jx", "left", "delete")  # text in the input: Delete edits it
            await settle(pilot)
            assert field.value == "J"
            assert sorted(runtime.priority.names()) == ["J154624", "Jita"]
            await pilot.press("backspace")

            selected = str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
            await pilot.press("delete")
            await settle(pilot)
            await wait_for(lambda: selected not in runtime.priority.names(), 10, "removed")
            assert len(runtime.priority.names()) == 1
    finally:
        await runtime.stop()
