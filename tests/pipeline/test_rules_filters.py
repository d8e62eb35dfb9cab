"""Per-map kill filters (aa-killtracker's clauses, PARITY.md §11, quirks fixed), the routing table
(§2.3), the notifier's documented-but-inert flags made to work (§2.4, §10), and config errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest

from wanderer_console.config import ConfigError, parse_settings_text
from wanderer_console.config.legacy_env import legacy_overrides
from wanderer_console.config.model import Settings, SpaceClassName
from wanderer_console.config.routing import resolve_target
from wanderer_console.domain.eve import SpaceClass, space_facts, wormhole_class_for_region
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.notification import NotificationType, TargetKind
from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem, TrackingIndex
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.kill_facts import SystemInfo
from wanderer_console.pipeline.rules import (
    REFUSAL_REASONS,
    KillDecision,
    Refusal,
    decide_kill,
)
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

NOW = datetime(2026, 1, 10, 18, 30, tzinfo=UTC)
WH = 31002238  # tracked J-space system (class unknown unless static info says)
KS = 30000142  # tracked k-space system (Jita)
OTHER = 30002187  # untracked k-space system
OTHER_WH = 31001234  # untracked J-space system
THERA = 31000005
PILOT, ENEMY, THIRD = 2112000001, 2112000002, 2112000003
FOCUS_CORP = 98000009
CORP_A, CORP_B, CORP_C = 98000001, 98000002, 98000003
ALLY_A, ALLY_B, ALLY_C = 99000001, 99000002, 99000003
FACTION_A, FACTION_B = 500001, 500002
NEMESIS, SABRE, RIFTER = 11377, 22456, 587
STEALTH_BOMBER, INTERDICTOR, FRIGATE = 834, 541, 25
REGION_C3, CONSTELLATION = 11000012, 21000100


def settings(*, discord: dict[str, Any] | None = None, **filters: Any) -> Settings:
    return Settings.model_validate(
        {
            "maps": {
                "home": {
                    "url": "http://127.0.0.1:1",
                    "api_key": "k",
                    "filters": filters,
                    "discord": discord or {"webhook_url": "https://discord.com/api/webhooks/1/t"},
                }
            }
        }
    )


def index(**static: Any) -> TrackingIndex:
    idx = TrackingIndex()
    idx.replace(
        "home",
        [TrackedSystem(WH, "J154624", **static), TrackedSystem(KS, "Jita")],
        [TrackedCharacter(PILOT, "Pilot")],
    )
    return idx


def party(
    character: int | None = None,
    corp: int | None = None,
    ally: int | None = None,
    faction: int | None = None,
    ship: int | None = SABRE,
    final_blow: bool = False,
) -> dict[str, Any]:
    return {
        "character_id": character,
        "corporation_id": corp,
        "alliance_id": ally,
        "faction_id": faction,
        "ship_type_id": ship,
        "final_blow": final_blow,
        "damage_done": 10,
    }


def kill(
    system: int = WH,
    *,
    victim: dict[str, Any] | None = None,
    attackers: list[dict[str, Any]] | None = None,
    zkb: dict[str, Any] | None = None,
    **extra: Any,
) -> Killmail:
    if attackers is None:
        attackers = [party(THIRD, CORP_A, ALLY_A, final_blow=True), party(None, CORP_B)]
    data: dict[str, Any] = {
        "killmail_id": 1,
        "system_id": system,
        "kill_time": (NOW - timedelta(seconds=60)).isoformat(),
        "victim": victim or {**party(ENEMY, CORP_C, ALLY_C, ship=NEMESIS), "damage_taken": 5},
        "attackers": attackers,
        "zkb": {"totalValue": 200_000_000.0, **(zkb or {})},
        **extra,
    }
    return Killmail.from_wire(data)


@dataclass
class FakeInfo:
    """A :class:`SystemInfo` with a few facts."""

    regions: dict[int, int] = field(default_factory=dict)
    constellations: dict[int, int] = field(default_factory=dict)
    security: dict[int, float] = field(default_factory=dict)
    classes: dict[int, int] = field(default_factory=dict)
    groups: dict[int, int] = field(default_factory=dict)

    def region_id(self, system_id: int) -> int | None:
        return self.regions.get(system_id)

    def constellation_id(self, system_id: int) -> int | None:
        return self.constellations.get(system_id)

    def security_status(self, system_id: int) -> float | None:
        return self.security.get(system_id)

    def wormhole_class(self, system_id: int) -> int | None:
        return self.classes.get(system_id)

    def group_id(self, type_id: int) -> int | None:
        return self.groups.get(type_id)


INFO = FakeInfo(
    regions={WH: REGION_C3, OTHER_WH: 11000031},
    constellations={WH: CONSTELLATION},
    security={KS: 0.946, OTHER: -0.4},
    groups={NEMESIS: STEALTH_BOMBER, SABRE: INTERDICTOR},
)


def decide(
    km: Killmail,
    s: Settings,
    *,
    idx: TrackingIndex | None = None,
    info: SystemInfo | None = INFO,
) -> tuple[list[KillDecision], list[Refusal]]:
    return decide_kill(km, settings=s, index=idx or index(), now=NOW, suppressed=False, info=info)


def reason(km: Killmail, s: Settings, **kw: Any) -> str | None:
    decisions, refusals = decide(km, s, **kw)
    if decisions:
        assert refusals == []
        return None
    assert len(refusals) == 1
    return refusals[0].reason


# -- routing (PARITY.md §2.3), one row each ------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "km", "filters", "expected"),
    [
        (
            "1 focus corp as victim, tracked system → character-kill",
            kill(KS, victim=party(ENEMY, FOCUS_CORP)),
            {"corporation_kill_focus": [FOCUS_CORP]},
            ("character_kill", "neutral"),
        ),
        (
            "1 focus corp as attacker, tracked character → character-kill",
            kill(OTHER, attackers=[party(PILOT, FOCUS_CORP, final_blow=True)]),
            {"corporation_kill_focus": [FOCUS_CORP]},
            ("character_kill", "kill"),
        ),
        (
            "2 tracked system and tracked character → character-kill",
            kill(WH, victim=party(PILOT, CORP_C)),
            {},
            ("character_kill", "loss"),
        ),
        ("3 tracked system only → system-kill", kill(WH), {}, ("system_kill", "neutral")),
        (
            "5 tracked character only → character-kill",
            kill(OTHER, attackers=[party(PILOT, CORP_A, final_blow=True)]),
            {},
            ("character_kill", "kill"),
        ),
        (
            "4/5 wormhole-only map, k-space kill of a tracked character → character-kill",
            kill(KS, victim=party(PILOT, CORP_C)),
            {"track_kspace": False},
            ("character_kill", "loss"),
        ),
    ],
)
def test_routing_rows(
    row: str, km: Killmail, filters: dict[str, Any], expected: tuple[str, str]
) -> None:
    decisions, refusals = decide(km, settings(**filters))
    assert refusals == [], row
    assert [(d.route, d.role) for d in decisions] == [expected], row


def test_row_4_tracked_system_wormhole_excluded_is_refused() -> None:
    assert reason(kill(KS), settings(wormhole_only=True)) == "wormhole_only"


def test_row_6_anything_else_goes_to_primary() -> None:
    # Nothing configured for the route: the primary webhook, then the primary channel.
    only_primary = settings(discord={"webhook_url": "https://discord.com/api/webhooks/1/t"})
    for route in ("system_kill", "character_kill"):
        target = resolve_target(only_primary, "home", route)
        assert target is not None
        assert (target.kind, target.key) == (TargetKind.WEBHOOK, "webhook:1")
    routed = settings(
        discord={
            "webhook_url": "https://discord.com/api/webhooks/1/t",
            "system_kill_webhook_url": "https://discord.com/api/webhooks/2/t",
        }
    )
    system_kill = resolve_target(routed, "home", "system_kill")
    character_kill = resolve_target(routed, "home", "character_kill")
    assert system_kill is not None
    assert system_kill.key == "webhook:2"
    assert character_kill is not None
    assert character_kill.key == "webhook:1"


def test_untracked_kill_is_refused() -> None:
    assert reason(kill(OTHER), settings()) == "untracked"


# -- each filter: a passing and a refusing kill ----------------------------------------------------

NPC_KILL = kill(zkb={"npc": True})
WAR_KILL = kill(war_id=777)
SOLO_KILL = kill(attackers=[party(THIRD, CORP_A, final_blow=True)])
SOLO_BY_ZKB = kill(zkb={"solo": True})
NPC_ALONE = kill(attackers=[party(None, 1000125, final_blow=True)], zkb={"npc": True})
NO_VALUE = Killmail.from_wire({"killmail_id": 2, "system_id": WH, "victim": {"ship_type_id": 1}})

FILTER_CASES: list[tuple[str, dict[str, Any], Killmail, str | None]] = [
    # (name, filters, kill, expected refusal reason or None for notified)
    ("empty filters pass", {}, kill(), None),
    ("min value met", {"min_value_isk": 100_000_000}, kill(), None),
    ("min value not met", {"min_value_isk": 300_000_000}, kill(), "below_min_value"),
    ("min value, no value", {"min_value_isk": 1}, NO_VALUE, "value_unknown"),
    ("no minimum, no value", {}, NO_VALUE, None),
    # Garbage values are unknown: a NaN compared false with the minimum and matched.
    ("min value, NaN", {"min_value_isk": 1e12}, kill(zkb={"totalValue": "NaN"}), "value_unknown"),
    ("min value, infinite", {"min_value_isk": 1}, kill(zkb={"totalValue": "inf"}), "value_unknown"),
    ("min value, exactly", {"min_value_isk": 200_000_000}, kill(), None),
    ("npc required, npc", {"require_npc_kills": True}, NPC_KILL, None),
    ("npc required, pvp", {"require_npc_kills": True}, kill(), "npc_required"),
    ("npc excluded, npc", {"exclude_npc_kills": True}, NPC_KILL, "npc_excluded"),
    ("npc excluded, pvp", {"exclude_npc_kills": True}, kill(), None),
    ("war required, war", {"require_war_kills": True}, WAR_KILL, None),
    ("war required, no war", {"require_war_kills": True}, kill(), "war_required"),
    ("war excluded, war", {"exclude_war_kills": True}, WAR_KILL, "war_excluded"),
    ("war excluded, no war", {"exclude_war_kills": True}, kill(), None),
    ("solo required, one attacker", {"require_solo_kills": True}, SOLO_KILL, None),
    ("solo required, zkb solo", {"require_solo_kills": True}, SOLO_BY_ZKB, None),
    ("solo required, gang", {"require_solo_kills": True}, kill(), "solo_required"),
    ("solo excluded, solo", {"exclude_solo_kills": True}, SOLO_KILL, "solo_excluded"),
    ("solo excluded, gang", {"exclude_solo_kills": True}, kill(), None),
    # A ship lost to one rat is an NPC kill, not a solo kill (zKillboard never marks it solo).
    ("solo required, one NPC", {"require_solo_kills": True}, NPC_ALONE, "solo_required"),
    ("solo excluded, one NPC", {"exclude_solo_kills": True}, NPC_ALONE, None),
    # security classes: WH is a C3 by its region, KS high-sec by security status
    ("include c3, in a C3", {"include_security_classes": ["c3"]}, kill(WH), None),
    ("include wormhole, in a C3", {"include_security_classes": ["wormhole"]}, kill(WH), None),
    (
        "include c5/c6, in a C3",
        {"include_security_classes": ["c5", "c6"]},
        kill(WH),
        "security_class_not_included",
    ),
    ("include high, in Jita", {"include_security_classes": ["high"]}, kill(KS), None),
    (
        "include null, in Jita",
        {"include_security_classes": ["null", "low"]},
        kill(KS),
        "security_class_not_included",
    ),
    (
        "exclude high, in Jita",
        {"exclude_security_classes": ["high"]},
        kill(KS),
        "security_class_excluded",
    ),
    ("exclude high, in a C3", {"exclude_security_classes": ["high"]}, kill(WH), None),
    (
        "exclude c2+c3 (2 entries), in a C3",
        {"exclude_security_classes": ["c2", "c3"]},
        kill(WH),
        "security_class_excluded",
    ),
    # ranges
    ("region required, in it", {"require_regions": [REGION_C3]}, kill(WH), None),
    ("region required, elsewhere", {"require_regions": [1]}, kill(WH), "region_not_included"),
    ("region required, unknown", {"require_regions": [1]}, kill(KS), "region_unknown"),
    ("constellation required, in it", {"require_constellations": [CONSTELLATION]}, kill(WH), None),
    (
        "constellation required, unknown",
        {"require_constellations": [CONSTELLATION]},
        kill(KS),
        "constellation_unknown",
    ),
    ("systems required, in it", {"require_systems": [WH]}, kill(WH), None),
    ("systems required, elsewhere", {"require_systems": [WH]}, kill(KS), "system_not_included"),
    ("min attackers met", {"min_attackers": 2}, kill(), None),
    ("min attackers not met", {"min_attackers": 3}, kill(), "too_few_attackers"),
    ("max attackers met", {"max_attackers": 2}, kill(), None),
    ("max attackers exceeded", {"max_attackers": 1}, kill(), "too_many_attackers"),
    # attackers: required = any attacker in the list
    (
        "attacker alliance required, present",
        {"require_attacker_alliances": [ALLY_A, ALLY_B]},
        kill(),
        None,
    ),
    (
        "attacker alliance required, absent",
        {"require_attacker_alliances": [ALLY_B]},
        kill(),
        "attacker_alliance_not_required",
    ),
    (
        "attacker corp required, 2nd attacker",
        {"require_attacker_corporations": [CORP_B]},
        kill(),
        None,
    ),
    (
        "attacker faction required, absent",
        {"require_attacker_factions": [FACTION_A]},
        kill(),
        "attacker_faction_not_required",
    ),
    (
        "attacker faction required, present",
        {"require_attacker_factions": [FACTION_A]},
        kill(attackers=[party(THIRD, CORP_A, faction=FACTION_A, final_blow=True)]),
        None,
    ),
    # attackers: excluded = none of the attackers in the list (the 2+-entry quirk fixed)
    (
        "attacker alliance excluded, one of two listed is involved",
        {"exclude_attacker_alliances": [ALLY_A, ALLY_B]},
        kill(),
        "attacker_alliance_excluded",
    ),
    (
        "attacker corp excluded, one of two listed is involved",
        {"exclude_attacker_corporations": [CORP_B, CORP_C]},
        kill(),
        "attacker_corporation_excluded",
    ),
    (
        "attacker faction excluded, one of two listed is involved",
        {"exclude_attacker_factions": [FACTION_A, FACTION_B]},
        kill(attackers=[party(THIRD, CORP_A, faction=FACTION_B, final_blow=True)]),
        "attacker_faction_excluded",
    ),
    (
        "attacker alliance excluded, none involved",
        {"exclude_attacker_alliances": [ALLY_B, ALLY_C]},
        kill(),
        None,
    ),
    (
        "final blow by a required org",
        {
            "require_attacker_corporations": [CORP_A],
            "require_attacker_organizations_final_blow": True,
        },
        kill(),
        None,
    ),
    (
        "final blow not by the required org",
        {
            "require_attacker_corporations": [CORP_B],
            "require_attacker_organizations_final_blow": True,
        },
        kill(),
        "final_blow_not_required_org",
    ),
    # victim: required / excluded, exclude with 2+ entries works (aa-killtracker never excluded)
    (
        "victim alliance required, in it",
        {"require_victim_alliances": [ALLY_B, ALLY_C]},
        kill(),
        None,
    ),
    (
        "victim alliance required, not in it",
        {"require_victim_alliances": [ALLY_A]},
        kill(),
        "victim_alliance_not_required",
    ),
    (
        "victim corp required, not in it",
        {"require_victim_corporations": [CORP_A]},
        kill(),
        "victim_corporation_not_required",
    ),
    (
        "victim faction required, none",
        {"require_victim_factions": [FACTION_A]},
        kill(),
        "victim_faction_not_required",
    ),
    (
        "victim alliance excluded, 2 entries",
        {"exclude_victim_alliances": [ALLY_B, ALLY_C]},
        kill(),
        "victim_alliance_excluded",
    ),
    (
        "victim corp excluded, 3 entries",
        {"exclude_victim_corporations": [CORP_A, CORP_B, CORP_C]},
        kill(),
        "victim_corporation_excluded",
    ),
    (
        "victim faction excluded, 2 entries",
        {"exclude_victim_factions": [FACTION_A, FACTION_B]},
        kill(victim=party(None, 1000125, faction=FACTION_B, ship=NEMESIS)),
        "victim_faction_excluded",
    ),
    (
        "victim corp excluded, not in it",
        {"exclude_victim_corporations": [CORP_A, CORP_B]},
        kill(),
        None,
    ),
    # ships
    ("victim ship type required", {"require_victim_ship_types": [NEMESIS]}, kill(), None),
    (
        "victim ship type required, other",
        {"require_victim_ship_types": [RIFTER]},
        kill(),
        "victim_ship_type_not_required",
    ),
    ("victim ship group required", {"require_victim_ship_groups": [STEALTH_BOMBER]}, kill(), None),
    (
        "victim ship group required, other",
        {"require_victim_ship_groups": [FRIGATE]},
        kill(),
        "victim_ship_group_not_required",
    ),
    (
        "victim ship group required, unknown group",
        {"require_victim_ship_groups": [FRIGATE]},
        kill(victim=party(ENEMY, CORP_C, ship=RIFTER)),
        "victim_ship_group_unknown",
    ),
    ("attacker ship type required", {"require_attacker_ship_types": [SABRE]}, kill(), None),
    (
        "attacker ship type required, other",
        {"require_attacker_ship_types": [RIFTER]},
        kill(),
        "attacker_ship_type_not_required",
    ),
    ("attacker ship group required", {"require_attacker_ship_groups": [INTERDICTOR]}, kill(), None),
    (
        "attacker ship group required, other",
        {"require_attacker_ship_groups": [FRIGATE]},
        kill(),
        "attacker_ship_group_not_required",
    ),
    (
        "attacker ship group required, unknown group",
        {"require_attacker_ship_groups": [FRIGATE]},
        kill(attackers=[party(THIRD, CORP_A, ship=RIFTER, final_blow=True)]),
        "attacker_ship_group_unknown",
    ),
    # clauses are ANDed
    (
        "two clauses, second fails",
        {"min_value_isk": 1, "require_war_kills": True},
        kill(),
        "war_required",
    ),
]


@pytest.mark.parametrize(
    ("filters", "km", "expected"),
    [case[1:] for case in FILTER_CASES],
    ids=[case[0] for case in FILTER_CASES],
)
def test_filter_clauses(filters: dict[str, Any], km: Killmail, expected: str | None) -> None:
    assert reason(km, settings(**filters)) == expected
    if expected is not None:
        assert expected in REFUSAL_REASONS


def test_filters_apply_to_tracked_character_kills_too() -> None:
    km = kill(OTHER, victim=party(PILOT, CORP_C, ship=RIFTER))
    assert reason(km, settings()) is None
    assert reason(km, settings(require_victim_ship_types=[NEMESIS])) == (
        "victim_ship_type_not_required"
    )


def test_a_system_with_a_security_just_above_zero_is_low_sec() -> None:
    """EVE shows a security between 0.0 and 0.05 as 0.1: such a system (Karan, Naga, …) is
    low-sec. Rounded the Python way (0.03 to 0.0) it counted as null-sec: a "low" filter missed
    its kills and a "null" one took them."""
    info = FakeInfo(security={KS: 0.03})
    assert reason(kill(KS), settings(include_security_classes=["low"]), info=info) is None
    assert reason(kill(KS), settings(include_security_classes=["null"]), info=info) == (
        "security_class_not_included"
    )


def test_without_a_provider_unknown_facts_do_not_match() -> None:
    no_info = {"info": None}
    assert reason(kill(WH), settings(include_security_classes=["c3"]), **no_info) == (
        "security_class_unknown"
    )
    assert reason(kill(KS), settings(exclude_security_classes=["high"]), **no_info) == (
        "security_class_unknown"
    )
    # J-space by id alone is enough for "wormhole" and against "high".
    assert reason(kill(WH), settings(include_security_classes=["wormhole"]), **no_info) is None
    assert reason(kill(WH), settings(exclude_security_classes=["high"]), **no_info) is None
    assert reason(kill(WH), settings(require_regions=[REGION_C3]), **no_info) == "region_unknown"
    assert reason(kill(), settings(require_victim_ship_groups=[FRIGATE]), **no_info) == (
        "victim_ship_group_unknown"
    )


def test_map_static_info_classifies_the_system() -> None:
    shattered_c5 = index(system_class=5, is_shattered=True)
    s = settings(include_security_classes=["shattered"])
    assert reason(kill(WH), s, idx=shattered_c5, info=None) is None
    s = settings(exclude_security_classes=["c5"])
    assert reason(kill(WH), s, idx=shattered_c5, info=None) == "security_class_excluded"
    s = settings(require_regions=[REGION_C3])
    assert reason(kill(WH), s, idx=index(region_id=REGION_C3), info=None) is None


# -- space classification (domain/eve.py) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "expected"),
    [
        (11000001, 1),
        (11000003, 1),
        (11000004, 2),
        (11000008, 2),
        (11000009, 3),
        (11000015, 3),
        (11000016, 4),
        (11000023, 4),
        (11000024, 5),
        (11000029, 5),
        (11000030, 6),
        (11000031, 12),
        (11000032, 13),
        (11000033, 14),
        (10000070, 25),
        (10000002, None),
        (None, None),
    ],
)
def test_wormhole_class_for_region(region: int | None, expected: int | None) -> None:
    assert wormhole_class_for_region(region) == expected


@pytest.mark.parametrize(
    ("kwargs", "system", "known"),
    [
        ({"class_id": 3}, WH, {"wormhole", "c3"}),
        ({"class_id": 13}, WH, {"wormhole", "c13", "shattered"}),
        ({"class_id": 16}, WH, {"wormhole", "drifter"}),
        ({}, THERA, {"wormhole", "thera"}),
        ({"region_id": 11000030}, WH, {"wormhole", "c6"}),
        ({"region_id": 10000070, "security_status": -1.0}, 30000157, {"pochven"}),
        ({"security_status": 0.46}, KS, {"high"}),
        ({"security_status": 0.3}, KS, {"low"}),
        # Positive under 0.05: shown as 0.1 by the client, low-sec (not null-sec).
        ({"security_status": 0.03}, KS, {"low"}),
        ({"security_status": 0.45}, KS, {"high"}),
        ({"security_status": 0.0}, KS, {"null"}),
        ({"security_status": -0.2}, KS, {"null"}),
        ({"class_id": 2, "is_shattered": True}, WH, {"wormhole", "c2", "shattered"}),
    ],
)
def test_space_facts(kwargs: dict[str, Any], system: int, known: set[str]) -> None:
    assert {c.value for c in space_facts(system, **kwargs).known} == known


def test_config_space_class_names_match_the_domain() -> None:
    assert set(get_args(SpaceClassName)) == {c.value for c in SpaceClass}


def test_unknown_facts_are_three_valued() -> None:
    facts = space_facts(KS, security_status=-0.5)
    assert facts.membership(SpaceClass.NULL) is True
    assert facts.membership(SpaceClass.POCHVEN) is None  # needs the region
    assert facts.membership(SpaceClass.C3) is False
    assert space_facts(THERA).membership(SpaceClass.SHATTERED) is False


# -- documented notifier flags made to work (PARITY.md §2.4, §10) ---------------------------------


def test_priority_system_by_id_mentions_here() -> None:
    (decision,), _ = decide(kill(WH), settings(priority_systems=[WH]))
    assert decision.mention_here
    (decision,), _ = decide(kill(WH), settings(priority_systems=[KS]))
    assert not decision.mention_here


def test_priority_system_by_name_any_case() -> None:
    (decision,), _ = decide(kill(WH), settings(priority_system_names=["j154624"]))
    assert decision.mention_here


def test_priority_character_kill_in_priority_system_also_mentions_here() -> None:
    km = kill(WH, victim=party(PILOT, CORP_C))
    (decision,), _ = decide(km, settings(priority_systems=[WH]))
    assert (decision.route, decision.mention_here) == ("character_kill", True)


def test_priority_systems_only() -> None:
    s = settings(priority_systems_only=True, priority_systems=[WH])
    assert reason(kill(WH), s) is None
    assert reason(kill(KS), s) == "not_priority_system"
    # a tracked character still notifies, through the character-kill channel
    (decision,), _ = decide(kill(KS, victim=party(PILOT, CORP_C)), s)
    assert decision.route == "character_kill"


def test_fallback_to_here_only_on_system_kill_messages() -> None:
    s = settings(fallback_to_here=True)
    (decision,), _ = decide(kill(WH), s)
    assert (decision.route, decision.mention_here) == ("system_kill", True)
    (decision,), _ = decide(kill(OTHER, victim=party(PILOT, CORP_C)), s)
    assert (decision.route, decision.mention_here) == ("character_kill", False)


def test_track_kspace_off() -> None:
    s = settings(track_kspace=False)
    assert reason(kill(KS), s) == "kspace_not_tracked"
    assert reason(kill(WH), s) is None


def test_disabled_kill_flag_wins_over_priority() -> None:
    # PARITY §2.1: global and map flags always win; a priority system does not bypass them.
    s = settings(priority_systems=[WH])
    s.maps["home"].notifications.kill = False
    assert reason(kill(WH), s) == "disabled"


def test_every_reason_is_documented() -> None:
    assert all(isinstance(text, str) and text for text in REFUSAL_REASONS.values())
    for _, _, _, expected in FILTER_CASES:
        assert expected is None or expected in REFUSAL_REASONS


# -- engine: @here in the message, per-type dedup TTLs -------------------------------------------


def _engine(store: Store, s: Settings, clock: list[float]) -> Engine:
    return Engine(
        s,
        store,
        index(),
        Metrics(),
        clock=lambda: clock[0],
        system_info=INFO,
    )


def test_engine_puts_here_on_priority_kills(store: Store) -> None:
    clock = [NOW.timestamp()]
    engine = _engine(store, settings(priority_systems=[WH]), clock)
    clock[0] += 60  # past start-up suppression
    (notification,) = engine.kill_notifications(kill(WH))
    assert notification.body["content"].startswith("@here")
    assert notification.body["allowed_mentions"]["parse"] == ["everyone"]
    (plain,) = engine.kill_notifications(kill(KS))
    assert "@here" not in plain.body.get("content", "")
    assert plain.body["allowed_mentions"]["parse"] == []


def test_engine_dedup_ttl_per_type(store: Store) -> None:
    clock = [1000.0]
    s = settings()
    s.maps["home"].dedup_ttl_seconds.system = 60
    s.maps["home"].dedup_ttl_seconds.character = 0
    engine = _engine(store, s, clock)
    assert not engine.map_updates.type_dedup_hit("home", NotificationType.SYSTEM, WH)
    assert engine.map_updates.type_dedup_hit("home", NotificationType.SYSTEM, WH)
    clock[0] += 61
    assert not engine.map_updates.type_dedup_hit("home", NotificationType.SYSTEM, WH)
    assert not engine.map_updates.type_dedup_hit("home", NotificationType.CHARACTER, PILOT)
    assert not engine.map_updates.type_dedup_hit("home", NotificationType.CHARACTER, PILOT)


# -- config: invalid combinations, located; legacy variables -------------------------------------

BASE = """\
[maps.home]
url = "http://127.0.0.1:9"
api_key = "k"

