"""The kill clauses (PARITY.md §11.1, quirks fixed) as one check: the first one a kill fails.

Shared by a map's default feed (its ``[filters]``) and by each of its trackers
(``[[maps.<key>.trackers]]``): both are :class:`~wanderer_console.config.filters.KillClauses`.
Pure: every fact the ids do not tell comes from :class:`~.kill_facts.KillFacts`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Final

from wanderer_console.config.filters import KillClauses
from wanderer_console.domain.eve import SpaceClass
from wanderer_console.domain.killmail import Killmail
from wanderer_console.pipeline.kill_facts import KillFacts

__all__ = ["CLAUSE_REASONS", "clause_refusal"]

CLAUSE_REASONS: dict[str, str] = {
    "value_unknown": "min_value_isk is set and the kill has no value",
    "below_min_value": "worth less than min_value_isk",
    "npc_required": "require_npc_kills and not an NPC kill",
    "npc_excluded": "exclude_npc_kills and an NPC kill",
    "war_required": "require_war_kills and not a war kill",
    "war_excluded": "exclude_war_kills and a war kill",
    "solo_required": "require_solo_kills and not a solo kill",
    "solo_excluded": "exclude_solo_kills and a solo kill",
    "security_class_unknown": "a security-class clause is set and the system's class is unknown",
    "security_class_not_included": "not in include_security_classes",
    "security_class_excluded": "in exclude_security_classes",
    "region_unknown": "require_regions is set and the region is unknown",
    "region_not_included": "not in require_regions",
    "constellation_unknown": "require_constellations is set; constellation unknown",
    "constellation_not_included": "not in require_constellations",
    "system_not_included": "not in require_systems",
    "too_few_attackers": "fewer attackers than min_attackers",
    "too_many_attackers": "more attackers than max_attackers",
    "attacker_alliance_not_required": "no attacker in require_attacker_alliances",
    "attacker_corporation_not_required": "no attacker in require_attacker_corporations",
    "attacker_faction_not_required": "no attacker in require_attacker_factions",
    "attacker_alliance_excluded": "an attacker is in exclude_attacker_alliances",
    "attacker_corporation_excluded": "an attacker is in exclude_attacker_corporations",
    "attacker_faction_excluded": "an attacker is in exclude_attacker_factions",
    "final_blow_not_required_org": "the final blow is not from a required attacker organisation",
    "victim_alliance_not_required": "the victim is not in require_victim_alliances",
    "victim_corporation_not_required": "the victim is not in require_victim_corporations",
    "victim_faction_not_required": "the victim is not in require_victim_factions",
    "victim_alliance_excluded": "the victim is in exclude_victim_alliances",
    "victim_corporation_excluded": "the victim is in exclude_victim_corporations",
    "victim_faction_excluded": "the victim is in exclude_victim_factions",
    "victim_ship_group_unknown": "require_victim_ship_groups is set; group unknown",
    "victim_ship_group_not_required": "the victim's ship is not in a required group",
    "victim_ship_type_not_required": "the victim's ship is not a required type",
    "attacker_ship_group_unknown": "require_attacker_ship_groups is set; groups unknown",
    "attacker_ship_group_not_required": "no attacker ship is in a required group",
    "attacker_ship_type_not_required": "no attacker ship is a required type",
    "attacker_weapon_type_not_required": "no attacker weapon is in require_attacker_weapon_types",
    "attacker_weapon_group_unknown": "require_attacker_weapon_groups is set; groups unknown",
    "attacker_weapon_group_not_required": "no attacker weapon is in a required group",
    "not_fleet_kill": "fewer than fleet_min_attackers from one alliance or corporation",
    "age_unknown": "max_age_seconds is set and the kill has no time",
    "older_than_max_age": "older than max_age_seconds",
    "jumps_unknown": "max_jumps is set and no stargate route from origin_system_id is known",
    "too_many_jumps": "more stargate jumps from origin_system_id than max_jumps",
    "distance_unknown": "max_distance_ly is set and a system's coordinates are unknown",
    "too_far": "farther from origin_system_id than max_distance_ly",
}
"""Every reason :func:`clause_refusal` gives and what it means (without the section prefix)."""


def clause_refusal(km: Killmail, f: KillClauses, facts: KillFacts, now: datetime) -> str | None:
    """The first clause (PARITY.md §11.1) the kill fails, or ``None``.

    Every clause is ANDed; a clause with an empty list passes. Exclude lists mean "none of
    these" (aa-killtracker's 2+-entry quirk, §11.2, is not copied). The clauses trackers
    brought (weapons, fleets, age, jumps and light-years) are checked last, so a filter set
    without them refuses for the same first reason as before they existed.
    """
    zkb = km.zkb
    if f.min_value_isk is not None:
        if km.total_value is None:
            return "value_unknown"
        if km.total_value < f.min_value_isk:
            return "below_min_value"
    for required, excluded, present, name in (
        (f.require_npc_kills, f.exclude_npc_kills, zkb.npc, "npc"),
        (f.require_war_kills, f.exclude_war_kills, km.war_id is not None, "war"),
        (f.require_solo_kills, f.exclude_solo_kills, _solo(km), "solo"),
    ):
        if required and not present:
            return f"{name}_required"
        if excluded and present:
            return f"{name}_excluded"
    reason = _space_refusal(f, facts)
    if reason is not None:
        return reason
    if f.require_regions:
        if facts.region_id is None:
            return "region_unknown"
        if facts.region_id not in f.require_regions:
            return "region_not_included"
    if f.require_constellations:
        if facts.constellation_id is None:
            return "constellation_unknown"
        if facts.constellation_id not in f.require_constellations:
            return "constellation_not_included"
    if f.require_systems and km.system_id not in f.require_systems:
        return "system_not_included"
    count = km.attacker_total
    if f.min_attackers is not None and count < f.min_attackers:
        return "too_few_attackers"
    if f.max_attackers is not None and count > f.max_attackers:
        return "too_many_attackers"
    return _party_refusal(km, f, facts) or _tracker_refusal(km, f, facts, now)


def _solo(km: Killmail) -> bool:
    """zKillboard's ``solo``, or a single attacker when it does not say; a kill by NPCs alone
    (a ship lost to one rat) is an NPC kill, never a solo one."""
    return km.zkb.solo or (km.attacker_total == 1 and not km.zkb.npc)


def _space_refusal(f: KillClauses, facts: KillFacts) -> str | None:
    if f.include_security_classes:
        answers = [facts.space.membership(SpaceClass(v)) for v in f.include_security_classes]
        if True not in answers:
            return "security_class_unknown" if None in answers else "security_class_not_included"
    if f.exclude_security_classes:
        answers = [facts.space.membership(SpaceClass(v)) for v in f.exclude_security_classes]
        if True in answers:
            return "security_class_excluded"
        if None in answers:
            return "security_class_unknown"
    return None


_PARTIES: Final = tuple(
    (
        f"{kind}_id",
        (
            f"require_attacker_{kind}s",
            f"exclude_attacker_{kind}s",
            f"require_victim_{kind}s",
            f"exclude_victim_{kind}s",
        ),
        (
            f"attacker_{kind}_not_required",
            f"attacker_{kind}_excluded",
            f"victim_{kind}_not_required",
            f"victim_{kind}_excluded",
        ),
    )
    for kind in ("alliance", "corporation", "faction")
)
"""Per party kind: the attribute, the clause lists (attacker required and excluded, victim
required and excluded) and the reason each gives; spelled out once, not per map and kill."""


def _party_refusal(km: Killmail, f: KillClauses, facts: KillFacts) -> str | None:
    attackers = km.attackers
    victim = km.victim
    for attr, lists, reasons in _PARTIES:
        require_attacker, exclude_attacker, require_victim, exclude_victim = (
            getattr(f, name) for name in lists
        )
        if require_attacker or exclude_attacker:
            attacker_ids = facts.attacker_ids(attr)  # the kill's, shared by every map
            if require_attacker and attacker_ids.isdisjoint(require_attacker):
                return reasons[0]
            if not attacker_ids.isdisjoint(exclude_attacker):
                return reasons[1]
        victim_id = getattr(victim, attr)
        if require_victim and victim_id not in require_victim:
            return reasons[2]
        if victim_id is not None and victim_id in exclude_victim:
            return reasons[3]
    if f.require_attacker_organizations_final_blow:
        final = km.final_blow()
        if final is None or not (
            final.alliance_id in f.require_attacker_alliances
            or final.corporation_id in f.require_attacker_corporations
        ):
            return "final_blow_not_required_org"
    if f.require_victim_ship_types and victim.ship_type_id not in f.require_victim_ship_types:
        return "victim_ship_type_not_required"
    if f.require_victim_ship_groups:
        group = facts.group_id(victim.ship_type_id)
        if group is None:
            return "victim_ship_group_unknown"
        if group not in f.require_victim_ship_groups:
            return "victim_ship_group_not_required"
    if f.require_attacker_ship_types and not any(
        a.ship_type_id in f.require_attacker_ship_types for a in attackers
    ):
        return "attacker_ship_type_not_required"
    if f.require_attacker_ship_groups:
        groups = [facts.group_id(a.ship_type_id) for a in attackers]
        if not any(g in f.require_attacker_ship_groups for g in groups if g is not None):
            return (
                "attacker_ship_group_unknown"
                if None in groups
                else "attacker_ship_group_not_required"
            )
    return None


def _tracker_refusal(km: Killmail, f: KillClauses, facts: KillFacts, now: datetime) -> str | None:
    """Weapons, fleets, age, then distance (the only clauses that may need an ESI call)."""
    attackers = km.attackers
    if f.require_attacker_weapon_types and not any(
        a.weapon_type_id in f.require_attacker_weapon_types for a in attackers
    ):
        return "attacker_weapon_type_not_required"
    if f.require_attacker_weapon_groups:
        groups = [facts.group_id(a.weapon_type_id) for a in attackers if a.weapon_type_id]
        if not any(g in f.require_attacker_weapon_groups for g in groups if g is not None):
            return (
                "attacker_weapon_group_unknown"
                if None in groups or not groups
                else "attacker_weapon_group_not_required"
            )
    if f.fleet_min_attackers is not None and _largest_group(km) < f.fleet_min_attackers:
        return "not_fleet_kill"
    if f.max_age_seconds is not None:
        if km.kill_time is None:
            return "age_unknown"
        if (now - km.kill_time).total_seconds() > f.max_age_seconds:
            return "older_than_max_age"
    origin = f.origin_system_id
    if origin is not None and f.max_jumps is not None:
        jumps = facts.jumps(origin)
        if jumps is None:
            return "jumps_unknown"
        if jumps > f.max_jumps:
            return "too_many_jumps"
    if origin is not None and f.max_distance_ly is not None:
        distance = facts.distance_ly(origin)
        if distance is None:
            return "distance_unknown"
        if distance > f.max_distance_ly:
            return "too_far"
    return None


def _largest_group(km: Killmail) -> int:
    """Most attackers from one alliance or one corporation (aa-killtracker's fleet test)."""
    counts: Counter[tuple[str, int]] = Counter()
    for attacker in km.attackers:
        if attacker.alliance_id is not None:
            counts["alliance", attacker.alliance_id] += 1
        if attacker.corporation_id is not None:
            counts["corporation", attacker.corporation_id] += 1
    return max(counts.values(), default=0)
