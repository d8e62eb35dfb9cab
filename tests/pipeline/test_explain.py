"""Why an event notified nothing, in words: the kill command's verdicts as the events browser
gets them (pure: nothing fetched, stored or counted)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.pipeline.test_rules_filters import KS, NOW, OTHER, WH, index, kill, settings
from wanderer_console.config import Settings
from wanderer_console.pipeline.diagnose import (
    NOT_NOTIFIED,
    explain_kill,
    explain_map_event,
    explain_reason,
)
from wanderer_console.pipeline.rules import REFUSAL_REASONS


def _switched(flags: dict[str, Any], **map_flags: Any) -> Settings:
    base = settings().model_dump(mode="json")
    base["notifications"] = {**base["notifications"], **flags}
    base["maps"]["home"]["discord"] = {"webhook_url": "https://discord.com/api/webhooks/1/t"}
    base["maps"]["home"]["notifications"] = {**base["maps"]["home"]["notifications"], **map_flags}
    return Settings.model_validate(base)


def test_a_kill_in_a_tracked_system_notifies_through_its_route() -> None:
    verdict = explain_kill(kill(WH), settings(), index(), now=NOW)
    assert verdict == {
        "home": {
            "notify": True,
            "route": "system_kill",
            "role": "neutral",
            "target": "webhook:1",
        }
    }


def test_each_refusal_comes_with_its_words() -> None:
    untracked = explain_kill(kill(OTHER), settings(), index(), now=NOW)
    assert untracked["home"] == {
        "notify": False,
        "reason": "untracked",
        "explanation": REFUSAL_REASONS["untracked"],
    }
    wormholes = explain_kill(kill(KS), settings(wormhole_only=True), index(), now=NOW)
    assert wormholes["home"]["reason"] == "wormhole_only"
    assert wormholes["home"]["explanation"] == REFUSAL_REASONS["wormhole_only"]
    off = explain_kill(kill(WH), _switched({"kill": False}), index(), now=NOW)
    assert off["home"]["explanation"] == REFUSAL_REASONS["disabled"]


@pytest.mark.parametrize(
    ("event_type", "flags", "map_flags", "reason"),
    [
        ("deleted_system", {}, {}, "not_notifying"),
        ("add_system", {"system": False}, {}, "disabled"),
        ("character_added", {}, {"enabled": False}, "disabled"),
        ("add_system", {}, {}, "muted_on_arrival"),
        ("rally_point_added", {}, {}, "muted_on_arrival"),
    ],
)
def test_a_map_event_says_what_keeps_it_quiet(
    event_type: str, flags: dict[str, Any], map_flags: dict[str, Any], reason: str
) -> None:
    verdict = explain_map_event(_switched(flags, **map_flags), "home", event_type)
    assert verdict == {"notify": False, "reason": reason, "explanation": NOT_NOTIFIED[reason]}


def test_a_map_no_longer_configured_is_said_so() -> None:
    verdict = explain_map_event(settings(), "gone", "add_system")
    assert verdict["reason"] == "map_disabled"
    assert verdict["explanation"] == REFUSAL_REASONS["map_disabled"]


def test_an_unknown_reason_is_shown_as_it_is() -> None:
    assert explain_reason("some_new_reason") == "some_new_reason"
    assert all(text for text in NOT_NOTIFIED.values())
