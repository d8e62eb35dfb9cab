"""What keeps key presses fast: the key bar, the kept toggles screen, tables redrawn by
difference, the kept chart build, and the collector's freeze of start-up objects."""

from __future__ import annotations

import gc

import pytest

from tests.ui.conftest import HEALTHY, NOW, AppFactory, degraded_snapshot
from tests.ui.fakes import SeededBackend, first_frame, next_frame
from wanderer_console.gcpolicy import YOUNG_THRESHOLD, freeze_startup_objects
from wanderer_console.ui.screens.dashboard import DashboardScreen
from wanderer_console.ui.screens.toggles import TogglesScreen
from wanderer_console.ui.widgets.cache import CachePanel
from wanderer_console.ui.widgets.connections import ConnectionsTable
from wanderer_console.ui.widgets.counters import CountersPanel
from wanderer_console.ui.widgets.keybar import KeyBar
from wanderer_console.ui.widgets.throughput import ThroughputChart

SIZE = (120, 40)


def _bar(app: object) -> str:
    screen = app.screen  # type: ignore[attr-defined]
    return screen.query_one(KeyBar).describe().plain


@pytest.mark.slow
async def test_key_bar_shows_the_active_screens_bindings(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        dashboard = _bar(app)
        assert "q Quit" in dashboard
        assert "p Pause/resume" in dashboard
        assert "palette" in dashboard.lower()
        assert "Flip" not in dashboard
        await pilot.press("t")
        await pilot.pause()
        toggles = _bar(app)
        assert "space Flip" in toggles
        assert "esc Back" in toggles


async def test_key_bar_offers_pause_for_every_engine(make_app: AppFactory) -> None:
    """Every backend can pause (an engine that refuses says so in a toast)."""
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        assert "p Pause/resume" in _bar(app)
        assert "Quit" in _bar(app)


@pytest.mark.slow
async def test_toggles_screen_is_kept_and_shows_changes_made_while_hidden(
    make_app: AppFactory,
) -> None:
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        await pilot.press("t")
        await pilot.pause()
        first = app.screen
        assert isinstance(first, TogglesScreen)
        await pilot.press("escape")
        await pilot.pause()
        await engine.set_flag(None, "kill", False, actor="tui:other@elsewhere")  # while hidden
        await next_frame(pilot, engine)
        await pilot.press("t")
        await pilot.pause()
        assert app.screen is first
        table = first.query_one("#flags")
        assert str(table.get_cell("", "kill")) == "off"  # type: ignore[attr-defined]


@pytest.mark.slow
async def test_a_frame_keeps_the_operators_place_in_a_table(make_app: AppFactory) -> None:
    """Tables are redrawn by difference: the cursor does not jump back every second."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        table = screen.query_one(ConnectionsTable)
        table.move_cursor(row=2)
        await next_frame(pilot, engine)  # same rows
        assert table.cursor_row == 2
        engine.data = degraded_snapshot()  # same sources, new states
        await next_frame(pilot, engine)
        assert table.cursor_row == 2
        states = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        assert states == [c["state"] for c in engine.data["connections"]]


async def test_panels_are_not_redrawn_for_an_unchanged_part(make_app: AppFactory) -> None:
    """A frame whose counters and cache did not change draws neither panel again."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        redraws: list[str] = []
        for panel in (app.screen.query_one(CountersPanel), app.screen.query_one(CachePanel)):
            original = panel.update

            def counting(*args: object, _original: object = original, **kwargs: object) -> None:
                redraws.append(type(args[0]).__name__ if args else "")
                _original(*args, **kwargs)  # type: ignore[operator]

            panel.update = counting  # type: ignore[method-assign]
        await next_frame(pilot, engine)
        assert redraws == []
        engine.data["queue_depth"] = 7
        await next_frame(pilot, engine)
        assert len(redraws) == 1  # the counters panel, which shows the queue depth


@pytest.mark.slow
async def test_chart_build_is_kept_until_data_or_size_change(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        chart = app.screen.query_one(ThroughputChart)
        first = chart.render()
        assert chart.render() is first
        chart.show(list(app.state.history.samples)[:10], NOW)
        rebuilt = chart.render()
        assert rebuilt is not first
        await pilot.resize_terminal(100, 40)
        await pilot.pause()
        assert chart.render() is not rebuilt


@pytest.mark.slow
def test_freeze_moves_survivors_out_of_the_collectors_walk() -> None:
    thresholds = gc.get_threshold()
    try:
        frozen = freeze_startup_objects()
        assert frozen > 1000  # the interpreter, pytest and the console's modules
        # Frozen objects still die by reference count: the permanent generation only shrinks.
        assert 1000 < gc.get_freeze_count() <= frozen
        # Young collections wait for 10,000 allocations; the older thresholds are kept.
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *thresholds[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    assert gc.get_freeze_count() == 0


@pytest.mark.slow
async def test_app_freezes_start_up_objects_only_when_asked(make_app: AppFactory) -> None:
    thresholds = gc.get_threshold()
    app = make_app(HEALTHY)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(1.3)
            assert gc.get_freeze_count() == 0  # tests and embedders: left alone
        app = make_app(HEALTHY)
        app.settle_gc = True
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(1.3)
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


@pytest.mark.slow
async def test_key_bar_is_not_redrawn_when_a_kept_screen_comes_back(make_app: AppFactory) -> None:
    app = make_app(HEALTHY)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        bar = app.screen.query_one(KeyBar)
        redraws: list[object] = []
        original = bar.update

        def counting(*args: object, **kwargs: object) -> None:
            redraws.append(args)
            original(*args, **kwargs)  # type: ignore[arg-type]

        bar.update = counting  # type: ignore[method-assign]
        for _ in range(2):
            await pilot.press("t")
            await pilot.pause()
            await pilot.press("escape")
            await pilot.pause()
        assert isinstance(app.screen, DashboardScreen)
        assert redraws == []  # same bindings as before: no second frame for the press
        app.screen.query_one("#activity-filter").focus()  # bindings change with focus...
        await pilot.pause()
        assert len(redraws) <= 1  # ... and only a real change is drawn


async def test_header_changes_only_for_rare_facts(make_app: AppFactory) -> None:
    """A new header title re-lays out the whole screen: the queue depth is not in it."""
    engine = SeededBackend(HEALTHY)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await first_frame(pilot)
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        before = screen.sub_title
        assert before == "delivery running · v0.1.0 · up 1h02m"
        engine.data = {**HEALTHY, "queue_depth": 999, "uptime": HEALTHY["uptime"] + 20}
        await next_frame(pilot, engine)
        assert screen.sub_title == before
        engine.data = {**HEALTHY, "uptime": HEALTHY["uptime"] + 120}
        await next_frame(pilot, engine)
        assert screen.sub_title == "delivery running · v0.1.0 · up 1h04m"
