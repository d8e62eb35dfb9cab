"""Notification rules and kill channel routing (PARITY.md §2.2–2.3 with the §10 decisions).

Pure functions over settings, the tracking index and a clock reading: they say *whether* and
*where* to notify, and *why not* when they refuse, so the same code serves live processing,
replay and the ``kill`` diagnostic command.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from operator import attrgetter
from typing import Final, Literal, NamedTuple, cast

from wanderer_console.config.model import MapFilters, MapSettings, Settings
from wanderer_console.config.routing import Route
from wanderer_console.domain.eve import (
    SpaceClass,
    is_wormhole_system,
)
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.notification import NotificationType
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.pipeline.kill_facts import ID_ONLY, KillFacts, SystemInfo

__all__ = [
    "REFUSAL_REASONS",
    "KillDecision",
    "Refusal",
    "decide_kill",
    "flags_allow",
    "is_priority_system",
]

Role = Literal["kill", "loss", "neutral"]


class Refusal(NamedTuple):
    """Why a candidate notification was not sent (a metric label and an operator message).

    Named tuples rather than frozen dataclasses: one or more are made for every kill, and a
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``.
    """

    tenant: str
    reason: str


class KillDecision(NamedTuple):
    """A kill one map will be told about, and through which channel."""

    tenant: str
    route: Route
    role: Role
    """``loss`` when a tracked character died, ``kill`` when one was an attacker."""
    mention_here: bool = False
    """Start the message with ``@here``: a priority system, or ``fallback_to_here`` on a
    system-kill notification."""


REFUSAL_REASONS: Final[dict[str, str]] = {
    "untracked": "no map tracks the system or any character on the kill",
    "startup_suppression": "inside the start-up suppression window",
    "too_old": "older than console.max_killmail_age_seconds",
    "map_disabled": "the map is disabled or not configured",
    "disabled": "kill notifications are switched off (global or map flags)",
    "wormhole_only": "filters.wormhole_only and the kill is not in J-space",
    "system_excluded": "the system is in filters.system_exclude_list",
    "character_excluded": "only characters in filters.character_exclude_list are tracked",
    "kspace_not_tracked": "filters.track_kspace is off and only a k-space system matched",
    "not_priority_system": "filters.priority_systems_only and the system is not a priority one",
    "value_unknown": "filters.min_value_isk is set and the kill has no value",
    "below_min_value": "worth less than filters.min_value_isk",
    "npc_required": "filters.require_npc_kills and not an NPC kill",
    "npc_excluded": "filters.exclude_npc_kills and an NPC kill",
    "war_required": "filters.require_war_kills and not a war kill",
    "war_excluded": "filters.exclude_war_kills and a war kill",
    "solo_required": "filters.require_solo_kills and not a solo kill",
    "solo_excluded": "filters.exclude_solo_kills and a solo kill",
    "security_class_unknown": "a security-class filter is set and the system's class is unknown",
    "security_class_not_included": "not in filters.include_security_classes",
    "security_class_excluded": "in filters.exclude_security_classes",
    "region_unknown": "filters.require_regions is set and the region is unknown",
    "region_not_included": "not in filters.require_regions",
    "constellation_unknown": "filters.require_constellations is set; constellation unknown",
    "constellation_not_included": "not in filters.require_constellations",
    "system_not_included": "not in filters.require_systems",
    "too_few_attackers": "fewer attackers than filters.min_attackers",
    "too_many_attackers": "more attackers than filters.max_attackers",
    "attacker_alliance_not_required": "no attacker in filters.require_attacker_alliances",
    "attacker_corporation_not_required": "no attacker in filters.require_attacker_corporations",
    "attacker_faction_not_required": "no attacker in filters.require_attacker_factions",
    "attacker_alliance_excluded": "an attacker is in filters.exclude_attacker_alliances",
    "attacker_corporation_excluded": "an attacker is in filters.exclude_attacker_corporations",
    "attacker_faction_excluded": "an attacker is in filters.exclude_attacker_factions",
    "final_blow_not_required_org": "the final blow is not from a required attacker organisation",
    "victim_alliance_not_required": "the victim is not in filters.require_victim_alliances",
    "victim_corporation_not_required": "the victim is not in filters.require_victim_corporations",
    "victim_faction_not_required": "the victim is not in filters.require_victim_factions",
    "victim_alliance_excluded": "the victim is in filters.exclude_victim_alliances",
    "victim_corporation_excluded": "the victim is in filters.exclude_victim_corporations",
    "victim_faction_excluded": "the victim is in filters.exclude_victim_factions",
    "victim_ship_group_unknown": "filters.require_victim_ship_groups is set; group unknown",
    "victim_ship_group_not_required": "the victim's ship is not in a required group",
    "victim_ship_type_not_required": "the victim's ship is not a required type",
    "attacker_ship_group_unknown": "filters.require_attacker_ship_groups is set; groups unknown",
    "attacker_ship_group_not_required": "no attacker ship is in a required group",
    "attacker_ship_type_not_required": "no attacker ship is a required type",
}
"""Every refusal reason (the metric label) and what it means (shown by the ``kill`` command)."""


def flags_allow(settings: Settings, map_settings: MapSettings, kind: NotificationType) -> bool:
    """Global master and type flag AND the map's master and type flag."""
    # ``kind`` is a StrEnum, so it is already the flag's name (``.value`` costs an enum
    # descriptor call on every kill).
    return settings.notifications.allows(kind) and map_settings.notifications.allows(kind)


