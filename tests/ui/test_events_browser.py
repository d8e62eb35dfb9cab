"""The events browser over a live engine: search, the map/type/outcome filters, the detail of a
delivered and of a filtered kill, and the way in from a target of the delivery panel.

The simulator and a real :class:`~wanderer_console.runtime.Runtime` run in the test's event loop
beside the app under Pilot, built over the runtime's own backend (as the launcher runs it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support import connected, wait_for
from tests.ui.fakes import first_frame, settle
from wanderer_console.console_api import EventQuery
from wanderer_console.control import events
from wanderer_console.launch import demo_settings
from wanderer_console.pipeline.rules import REFUSAL_REASONS
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.ui.app import WandererApp, build_app
from wanderer_console.ui.screens.detail import DetailScreen
from wanderer_console.ui.screens.events import (
    EventDetailScreen,
    EventsScreen,
    EventsTable,
    detail_text,
)
from wanderer_console.ui.widgets.delivery import DeliveryTable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

SIZE = (120, 40)


@pytest.fixture
def sim_options() -> dict[str, Any]:
    return {"seed": 13, "discord_webhook_limit": 1000, "discord_webhook_window": 1.0}


def _kill_outcome(runtime: Runtime, killmail_id: int) -> str | None:
    page = events.event_page(runtime, EventQuery(search=f"kill:{killmail_id}", type="killmail"))
    return next((e.outcome for e in page.events if e.event_id == f"kill:{killmail_id}"), None)


async def _loaded(app: WandererApp) -> EventsScreen:
    screen = app.screen
    assert isinstance(screen, EventsScreen)
    await wait_for(
        lambda: screen.page is not None and screen.page.query == screen.query_now,
        what="events page",
    )
    return screen


def _rows(screen: EventsScreen) -> list[tuple[str, str, str]]:
    assert screen.page is not None
    table = screen.query_one(EventsTable)
    assert table.row_count == len(screen.page.events)
    return [(e.event_id, e.type, e.outcome) for e in screen.page.events]


async def test_browse_search_filter_and_explain_over_a_live_engine(
    sim: Simulator, tmp_path: Path
) -> None:
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await runtime.start()
    try:
        await connected(runtime)
        added = sim.generator.new_system(wormhole=True)
        sim.map.add_system(added.id)
        await wait_for(
            lambda: runtime.store.browse_events(event_type="add_system"), what="map event"
        )
        system_id = sorted(sim.tracked_system_ids)[0]
        delivered = sim.generator.make_killmail(system_id=system_id)
        await sim.killstream.push_kill(delivered)
        await wait_for(lambda: _kill_outcome(runtime, delivered["killmail_id"]) == "notified")
        await runtime.console.set_flag(None, "kill", False, actor="tester")
        muted = sim.generator.make_killmail(system_id=system_id)
        await sim.killstream.push_kill(muted)
        await wait_for(lambda: _kill_outcome(runtime, muted["killmail_id"]) == "filtered")

        app = build_app(runtime.console, actor="tui:tester@console-host")
        async with app.run_test(size=SIZE) as pilot:
            await first_frame(pilot)
            await pilot.press("e")
            screen = await _loaded(app)
            everything = _rows(screen)
            ids = [event_id for event_id, _type, _outcome in everything]
            assert f"kill:{delivered['killmail_id']}" in ids
            assert f"kill:{muted['killmail_id']}" in ids
            assert any(kind != "killmail" for _id, kind, _o in everything)  # the map's events

            # o: notified, pending, failed, filtered, all.
            await pilot.press("o")
            screen = await _loaded(app)
            assert screen.query_now.outcome == "notified"
            notified = _rows(screen)
            assert notified
            assert all(outcome == "notified" for _i, _t, outcome in notified)
            assert f"kill:{delivered['killmail_id']}" in [i for i, _t, _o in notified]
            await pilot.press("o", "o", "o")
            screen = await _loaded(app)
            assert screen.query_now.outcome == "filtered"
            filtered = _rows(screen)
            assert f"kill:{muted['killmail_id']}" in [i for i, _t, _o in filtered]
            assert all(outcome == "filtered" for _i, _t, outcome in filtered)

            # y: the types, in order; m: the map.
            await pilot.press("x", "y")
            screen = await _loaded(app)
            first_type = screen.query_now.type
            assert first_type is not None
            assert all(kind == first_type for _i, kind, _o in _rows(screen))
            await pilot.press("x", "m")
            screen = await _loaded(app)
            assert screen.query_now.map == sim.map_slug
            assert {e.map for e in screen.page.events or ()} <= {sim.map_slug, "*"}  # type: ignore[union-attr]

            # /: search for the muted kill, Enter on it: why it notified nothing, in words.
            await pilot.press("x", "slash")
            await pilot.press(*str(muted["killmail_id"]), "enter")
            screen = await _loaded(app)
            assert [i for i, _t, _o in _rows(screen)] == [f"kill:{muted['killmail_id']}"]
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, EventDetailScreen), what="detail")
            assert isinstance(app.screen, EventDetailScreen)
            text = detail_text(app.screen.detail)
            assert f"{sim.map_slug}: not notified [disabled]: {REFUSAL_REASONS['disabled']}" in text
            assert "Message (as it would look)" in text
            await pilot.press("escape")

            # The delivered kill: its target, Discord's message id, when.
            search = screen.query_one("#events-search")
            search.value = ""  # type: ignore[attr-defined]
            await pilot.press("slash", *str(delivered["killmail_id"]), "enter")
            screen = await _loaded(app)
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, EventDetailScreen), what="detail")
            assert isinstance(app.screen, EventDetailScreen)
            (note,) = app.screen.detail.event.notifications
            assert note.status == "sent"
            assert note.message_id
            assert note.message_id in {m.message_id for m in sim.discord.received}
            text = detail_text(app.screen.detail)
            assert f"message id {note.message_id}" in text
            assert f"Killmail ID: {delivered['killmail_id']}" in text

            # Pages: ] older, [ newer.
            await pilot.press("escape", "escape")
            await settle(pilot)
            total = len(everything)
            assert total >= 3
            await app.push_screen(EventsScreen(app.state, page_size=2))
            screen = await _loaded(app)
            assert [i for i, _t, _o in _rows(screen)] == ids[:2]
            await pilot.press("right_square_bracket")
            screen = await _loaded(app)
            assert screen.query_now.offset == 2
            assert [i for i, _t, _o in _rows(screen)] == ids[2:4]
            await pilot.press("left_square_bracket")
            screen = await _loaded(app)
            assert [i for i, _t, _o in _rows(screen)] == ids[:2]

            # From the delivery panel: n on a target opens its notifications.
            await pilot.press("d")
            await settle(pilot)
            table = app.screen.query_one(DeliveryTable)
            table.focus()
            target = sim.webhook_target("system-kills")
            keys = [row.value for row in table.rows]
            table.move_cursor(row=keys.index(target))
            await pilot.press("n")
            screen = await _loaded(app)
            assert screen.query_now.target == target
            rows = screen.page.events if screen.page else ()
            assert rows
            assert all(target in {n.target for n in e.notifications} for e in rows)
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, EventDetailScreen), what="detail")

            # Or Enter on the target (its detail view), then n.
            await pilot.press("escape", "d")
            await settle(pilot)
            table = app.screen.query_one(DeliveryTable)
            table.focus()
            table.move_cursor(row=keys.index(target))
            await pilot.press("enter")
            await wait_for(lambda: isinstance(app.screen, DetailScreen), what="target detail")
            await pilot.press("n")
            screen = await _loaded(app)
            assert screen.query_now.target == target
            assert [e.id for e in screen.page.events] == [e.id for e in rows]  # type: ignore[union-attr]
    finally:
        await runtime.stop()
