"""Kill rules and channel routing (PARITY.md §2.2–2.3), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from wanderer_console.config.model import Settings
from wanderer_console.config.routing import resolve_target
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.notification import TargetKind
from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem, TrackingIndex
from wanderer_console.pipeline.rules import decide_kill

NOW = datetime(2026, 1, 10, 18, 30, tzinfo=UTC)
WH, KS, OTHER = 31002238, 30000142, 30002187
PILOT, ENEMY = 2112000001, 2112000002
FOCUS_CORP = 98000009


def settings(**filters: Any) -> Settings:
    return Settings.model_validate(
        {
            "maps": {
                "home": {
                    "url": "http://127.0.0.1:1",
                    "api_key": "k",
                    "filters": filters,
                    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/t"},
                }
            }
        }
    )


def index() -> TrackingIndex:
    idx = TrackingIndex()
    idx.replace(
        "home",
        [TrackedSystem(WH, "J154624"), TrackedSystem(KS, "Jita")],
        [TrackedCharacter(PILOT, "Pilot")],
    )
    return idx


def kill(
    system: int,
    victim: int | None = None,
    attacker: int | None = None,
    corp: int | None = None,
    age: float = 60,
) -> Killmail:
    return Killmail.from_wire(
        {
            "killmail_id": 1,
            "system_id": system,
            "kill_time": (NOW - timedelta(seconds=age)).isoformat(),
            "victim": {"character_id": victim, "corporation_id": corp, "ship_type_id": 587},
            "attackers": [{"character_id": attacker, "final_blow": True, "damage_done": 10}],
        }
    )


@pytest.mark.parametrize(
    ("km", "filters", "expected"),
    [
        # rule 3: tracked system only → system-kill channel, neutral colour
        (kill(WH, victim=ENEMY), {}, ("system_kill", "neutral")),
        # rule 2: tracked system and tracked character → character-kill channel
        (kill(WH, victim=PILOT), {}, ("character_kill", "loss")),
        # rule 5: tracked character only → character-kill; attacker role is "kill"
        (kill(OTHER, attacker=PILOT), {}, ("character_kill", "kill")),
        # rule 1: focus corporation involved → character-kill even in a tracked system
        (
            kill(KS, victim=ENEMY, corp=FOCUS_CORP),
            {"corporation_kill_focus": [FOCUS_CORP]},
            ("character_kill", "neutral"),
        ),
    ],
)
def test_routing(km: Killmail, filters: dict[str, Any], expected: tuple[str, str]) -> None:
    decisions, refusals = decide_kill(
        km, settings=settings(**filters), index=index(), now=NOW, suppressed=False
    )
    assert refusals == []
    assert [(d.route, d.role) for d in decisions] == [expected]


@pytest.mark.parametrize(
    ("km", "filters", "suppressed", "reason"),
    [
        (kill(OTHER, victim=ENEMY), {}, False, "untracked"),
        (kill(KS, victim=ENEMY), {"wormhole_only": True}, False, "wormhole_only"),
        (kill(WH, victim=ENEMY), {"system_exclude_list": [WH]}, False, "system_excluded"),
        (
            kill(OTHER, victim=PILOT),
            {"character_exclude_list": [PILOT]},
            False,
            "character_excluded",
        ),
        (kill(WH, victim=ENEMY, age=7200), {}, False, "too_old"),
        (kill(WH, victim=ENEMY), {}, True, "startup_suppression"),
    ],
)
def test_refusals(km: Killmail, filters: dict[str, Any], suppressed: bool, reason: str) -> None:
    decisions, refusals = decide_kill(
        km, settings=settings(**filters), index=index(), now=NOW, suppressed=suppressed
    )
    assert decisions == []
    assert [r.reason for r in refusals] == [reason]


def test_flags_are_anded() -> None:
    s = settings()
    s.maps["home"].notifications.kill = False
    decisions, refusals = decide_kill(
        kill(WH), settings=s, index=index(), now=NOW, suppressed=False
    )
    assert decisions == []
    assert refusals[0].reason == "disabled"


def test_ignore_age_for_diagnostics() -> None:
    decisions, _ = decide_kill(
        kill(WH, age=10**6),
        settings=settings(),
        index=index(),
        now=NOW,
        suppressed=False,
        ignore_age=True,
    )
    assert len(decisions) == 1


def test_target_fallbacks() -> None:
    s = Settings.model_validate(
        {
            "discord": {"bot_token": "b"},
            "maps": {
                "home": {
                    "url": "http://x",
                    "api_key": "k",
                    "discord": {
                        "channel_id": "10",
                        "rally_channel_id": "11",
                        "system_kill_webhook_url": "https://discord.com/api/webhooks/5/t",
                    },
                }
            },
        }
    )
    rally = resolve_target(s, "home", "rally")
    system = resolve_target(s, "home", "system")
    hook = resolve_target(s, "home", "system_kill")
    assert rally is not None
    assert (rally.kind, rally.address) == (TargetKind.BOT_CHANNEL, "11")
    assert system is not None
    assert system.address == "10"
    assert hook is not None
    assert (hook.kind, hook.key) == (TargetKind.WEBHOOK, "webhook:5")
    s.discord.bot_token = None
    assert resolve_target(s, "home", "rally") is None
