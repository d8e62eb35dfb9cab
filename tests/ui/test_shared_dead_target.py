"""A webhook two maps post to, dead for one of them: the console says for which.

A target is dead per map (:class:`~wanderer_console.console_api.TargetView` ``dead_for``, the
maps posting there in ``maps``). The console took any dead mark on a target as the target dead
for everyone: a shared webhook refused for ``alpha`` read as dead for ``bravo`` too, whose
notifications were still being delivered through it, and its ``pending`` (both maps' rows) as
what the dead mark held. A target dead for every map posting there, and one from an engine that
does not say, read as before.
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


def _state(**fields: Any) -> str:
    detail = target_detail(RALLY, TargetView.model_validate(_rally(**fields)), NOW)
    [state] = [value for name, value in detail.facts if name == "State"]
    return state


def test_dead_for_one_of_two_maps_names_that_map_and_does_not_call_the_others_rows_held() -> None:
    assert _dead(dead_for=["alpha"]) == (
        f"{SHARED} ({RALLY}): DEAD for alpha only, 404 Unknown Webhook — pending: 9"
    )
    assert _state(dead_for=["alpha"]) == (
        "DEAD for alpha only (alpha's notifications are held, not lost; bravo's still go)"
        " since 22:08:20 UTC (5m ago)"
    )


def test_dead_for_every_map_posting_there_reads_as_before() -> None:
    assert _dead(dead_for=["alpha", "bravo"]) == (
        f"{SHARED} ({RALLY}): DEAD 404 Unknown Webhook — held: 9"
    )
    assert _state(dead_for=["alpha", "bravo"]) == (
        "DEAD (its notifications are held, not lost) since 22:08:20 UTC (5m ago)"
    )


def test_an_engine_that_does_not_say_for_which_map_reads_as_before() -> None:
    assert _dead(maps=[]) == f"{SHARED} ({RALLY}): DEAD 404 Unknown Webhook — held: 9"
    assert _state(maps=[]).startswith("DEAD (its notifications are held, not lost) since ")


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