def is_priority_system(filters: MapFilters, system_id: int, names: Iterable[str | None]) -> bool:
    """A system listed in ``priority_systems`` by id, or in ``priority_system_names`` by any of
    ``names`` (EVE name, map labels), compared case-insensitively."""
    if system_id in filters.priority_systems:
        return True
    wanted = {name.casefold() for name in filters.priority_system_names}
    return bool(wanted) and any(name and name.casefold() in wanted for name in names)


_CHARACTER_ID: Final = attrgetter("character_id")


def _involved_characters(km: Killmail) -> set[int]:
    """The victim's and attackers' character ids (NPCs and structures have none).

    ``map`` with an attribute getter walks the attackers in C: this runs for every kill, and a
    set comprehension with a condition cost about three times as much on a large fight.
    """
    ids: set[int | None] = set(map(_CHARACTER_ID, km.attackers))
    ids.add(km.victim.character_id)
    ids.discard(None)
    return cast("set[int]", ids)


def decide_kill(
    km: Killmail,
    *,
    settings: Settings,
    index: TrackingIndex,
    now: datetime,
    suppressed: bool,
    ignore_age: bool = False,
    info: SystemInfo | None = None,
) -> tuple[list[KillDecision], list[Refusal]]:
    """Which maps notify this kill, where, and why the others do not.

    ``info`` answers static-universe questions (region, security, wormhole class, ship groups)
    for the filters that need them; without it only what the ids and the maps' static info tell
    is known, and a filter that needs an unknown fact does not match.
    """
    involved = _involved_characters(km)
    candidates = index.maps_for_characters(involved)
    candidates |= index.maps_for_system(km.system_id)
    decisions: list[KillDecision] = []
    refusals: list[Refusal] = []
    if not candidates:
        return decisions, [Refusal("*", "untracked")]
    if suppressed:
        return decisions, [Refusal(t, "startup_suppression") for t in sorted(candidates)]
    if not ignore_age and km.kill_time is not None:
        age = (now - km.kill_time).total_seconds()
        if age > settings.console.max_killmail_age_seconds:
            return decisions, [Refusal(t, "too_old") for t in sorted(candidates)]
    facts: KillFacts | None = None  # made for the first map that looks further
    for tenant in sorted(candidates):
        map_settings = settings.maps.get(tenant)
        if map_settings is None or not map_settings.enabled:
            refusals.append(Refusal(tenant, "map_disabled"))
            continue
        if not flags_allow(settings, map_settings, NotificationType.KILL):
            refusals.append(Refusal(tenant, "disabled"))
            continue
        if facts is None:
            facts = KillFacts(km, index, info or ID_ONLY)
        decision = _decide_for_map(km, tenant, map_settings, index, involved, facts)
        if isinstance(decision, Refusal):
            refusals.append(decision)
        else:
            decisions.append(decision)
    return decisions, refusals


