"""A webhook two maps post to, dead for one of them: the console says for which.

A target is dead per map (:class:`~wanderer_console.console_api.TargetView` ``dead_for``, the
maps posting there in ``maps``). The console took any dead mark on a target as the target dead
for everyone: a shared webhook refused for ``alpha`` read as dead for ``bravo`` too, whose
notifications were still being delivered through it, and its ``pending`` (both maps' rows) as
what the dead mark held. A target dead for every map posting there, and one from an engine that
does not say, read as before.

Dead for one map only, its ``pending`` mixes that map's held notifications with the other map's
on their way: the console could not say how many wait for the fix, nor for which map. The engine
now says (``held_for``): the note reads ``held: 3 (alpha)``, the detail has a ``Held`` fact, the
palette's retry says how many it sends. An engine that does not say reads ``pending: N``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.ui.conftest import HEALTHY, NOW, RALLY, AppFactory
from tests.ui.fakes import first_frame
from wanderer_console.console_api import DeliveryView, TargetView
from wanderer_console.ui.commands import console_commands
from wanderer_console.ui.details import target_detail
from wanderer_console.ui.faults import dead_targets

SHARED = "alpha/rally, bravo/primary"
"""The label of a webhook alpha's rallies and bravo's everything post to."""


def _rally(**fields: Any) -> dict[str, Any]:
    """The rally webhook of :data:`HEALTHY`, shared with bravo, dead (404) with ``fields``."""
    target = copy.deepcopy(HEALTHY["delivery"]["targets"][RALLY])
    target.update(
        label=SHARED,
        pending=9,
        disabled="404 Unknown Webhook",
        last_error="404 Unknown Webhook",
        disabled_since=NOW - 300,
        maps=["alpha", "bravo"],
    )
    target.update(fields)
    return target


def _snapshot(**fields: Any) -> dict[str, Any]:
    snap = copy.deepcopy(HEALTHY)
    snap["delivery"]["targets"][RALLY] = _rally(**fields)
    return snap


def _dead(**fields: Any) -> str:
    delivery = DeliveryView.model_validate(_snapshot(**fields)["delivery"])
    [dead] = dead_targets(delivery)
    return dead.describe()


def _fact(fact: str, **fields: Any) -> str | None:
    detail = target_detail(RALLY, TargetView.model_validate(_rally(**fields)), NOW)
    found = [value for name, value in detail.facts if name == fact]
    return found[0] if found else None


def _state(**fields: Any) -> str:
    state = _fact("State", **fields)
    assert state is not None
    return state


def test_dead_for_one_of_two_maps_names_that_map_and_does_not_call_the_others_rows_held() -> None:
    assert _dead(dead_for=["alpha"]) == (
        f"{SHARED} ({RALLY}): DEAD for alpha only, 404 Unknown Webhook — pending: 9"
    )
    assert _state(dead_for=["alpha"]) == (
        "DEAD for alpha only (alpha's notifications are held, not lost; bravo's still go)"
        " since 22:08:20 UTC (5m ago)"
    )


def test_dead_for_one_of_two_maps_says_how_many_it_holds_for_that_map() -> None:
    # pending 9: alpha's 3 held and bravo's 6 on their way
    assert _dead(dead_for=["alpha"], held_for={"alpha": 3}) == (
        f"{SHARED} ({RALLY}): DEAD for alpha only, 404 Unknown Webhook — held: 3 (alpha)"
    )
    assert _fact("Held", dead_for=["alpha"], held_for={"alpha": 3}) == (
        "3 for alpha (sent once the target is fixed or retried)"
    )
    assert _fact("Pending", dead_for=["alpha"], held_for={"alpha": 3}) == (
        "9 (waiting to be sent, the 3 held among them)"
    )


def test_dead_for_two_of_three_maps_says_what_it_holds_for_each() -> None:
    fields: dict[str, Any] = {
        "maps": ["alpha", "bravo", "charlie"],
        "dead_for": ["alpha", "charlie"],
        "held_for": {"charlie": 2, "alpha": 3},
    }
    assert _dead(**fields).endswith(
        "DEAD for alpha, charlie only, 404 Unknown Webhook — held: 3 (alpha), 2 (charlie)"
    )
    assert _fact("Held", **fields) == (
        "3 for alpha, 2 for charlie (sent once the target is fixed or retried)"
    )


def test_an_engine_that_does_not_count_what_is_held_shows_no_held_fact() -> None:
    assert _fact("Held", dead_for=["alpha"]) is None
    assert _fact("Pending", dead_for=["alpha"]) == "9 (waiting to be sent)"


def test_dead_for_every_map_posting_there_reads_as_before() -> None:
    assert _dead(dead_for=["alpha", "bravo"]) == (
        f"{SHARED} ({RALLY}): DEAD 404 Unknown Webhook — held: 9"
    )
    assert _state(dead_for=["alpha", "bravo"]) == (
        "DEAD (its notifications are held, not lost) since 22:08:20 UTC (5m ago)"
    )


def test_dead_for_every_map_the_detail_says_what_it_holds_for_each() -> None:
    fields: dict[str, Any] = {"dead_for": ["alpha", "bravo"], "held_for": {"alpha": 4, "bravo": 5}}
    assert _dead(**fields) == f"{SHARED} ({RALLY}): DEAD 404 Unknown Webhook — held: 9"
    assert _fact("Held", **fields) == (
        "4 for alpha, 5 for bravo (sent once the target is fixed or retried)"
    )
    assert _fact("Pending", **fields) == "9 (waiting to be sent)"


def test_an_engine_that_does_not_say_for_which_map_reads_as_before() -> None:
    assert _dead(maps=[]) == f"{SHARED} ({RALLY}): DEAD 404 Unknown Webhook — held: 9"
    assert _state(maps=[]).startswith("DEAD (its notifications are held, not lost) since ")


@pytest.mark.slow
async def test_the_palettes_retry_says_how_many_it_sends_for_that_map(
    make_app: AppFactory,
) -> None:
    app = make_app(_snapshot(dead_for=["alpha"], held_for={"alpha": 3}))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_frame(pilot)
        [retry] = [c for c in console_commands(app) if c.title.startswith("Retry")]
        assert retry.help == (
            "DEAD for alpha only, 404 Unknown Webhook;"
            " revive it for alpha and send its 3 held notifications"
        )


@pytest.mark.slow
async def test_the_palettes_retry_says_for_which_map_it_revives(make_app: AppFactory) -> None:
    app = make_app(_snapshot(dead_for=["alpha"]))
    async with app.run_test(size=(120, 40)) as pilot:
        await first_frame(pilot)
        [retry] = [c for c in console_commands(app) if c.title.startswith("Retry")]
        assert retry.title == f"Retry dead target {SHARED} ({RALLY})"
        assert retry.help == (
            "DEAD for alpha only, 404 Unknown Webhook; revive it for alpha and send what it held"
        )
