"""Every failure explains itself: Enter or a click on a connection, a target, a breaker or an
activity line opens a detail view with the whole error, where, since when, how often, the last
occurrences and the runbook's advice; a rejected config change raises a toast and a badge until it
is fixed or dismissed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.ui.conftest import (
    ACTOR,
    CHARS_ERROR,
    HEALTHY,
    NOW,
    PRIMARY,
    RALLY,
    AppFactory,
    degraded_snapshot,
)
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
    BreakerView,
    ConfigState,
    ConnectionView,
    Occurrence,
    TargetView,
)
from wanderer_console.ui.app import WandererApp
from wanderer_console.ui.details import (
    activity_detail,
    breaker_detail,
    connection_detail,
    log_message,
    target_detail,
)
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.screens.detail import DetailScreen
from wanderer_console.ui.widgets.activity import ActivityPanel
from wanderer_console.ui.widgets.breakers import BreakersTable
from wanderer_console.ui.widgets.connections import ConnectionsTable
from wanderer_console.ui.widgets.delivery import DeliveryTable

SIZE = (120, 40)


def _detail_screen(app: WandererApp) -> DetailScreen:
    screen = app.screen
    assert isinstance(screen, DetailScreen), f"no detail view: {screen!r}"
    return screen


def _shown(app: WandererApp) -> str:
    """The detail view as the operator reads it (scrolled through, joined)."""
    screen = _detail_screen(app)
    assert screen.detail is not None
    return screen.detail.text()


async def _select_row(pilot: Pilot[Any], table_type: type, key: str) -> None:
    app = pilot.app
    table = app.screen.query_one(table_type)
    table.focus()
    table.move_cursor(row=table.get_row_index(key))
    await pilot.press("enter")
    await pilot.pause()


# -- the details, Textual-free ---------------------------------------------------------------------


def test_a_failed_connection_says_everything_an_operator_opens_it_for() -> None:
    conn = ConnectionView.model_validate(degraded_snapshot()["connections"][2])
    detail = connection_detail(conn, NOW)
    text = detail.text()
    assert detail.error == CHARS_ERROR  # whole, not clipped
    assert "URL: ws://127.0.0.1:4004/socket/websocket" in text
    assert "Failing since: 22:11:45 UTC (1m ago)" in text  # 95 s: whole minutes
    assert "Errors: 9 since start, 7 in the last hour" in text
    assert len(detail.occurrences) == 5
    assert detail.occurrences[-1].text == CHARS_ERROR
    assert detail.advice is not None
    assert detail.advice.message.startswith("`killstream lost`")
    assert "check the killstream server and `killstream.websocket_url`" in detail.advice.action


def test_a_healthy_connection_has_nothing_to_advise() -> None:
    conn = ConnectionView.model_validate(HEALTHY["connections"][0])
    detail = connection_detail(conn, NOW)
    assert detail.healthy
    assert detail.advice is None
    assert detail.error is None


def _reconnecting_killstream() -> dict[str, Any]:
    """The healthy engine whose systems killstream lost its socket; the engine keeps the RTT of
    its last heartbeat, from before."""
    snap = copy.deepcopy(HEALTHY)
    snap["connections"][1].update(
        state="reconnecting",
        since=NOW - 30,
        heartbeat_rtt_ms=6.0,
        last_error="socket lost: [Errno 111] Connect call failed ('127.0.0.1', 4004)",
    )
    return snap


def test_a_reconnecting_killstreams_detail_does_not_give_its_old_rtt_as_live() -> None:
    conn = ConnectionView.model_validate(_reconnecting_killstream()["connections"][1])
    facts = dict(connection_detail(conn, NOW).facts)
    assert facts["Heartbeat"] == "- (not connected; the last was 6 ms)"
    live = ConnectionView.model_validate(HEALTHY["connections"][1])
    assert dict(connection_detail(live, NOW).facts)["Heartbeat"] == "23 ms"


async def test_a_reconnecting_killstream_shows_no_rtt_in_the_connections_panel(
    make_app: AppFactory,
) -> None:
    app = make_app(_reconnecting_killstream())
    async with app.run_test(size=(200, 60)) as pilot:
        await first_frame(pilot)
        table = app.screen.query_one(ConnectionsTable)
        rtt = ConnectionsTable.COLUMNS.index("RTT")
        assert str(table.get_row("killstream:systems")[rtt]) == "-"
        assert str(table.get_row("killstream:characters")[rtt]) == "25 ms"


def test_an_unreachable_map_is_explained_with_its_url_and_the_runbooks_fix() -> None:
    conn = ConnectionView(
        name="sse:alpha",
        kind="map_sse",
        state="reconnecting",
        url="https://wanderer.example/api/maps/alpha/events/stream",
        last_error="initial load failed: All connection attempts failed",
        errors=3,
        error_since=NOW - 60,
        recent_errors=(Occurrence(at=NOW - 1, text="initial load failed: boom"),),
    )
    detail = connection_detail(conn, NOW)
    assert "URL: https://wanderer.example/api/maps/alpha/events/stream" in detail.text()
    assert detail.advice is not None
    assert detail.advice.message == "`map load failed; retrying`"
    assert detail.advice.action == "check URL and key (same causes as above); retried with backoff"


def test_a_dead_target_is_named_by_its_route_and_can_be_retried() -> None:
    target = TargetView.model_validate(degraded_snapshot()["delivery"]["targets"][RALLY])
    detail = target_detail(RALLY, target, NOW)
    assert detail.title == f"Target alpha/rally ({RALLY})"
    text = detail.text()
    assert "Routes: alpha/rally" in text
    assert "Address: https://discord.com/api/webhooks/1200000002538501130/***" in text
    assert "State: DEAD (its notifications are held, not lost) since 22:08:20 UTC (5m ago)" in text
    assert detail.retry == RALLY
    assert detail.advice is not None
    assert "create a new webhook and put its URL in the config" in detail.advice.action


def test_a_target_rate_limited_once_and_delivering_since_is_healthy() -> None:
    # One 429 an hour ago, every message confirmed since (Discord's last answer cleared the
    # error): the 429 count is since the engine started, not the target's state now.
    target = TargetView(label="alpha/primary", sent=40, messages=40, rate_limited=1)
    detail = target_detail(PRIMARY, target, NOW)
    assert detail.healthy
    assert detail.advice is None
    assert "Rate limited: 1 time since start (429)" in detail.text()


def test_a_target_rate_limited_now_is_advised() -> None:
    target = TargetView(pending=3, rate_limited=4, last_error="429 You are being rate limited.")
    detail = target_detail(PRIMARY, target, NOW)
    assert not detail.healthy
    assert detail.advice is not None
    assert "rate_limited" in detail.advice.message


def test_an_open_breaker_says_why_and_when_it_probes() -> None:
    breaker = BreakerView.model_validate(degraded_snapshot()["breakers"]["esi:esi.evetech.net"])
    detail = breaker_detail("esi:esi.evetech.net", breaker, NOW)
    text = detail.text()
    assert "Host: esi.evetech.net" in text
    assert "Next probe: 22:13:30 UTC (in 10s)" in text
    assert detail.error == "5 failures in 30s, last: timeout"
    assert detail.advice is not None
    assert detail.advice.message.startswith("`http circuit breaker closed -> open`")


def test_an_activity_line_is_counted_with_the_same_message_and_advised() -> None:
    line = "warning: http request failed (service=map, url=http://127.0.0.1:1/x, error=refused)"
    entries = [
        (NOW - 30, "warning: http request failed (service=map, url=http://127.0.0.1:1/x, error=a)"),
        (NOW - 20, "info: map stream connected (tenant=alpha)"),
        (NOW - 10, line),
    ]
    detail = activity_detail(NOW - 10, line, entries)
    assert detail.error == line
    assert ("Seen", "2 times") in detail.facts
    assert [o.text for o in detail.occurrences] == [entries[0][1], line]
    assert detail.advice is not None
    assert detail.advice.message.startswith("`http request failed`")
    assert log_message(line) == "warning: http request failed"


# -- opening them ----------------------------------------------------------------------------------


async def test_enter_on_a_failed_connection_opens_its_detail(make_app: AppFactory) -> None:
    app = make_app(degraded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await _select_row(pilot, ConnectionsTable, "killstream:characters")
        text = _shown(app)
        assert CHARS_ERROR in text
        assert "ws://127.0.0.1:4004/socket/websocket" in text
        screen = "\n".join(screen_lines(app))
        assert "Connection killstream:characters" in screen
        assert "What to do" in screen or "Last 5 occurrence(s)" in screen
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)


async def test_one_click_on_a_row_opens_its_detail(make_app: AppFactory) -> None:
    app = make_app(degraded_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        table = app.screen.query_one(BreakersTable)
        row = table.get_row_index("zkill:zkillboard.com")
        assert table.cursor_row != row  # not a second click on the highlighted row
        await pilot.click(BreakersTable, offset=(3, 1 + row))
        await pilot.pause()
        assert "Circuit breaker zkill:zkillboard.com" in _shown(app)


async def test_a_dead_targets_detail_retries_it(make_app: AppFactory) -> None:
    engine = SeededBackend(degraded_snapshot())
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await _select_row(pilot, DeliveryTable, RALLY)
        assert "webhook deleted (404)" in _shown(app)
        await pilot.press("r")
        await settle(pilot)
        assert engine.operations == [Operation("retry_target", (RALLY,), ACTOR)]
        await next_frame(pilot, engine)
        # The view follows the engine: the revived target is no longer dead.
        assert "State: delivering" in _shown(app)


async def test_an_activity_line_opens_whole(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    long = (
        "http request failed (service=map, method=GET, url=http://10.0.0.7:4444/api/maps/"
        "alpha/systems, error=ConnectError: All connection attempts failed, elapsed=5.0021)"
    )
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        engine.log(long, level="warning")
        await next_frame(pilot, engine)
        panel = app.screen.query_one(ActivityPanel)
        [key] = [k for k, (_, text) in panel.rows_shown.items() if "http request failed" in text]
        assert not any(long in line for line in screen_lines(app))  # clipped on the dashboard
        await _select_row(pilot, ActivityPanel, key)
        text = _shown(app)
        assert f"warning: {long}" in text
        assert "check the network and the base URL of that service" in text


# -- a rejected config change ----------------------------------------------------------------------

REJECTED = {
    "path": "/etc/wanderer-console/config.toml",
    "last_status": "rejected",
    "errors": ["/etc/wanderer-console/config.toml:6: notifications.kil: unknown key"],
}


def _with_config(**config: Any) -> dict[str, Any]:
    snapshot = copy.deepcopy(HEALTHY)
    snapshot["config"] = config
    return snapshot


def _config_badge(app: WandererApp) -> str | None:
    badge = app.screen.query_one("#config-badge")
    return str(badge.render()) if badge.display else None


async def test_a_rejected_change_raises_a_toast_and_a_badge_until_dismissed(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend(_with_config(path=REJECTED["path"], last_status="applied"))
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        toasts = record_toasts(app)
        await first_frame(pilot)
        assert _config_badge(app) is None
        engine.data["config"] = dict(REJECTED)  # the file was broken on the engine's host
        await next_frame(pilot, engine)
        badge = _config_badge(app)
        assert badge is not None
        assert "config.toml:6: notifications.kil: unknown key" in badge
        [(toast, severity)] = toasts
        assert severity == "error"
        assert "config.toml:6: notifications.kil: unknown key" in toast
        assert "running configuration is kept" in toast

        await next_frame(pilot, engine)  # the same rejection: no second toast
        assert len(toasts) == 1

        await pilot.press("x")
        await pilot.pause()
        assert _config_badge(app) is None
        await next_frame(pilot, engine)
        assert _config_badge(app) is None  # stays dismissed

        engine.data["config"]["errors"] = ["/etc/wanderer-console/config.toml:9: x: bad"]
        await next_frame(pilot, engine)  # something else wrong: shown again
        badge = _config_badge(app)
        assert badge is not None
        assert "config.toml:9: x: bad" in badge
        assert len(toasts) == 2

        engine.data["config"] = {"path": REJECTED["path"], "last_status": "applied"}
        await next_frame(pilot, engine)  # fixed
        assert _config_badge(app) is None


async def test_a_click_on_the_config_badge_explains_the_rejection(make_app: AppFactory) -> None:
    app = make_app(_with_config(**REJECTED))
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.click("#config-badge")
        await pilot.pause()
        text = _shown(app)
        assert "config.toml:6: notifications.kil: unknown key" in text
        assert "config check" in text  # the runbook's advice for a located problem


@pytest.mark.parametrize("badge", ["store-fault-badge", "discord-pause-badge"])
async def test_a_click_on_a_delivery_badge_explains_it(make_app: AppFactory, badge: str) -> None:
    from tests.ui.conftest import delivery_fault_snapshot

    app = make_app(delivery_fault_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.click(f"#{badge}")
        await pilot.pause()
        text = _shown(app)
        if badge == "store-fault-badge":
            assert "database or disk is full" in text
            assert "free space" in text
        else:
            assert "Until: 22:14:02 UTC" in text
            assert "delivery resumes at `resume_at`" in text


async def test_enter_on_a_badge_explains_it_without_a_mouse(make_app: AppFactory) -> None:
    """Over SSH with no mouse: Tab (here shift+Tab, from the connections table up) reaches the
    badges and Enter opens their detail view, as for a row."""
    from tests.ui.conftest import delivery_fault_snapshot

    app = make_app(delivery_fault_snapshot())
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("shift+tab", "enter")
        await pilot.pause()
        assert "Until: 22:14:02 UTC" in _shown(app)  # the Discord pause
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("shift+tab", "enter")
        await pilot.pause()
        assert "database or disk is full" in _shown(app)  # the store fault


def test_dismissed_problems_hide_only_themselves() -> None:
    from wanderer_console.ui.faults import config_text

    state = ConfigState.model_validate(REJECTED)
    assert config_text(state, dismissed=state.errors) is None
    other = state.model_copy(update={"errors": ("x.toml:1: a: b",)})
    assert config_text(other, dismissed=state.errors) is not None