def _decide_for_map(
    km: Killmail,
    tenant: str,
    map_settings: MapSettings,
    index: TrackingIndex,
    involved: set[int],
    facts: KillFacts,
) -> KillDecision | Refusal:
    """One map's decision on a kill whose notifications it has switched on."""
    filters = map_settings.filters
    if filters.wormhole_only and not is_wormhole_system(km.system_id):
        return Refusal(tenant, "wormhole_only")
    if km.system_id in filters.system_exclude_list:
        return Refusal(tenant, "system_excluded")
    tracking = index.map(tenant)
    excluded = set(filters.character_exclude_list)
    tracked_chars = {c for c in involved if c in tracking.characters and c not in excluded}
    has_system = km.system_id in tracking.systems
    if not has_system and not tracked_chars:
        return Refusal(tenant, "character_excluded")
    # A system match can be withdrawn by the space and priority switches; a tracked character
    # still notifies (through the character-kill channel).
    # Names are looked up only when a map lists priority systems by name (hot path).
    priority = km.system_id in filters.priority_systems or (
        bool(filters.priority_system_names)
        and is_priority_system(filters, km.system_id, facts.names)
    )
    if has_system and not filters.track_kspace and not is_wormhole_system(km.system_id):
        has_system = False
        if not tracked_chars:
            return Refusal(tenant, "kspace_not_tracked")
    if has_system and filters.priority_systems_only and not priority:
        has_system = False
        if not tracked_chars:
            return Refusal(tenant, "not_priority_system")
    reason = _filter_refusal(km, filters, facts)
    if reason is not None:
        return Refusal(tenant, reason)
    victim = km.victim.character_id
    role: Role = "neutral"
    if victim is not None and victim in tracked_chars:
        role = "loss"
    elif tracked_chars:
        role = "kill"
    focus = set(filters.corporation_kill_focus)
    corps = {km.victim.corporation_id, *(a.corporation_id for a in km.attackers)}
    # Routing, first match wins (PARITY.md §2.3).
    route: Route
    if (focus and corps & focus) or (has_system and tracked_chars):
        route = "character_kill"
    elif has_system:
        route = "system_kill"
    else:
        route = "character_kill"
    mention_here = priority or (filters.fallback_to_here and route == "system_kill")
    return KillDecision(tenant, route, role, mention_here)


def _filter_refusal(km: Killmail, f: MapFilters, facts: KillFacts) -> str | None:
    """The first aa-killtracker clause (PARITY.md §11.1) the kill fails, or ``None``.

    Every clause is ANDed; a clause with an empty list passes. Exclude lists mean "none of
    these" (aa-killtracker's 2+-entry quirk, §11.2, is not copied).
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
        (f.require_solo_kills, f.exclude_solo_kills, zkb.solo or km.attacker_total == 1, "solo"),
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
    return _party_refusal(km, f, facts)


def _space_refusal(f: MapFilters, facts: KillFacts) -> str | None:
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


def _party_refusal(km: Killmail, f: MapFilters, facts: KillFacts) -> str | None:
    attackers = km.attackers
    victim = km.victim
    for kind in ("alliance", "corporation", "faction"):
        attr = f"{kind}_id"
        attacker_ids = {getattr(a, attr) for a in attackers} - {None}
        required = set(getattr(f, f"require_attacker_{kind}s"))
        if required and not attacker_ids & required:
            return f"attacker_{kind}_not_required"
        if attacker_ids & set(getattr(f, f"exclude_attacker_{kind}s")):
            return f"attacker_{kind}_excluded"
        victim_id = getattr(victim, attr)
        required = set(getattr(f, f"require_victim_{kind}s"))
        if required and victim_id not in required:
            return f"victim_{kind}_not_required"
        if victim_id is not None and victim_id in getattr(f, f"exclude_victim_{kind}s"):
            return f"victim_{kind}_excluded"
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