[maps.home.filters]
"""


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("min_attackers = 5\nmax_attackers = 2\n", "min_attackers (5) is greater than"),
        (
            "require_attacker_corporations = [1]\nexclude_attacker_corporations = [1, 2]\n",
            "1 in both require_attacker_corporations and exclude_attacker_corporations",
        ),
        (
            "require_victim_alliances = [7]\nexclude_victim_alliances = [7]\n",
            "in both require_victim_alliances and exclude_victim_alliances",
        ),
        ("require_npc_kills = true\nexclude_npc_kills = true\n", "require_npc_kills and"),
        ("require_war_kills = true\nexclude_war_kills = true\n", "require_war_kills and"),
        ("require_solo_kills = true\nexclude_solo_kills = true\n", "require_solo_kills and"),
        (
            'include_security_classes = ["c5"]\nexclude_security_classes = ["c5"]\n',
            "c5 in both include_security_classes",
        ),
        (
            'exclude_security_classes = ["high", "low", "null", "pochven", "wormhole"]\n',
            "excludes every kind of space",
        ),
        ("require_attacker_organizations_final_blow = true\n", "needs require_attacker_alliances"),
        ("priority_systems_only = true\n", "priority_systems_only needs"),
    ],
)
def test_invalid_combinations_are_located_config_errors(body: str, needle: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(BASE + body, file="c.toml", environ={})
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.key) == ("c.toml", 5, "maps.home.filters")
    assert needle in problem.message


def test_unknown_security_class_names_the_key_and_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings_text(
            BASE + 'min_value_isk = 1\ninclude_security_classes = ["c7"]\n', environ={}
        )
    (problem,) = caught.value.problems
    assert problem.line == 7
    assert problem.key == "maps.home.filters.include_security_classes.0"


def test_legacy_variables_for_the_inert_flags() -> None:
    tree, used = legacy_overrides(
        {
            "MAP_NAME": "home",
            "MAP_URL": "http://x",
            "TRACK_KSPACE_ENABLED": "false",
            "PRIORITY_SYSTEMS_ONLY_ENABLED": "yes",
            "PRIORITY_SYSTEMS": "31002238, J154624",
            "VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED": "true",
            "DEDUPLICATION_TTL_SECONDS": "1800",
        }
    )
    section = tree["maps"]["home"]
    assert section["filters"] == {
        "track_kspace": False,
        "priority_systems_only": True,
        "priority_systems": ["31002238"],
        "priority_system_names": ["J154624"],
        "fallback_to_here": True,  # FALLBACK_TO_HERE_ENABLED defaults to true upstream
    }
    assert section["dedup_ttl_seconds"] == {"system": "1800", "character": "1800"}
    assert {"PRIORITY_SYSTEMS", "DEDUPLICATION_TTL_SECONDS", "TRACK_KSPACE_ENABLED"} <= set(used)


def test_fallback_to_here_needs_voice_mentions_like_upstream() -> None:
    tree, _ = legacy_overrides(
        {"MAP_NAME": "home", "MAP_URL": "http://x", "FALLBACK_TO_HERE_ENABLED": "true"}
    )
    assert "fallback_to_here" not in tree["maps"]["home"].get("filters", {})
    tree, _ = legacy_overrides(
        {
            "MAP_NAME": "home",
            "MAP_URL": "http://x",
            "VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED": "true",
            "FALLBACK_TO_HERE_ENABLED": "false",
        }
    )
    assert tree["maps"]["home"]["filters"]["fallback_to_here"] is False


def test_legacy_tree_validates() -> None:
    env = {
        "MAP_NAME": "home",
        "MAP_URL": "http://x",
        "MAP_API_KEY": "k",
        "PRIORITY_SYSTEMS": "31002238,J154624",
        "PRIORITY_SYSTEMS_ONLY": "true",
        "DEDUPLICATION_TTL_SECONDS": "120",
    }
    s, _ = parse_settings_text("", environ=env)
    home = s.maps["home"]
    assert home.filters.priority_systems == [WH]
    assert home.filters.priority_system_names == ["J154624"]
    assert home.filters.priority_systems_only
    assert (home.dedup_ttl_seconds.system, home.dedup_ttl_seconds.character) == (120, 120)
