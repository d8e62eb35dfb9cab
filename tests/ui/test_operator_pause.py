"""Who paused delivery, since when, and whether a restart keeps it, where the operator looks.

The engine saved all three with the pause and ``/ready`` said them, but the console knew only
that delivery was paused: an operator attached to a paused engine at night saw "delivery PAUSED"
and had to curl ``/ready`` to learn who had paused it, how long ago, and whether a restart would
end it.
"""

from __future__ import annotations

from tests.ui.conftest import ACTOR, HEALTHY, NOW, PAUSER, AppFactory, paused_engine
from tests.ui.fakes import SeededBackend, first_frame, next_frame, screen_lines, settle
from tests.ui.test_snapshots import IDENTITY, SMALL
from wanderer_console.ui.app import WandererApp

SINCE = "2023-11-14 20:43:20 UTC"
"""``PAUSED_SINCE`` as the console shows it."""


def _shown(app: WandererApp) -> str:
    """The screen's words in order, a note wrapped over two lines of a panel read as one."""
    return " ".join(" ".join(line.replace("│", " ").split()) for line in screen_lines(app))


def _texts(app: WandererApp) -> list[str]:
    return [text for _at, text in app.state.activity.entries]


async def test_an_engine_found_paused_says_who_paused_it_since_when_and_that_it_is_kept(
    make_app: AppFactory,
) -> None:
    app = make_app(engine=paused_engine(identity=IDENTITY))
    async with app.run_test(size=SMALL) as pilot:
        await first_frame(pilot)
        shown = _shown(app)
        assert f"Paused by {PAUSER}" in shown, shown
        assert f"since {SINCE}" in shown, shown
        assert "kept across restarts" in shown, shown
        assert f"delivery paused by {PAUSER} since {SINCE}, kept across restarts" in _texts(app)
        title = screen_lines(app)[0]
        assert "delivery PAUSED" in title, title  # the title stays short: the state first
        assert PAUSER not in title, title


async def test_a_pause_of_the_cluster_says_it_holds_every_engine(make_app: AppFactory) -> None:
    """On a shared database, resuming on one engine resumes them all: the Delivery panel and
    the activity log say whose pause it is, within the narrow panel of an 80x24 terminal."""
    app = make_app(engine=paused_engine(identity=IDENTITY, cluster=True))
    async with app.run_test(size=SMALL) as pilot:
        await first_frame(pilot)
        shown = _shown(app)
        assert f"Paused by {PAUSER} since {SINCE}, on every engine" in shown, shown
        assert f"delivery paused by {PAUSER} since {SINCE}, on every engine" in _texts(app)


async def test_a_pause_that_is_not_saved_says_a_restart_ends_it(make_app: AppFactory) -> None:
    app = make_app(engine=paused_engine(saved=False))
    async with app.run_test(size=SMALL) as pilot:
        await first_frame(pilot)
        shown = _shown(app)
        assert "not saved: ends at the next restart" in shown, shown
        assert "kept across restarts" not in shown, shown


async def test_pausing_from_the_console_names_who_paused(make_app: AppFactory) -> None:
    engine = SeededBackend(HEALTHY, clock=lambda: NOW - 60)
    app = make_app(engine=engine)
    async with app.run_test(size=SMALL) as pilot:
        await first_frame(pilot)
        assert "Paused by" not in _shown(app)
        await pilot.press("p")
        await settle(pilot)
        await next_frame(pilot, engine)
        since = "2023-11-14 22:12:20 UTC"
        assert f"delivery paused by {ACTOR} since {since}, kept across restarts" in _texts(app)
        assert f"Paused by {ACTOR}" in _shown(app)
        await pilot.press("p")
        await settle(pilot)
        await next_frame(pilot, engine)
        assert "delivery resumed" in _texts(app)
        assert "Paused by" not in _shown(app)
