"""Delivery faults on the console: the store-fault and Discord-pause badges, dead targets in the
delivery panel, and retrying a dead target from the command palette."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rich.text import Text
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot

from tests.ui.conftest import (
    ACTOR,
    HEALTHY,
    NOW,
    PRIMARY,
    RALLY,
    AppFactory,
    delivery_fault_snapshot,
)
from tests.ui.fakes import (
    Operation,
    SeededBackend,
    first_frame,
    next_frame,
    record_toasts,
    settle,
)
from wanderer_console.console_api import BackendError, DeliveryView, EngineSnapshot, LinkState
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.commands import console_commands
from wanderer_console.ui.faults import (
    dead_targets,
    global_pause_text,
    link_text,
    store_fault_text,
)
from wanderer_console.ui.model import ActivityLog
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.widgets.badges import FaultBadges
from wanderer_console.ui.widgets.delivery import DeadTargetNotes, DeliveryTable

SIZE = (120, 40)

STORE_BADGE = (
    "STORE CANNOT WRITE: database or disk is full — delivery paused since 22:11:15"
    " · 1 Discord answer unrecorded · 6 failed writes"
)
"""The store badge for :func:`delivery_fault_snapshot` (``NOW`` is 22:13:20 UTC)."""
PAUSE_BADGE = "DISCORD PAUSE until 22:14:02 (42s) — all delivery waits"
"""The Discord-pause badge for :func:`delivery_fault_snapshot` at ``NOW``."""
RALLY_NAME = f"alpha/rally ({RALLY})"
"""How the console names the rally target: its map route, then its key."""


def _badge(app: WandererApp, badge_id: str) -> str | None:
    """What a badge says while it is shown, ``None`` while hidden."""
    badge = app.screen.query_one(f"#{badge_id}")
    if not badge.display:
        return None
    return str(badge.render())


def _dashboard(app: WandererApp) -> DashboardScreen:
    screen = app.screen
    assert isinstance(screen, DashboardScreen)
    return screen


def _snapshot(data: dict[str, Any]) -> EngineSnapshot:
    return EngineSnapshot.model_validate(data)


def _delivery(data: dict[str, Any]) -> DeliveryView:
    return _snapshot(data).delivery


async def _choose_in_palette(pilot: Pilot[Any], query: str) -> list[str]:
    """Open the palette, type ``query``, press enter on the first hit; the prompts seen."""
    app = pilot.app
    await pilot.press("ctrl+p")
    await pilot.pause()
    assert isinstance(app.screen, CommandPalette)
    await pilot.press(*query)
    await pilot.pause(0.5)
    prompts = [str(option.prompt) for option in app.screen.query_one(CommandList).options]
    await pilot.press("down", "enter")
    await pilot.pause()
    return prompts


# -- wording (no Textual) ----------------------------------------------------------------------


def test_texts_for_a_faulty_delivery_section() -> None:
    delivery = _delivery(delivery_fault_snapshot())
    assert store_fault_text(delivery) == STORE_BADGE
    assert global_pause_text(delivery, NOW) == PAUSE_BADGE
    assert global_pause_text(delivery, NOW + 41.5) == (
        "DISCORD PAUSE until 22:14:02 (1s) — all delivery waits"
    )
    assert global_pause_text(delivery, NOW + 42) is None  # over, even before the next snapshot
    [dead] = dead_targets(delivery)
    assert dead.describe() == f"{RALLY_NAME}: DEAD 404 Unknown Webhook — held: 9"


def test_texts_for_a_healthy_delivery_section() -> None:
    delivery = _delivery(HEALTHY)
    assert store_fault_text(delivery) is None
    assert global_pause_text(delivery, NOW) is None
    assert dead_targets(delivery) == []
    first = {"reason": "attempt to write a readonly database", "since": NOW, "failures": 1}
    faulty = DeliveryView.model_validate({"store_fault": first, "unrecorded_outcomes": 0})
    assert store_fault_text(faulty) == (
        "STORE CANNOT WRITE: attempt to write a readonly database — delivery paused since"
        " 22:13:20 · 1 failed write"
    )


def test_activity_log_records_store_fault_and_pause_coming_and_going() -> None:
    activity = ActivityLog()
    activity.observe(_snapshot(HEALTHY), NOW - 1)
    activity.observe(_snapshot(delivery_fault_snapshot()), NOW)
    activity.observe(_snapshot(HEALTHY), NOW + 1)
    texts = [text for _, text in activity.entries]
    assert "store cannot write: database or disk is full; delivery paused" in texts
    assert "Discord pause: all delivery waits 42s" in texts
    assert f"target {RALLY_NAME} disabled: 404 Unknown Webhook" in texts
    assert texts[-2:] == ["store writes again; delivery resumes", "Discord pause over"]


def test_link_texts() -> None:
    assert link_text(LinkState(), NOW) is None
    lost = LinkState(state="lost", detail="connection refused", since=NOW)
    assert link_text(lost, NOW - 5) == (
        "ENGINE LOST: connection refused — reconnecting… · figures below are stale, from 22:13:15"
    )
    assert link_text(LinkState(state="connecting"), None) == "CONNECTING TO ENGINE: no answer…"


# -- the dashboard -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_badges_show_store_fault_and_discord_pause(make_app: AppFactory) -> None:
    engine = SeededBackend(delivery_fault_snapshot())
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert _badge(app, "store-fault-badge") == STORE_BADGE
        assert _badge(app, "discord-pause-badge") == PAUSE_BADGE
        assert _dashboard(app).sub_title.startswith("delivery HELD · ")
        badges = app.screen.query_one(FaultBadges)
        assert badges.region.y == 1  # right under the header, above every panel
        assert badges.region.height == 2

        app.state.clock.advance(30)  # type: ignore[attr-defined]
        await next_frame(pilot, engine)
        assert _badge(app, "discord-pause-badge") == (
            "DISCORD PAUSE until 22:14:02 (12s) — all delivery waits"
        )

        engine.data = copy.deepcopy(HEALTHY)  # the store writes again, the pause is over
        await next_frame(pilot, engine)
        assert _badge(app, "store-fault-badge") is None
        assert _badge(app, "discord-pause-badge") is None
        assert badges.region.height == 0
        assert _dashboard(app).sub_title.startswith("delivery running · ")


@pytest.mark.slow
async def test_healthy_dashboard_shows_no_badge(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert _badge(app, "link-badge") is None
        assert _badge(app, "store-fault-badge") is None
        assert _badge(app, "discord-pause-badge") is None
        assert not app.screen.query_one(DeadTargetNotes).display


async def test_delivery_panel_shows_dead_target_in_red_with_reason_and_uncertain(
    make_app: AppFactory,
) -> None:
    app = make_app(delivery_fault_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        red = app.theme_variables["target-dead"].lower()
        table = app.screen.query_one(DeliveryTable)
        name, *_, state = table.get_row(RALLY)
        assert isinstance(name, Text)
        assert name.plain == "alpha/rally"  # the map route, not the webhook id
        assert red in str(name.style).lower()
        assert isinstance(state, Text)
        assert state.plain == "DEAD"
        assert red in str(state.style).lower()
        primary = table.get_row(PRIMARY)
        assert str(primary[-1]) == "2 uncertain"

        notes = app.screen.query_one(DeadTargetNotes)
        assert notes.display
        assert str(notes.render()) == f"{RALLY_NAME}: DEAD 404 Unknown Webhook — held: 9"
        assert notes.styles.color.hex.lower() == red
        panel = app.screen.query_one("#delivery-panel")
        assert panel.has_class("-dead")
        assert panel.border_subtitle == "1 dead · ctrl+p: Retry dead target"


# -- retrying a dead target ------------------------------------------------------------------------


@pytest.mark.slow
async def test_palette_retries_a_dead_target_and_toasts_the_count(make_app: AppFactory) -> None:
    engine = SeededBackend(delivery_fault_snapshot())
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        prompts = await _choose_in_palette(pilot, "retry dead")
        assert any(f"Retry dead target {RALLY_NAME}" in p for p in prompts), prompts
        await settle(pilot)
        assert engine.operations == [Operation("retry_target", (RALLY,), ACTOR)]
        assert toasts == [(f"Retrying {RALLY}: 3 failed notifications re-queued.", "information")]
        # The revived target shows at once, not at the next frame.
        assert not app.screen.query_one(DeadTargetNotes).display
        assert not [c for c in console_commands(app) if c.title.startswith("Retry")]


@pytest.mark.slow
async def test_retry_is_offered_only_for_dead_targets(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert not [c for c in console_commands(app) if c.title.startswith("Retry")]
    app = make_app(delivery_fault_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        titles = [c.title for c in console_commands(app) if c.title.startswith("Retry")]
        assert titles == [f"Retry dead target {RALLY_NAME}"]


async def test_a_failed_retry_is_an_error_toast_not_a_crash(make_app: AppFactory) -> None:
    engine = SeededBackend(delivery_fault_snapshot())
    engine.refuse["retry_target"] = BackendError(
        "cannot write /data/wc.db (revive target): database or disk is full"
    )
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        toasts = record_toasts(app)
        [command] = [c for c in console_commands(app) if c.title.startswith("Retry")]
        command.callback()
        await settle(pilot)
        assert app.is_running
        [(message, severity)] = toasts
        assert severity == "error"
        assert message.startswith(f"Could not retry {RALLY}: cannot write /data/wc.db")


async def test_a_target_whose_last_answer_was_an_error_is_not_shown_ok(
    make_app: AppFactory,
) -> None:
    """Discord answering 500 to every message (or its breaker open): the State column said
    ``ok`` for every target while nothing was delivered; it says ``failing`` (Enter: the error
    and what to do) until a message is confirmed again, which clears ``last_error``."""
    snap = copy.deepcopy(HEALTHY)
    snap["delivery"]["targets"][PRIMARY].update(pending=12, last_error="500 Internal Server Error")
    engine = SeededBackend(snap)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        table = app.screen.query_one(DeliveryTable)
        state = table.get_row(PRIMARY)[-1]
        assert isinstance(state, Text)
        assert state.plain == "failing"
        assert app.theme_variables["health-degraded"].lower() in str(state.style).lower()
        assert str(table.get_row(RALLY)[-1]) == "ok"
        engine.data = copy.deepcopy(HEALTHY)  # a message confirmed: last_error cleared
        await next_frame(pilot, engine)
        assert str(table.get_row(PRIMARY)[-1]) == "ok"


async def test_a_target_with_an_old_error_and_nothing_waiting_is_shown_ok(
    make_app: AppFactory,
) -> None:
    """``failing`` is for a target whose notifications wait on its errors: an error with nothing
    pending (a message Discord refused and that was dropped, or an engine of the version before
    this one, which kept the last error after the target answered again) is not a target
    failing now; attached to such an engine every target that ever failed read ``failing``."""
    snap = copy.deepcopy(HEALTHY)
    snap["delivery"]["targets"][PRIMARY].update(pending=0, last_error="500 Internal Server Error")
    app = make_app(snap)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        table = app.screen.query_one(DeliveryTable)
        assert str(table.get_row(PRIMARY)[-1]) == "ok"
