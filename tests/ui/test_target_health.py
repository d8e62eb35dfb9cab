"""One judgment of a delivery target's health, shared by the Delivery panel's State column and
the target's detail view: a fault now (dead, failing with notifications waiting, an uncertain
re-send within the hour) marks it; a past event (an error nothing waits on, an uncertain re-send
long ago) is history the detail shows as facts, and the target reads ``ok``."""

from __future__ import annotations

import copy
from typing import Any

from rich.text import Text
from textual.pilot import Pilot

from tests.ui.conftest import HEALTHY, NOW, PRIMARY, AppFactory
from tests.ui.fakes import SeededBackend, first_frame, next_frame
from wanderer_console.console_api import EngineSnapshot, TargetView
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.details import target_detail
from wanderer_console.ui.faults import UNCERTAIN_RECENT_SECONDS, target_health
from wanderer_console.ui.screens.detail import DetailScreen
from wanderer_console.ui.widgets.delivery import DeliveryTable

SIZE = (120, 40)
REFUSED = "400 Invalid Form Body"
"""Discord's answer to a message it will never take: the message fails, nothing waits."""


# -- the judgment, Textual-free ------------------------------------------------------------------


def test_a_dead_target_is_dead_whatever_else_it_says() -> None:
    target = TargetView(disabled="404 Unknown Webhook", last_error="404 Unknown Webhook")
    assert target_health(target, NOW) == "dead"
    assert target_health(target.model_copy(update={"pending": 9}), NOW) == "dead"


def test_an_error_is_a_fault_only_while_notifications_wait_on_it() -> None:
    failing = TargetView(pending=12, last_error="500 Internal Server Error")
    assert target_health(failing, NOW) == "failing"
    refused = TargetView(pending=0, sent=40, last_error=REFUSED)
    assert target_health(refused, NOW) == "ok"


def test_an_uncertain_re_send_marks_the_target_for_an_hour_then_is_history() -> None:
    target = TargetView(sent=40, uncertain=2, last_uncertain_at=NOW - 60)
    assert target_health(target, NOW) == "uncertain"
    assert target_health(target, NOW - 60 + UNCERTAIN_RECENT_SECONDS - 1) == "uncertain"
    assert target_health(target, NOW - 60 + UNCERTAIN_RECENT_SECONDS) == "ok"
    assert UNCERTAIN_RECENT_SECONDS == 3600


def test_an_engine_that_does_not_say_when_counts_every_uncertain_re_send_as_recent() -> None:
    """An engine before ``last_uncertain_at`` sends the count alone: the console cannot tell an
    old re-send from a new one, so it keeps showing it rather than hide a fresh one."""
    data = copy.deepcopy(HEALTHY)
    data["delivery"]["targets"][PRIMARY]["uncertain"] = 1
    target = EngineSnapshot.model_validate(data).delivery.targets[PRIMARY]
    assert target.last_uncertain_at is None
    assert target_health(target, NOW + 86_400) == "uncertain"


def test_the_detail_shows_a_refused_message_as_history_not_as_a_fault() -> None:
    target = TargetView(label="alpha/primary", sent=40, messages=40, last_error=REFUSED)
    detail = target_detail(PRIMARY, target, NOW)
    assert detail.healthy
    assert detail.advice is None
    assert detail.error is None
    assert f"Last error: {REFUSED} (nothing waits on it)" in detail.text()


def test_the_detail_shows_an_old_uncertain_re_send_as_history() -> None:
    at = NOW - 2 * 3600
    target = TargetView(sent=40, messages=40, uncertain=3, last_uncertain_at=at)
    detail = target_detail(PRIMARY, target, NOW)
    assert detail.healthy
    assert detail.advice is None
    assert (
        "Uncertain: 3 re-sent after an unknown outcome since start, the last at"
        " 20:13:20 UTC (2h ago)"
    ) in detail.text()


def test_the_detail_advises_on_a_recent_uncertain_re_send() -> None:
    target = TargetView(sent=40, messages=40, uncertain=1, last_uncertain_at=NOW - 240)
    detail = target_detail(PRIMARY, target, NOW)
    assert not detail.healthy
    assert detail.error is None
    assert detail.advice is not None
    assert detail.advice.message.startswith(
        "`re-sending notifications whose first send had no known outcome`"
    )
    assert "the last at 22:09:20 UTC (4m ago)" in detail.text()


# -- the panel and the detail agree --------------------------------------------------------------


def _with_primary(**fields: Any) -> dict[str, Any]:
    snap = copy.deepcopy(HEALTHY)
    snap["delivery"]["targets"][PRIMARY].update(fields)
    return snap


def _state(app: WandererApp) -> str:
    cell = app.screen.query_one(DeliveryTable).get_row(PRIMARY)[-1]
    return cell.plain if isinstance(cell, Text) else str(cell)


async def _detail_healthy(pilot: Pilot[Any]) -> bool:
    """Enter on the target's row: whether its detail view says nothing is wrong now."""
    app = pilot.app
    table = app.screen.query_one(DeliveryTable)
    table.focus()
    table.move_cursor(row=table.get_row_index(PRIMARY))
    await pilot.press("enter")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, DetailScreen), f"no detail view: {screen!r}"
    assert screen.detail is not None
    healthy = screen.detail.healthy
    await pilot.press("escape")
    await pilot.pause()
    return healthy


async def test_a_refused_message_reads_ok_in_the_panel_and_the_detail(
    make_app: AppFactory,
) -> None:
    app = make_app(_with_primary(pending=0, last_error=REFUSED))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert _state(app) == "ok"
        assert await _detail_healthy(pilot)


async def test_an_uncertain_re_send_stops_marking_the_target_an_hour_later(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend(_with_primary(uncertain=2, last_uncertain_at=NOW - 60))
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert _state(app) == "2 uncertain"
        assert not await _detail_healthy(pilot)
        app.state.clock.advance(UNCERTAIN_RECENT_SECONDS)  # type: ignore[attr-defined]
        await next_frame(pilot, engine)
        assert _state(app) == "ok"
        assert await _detail_healthy(pilot)
