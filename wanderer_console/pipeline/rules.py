"""Notification rules and kill channel routing (PARITY.md §2.2–2.3 with the §10 decisions).

Pure functions over settings, the tracking index and a clock reading: they say *whether* and
*where* to notify, and *why not* when they refuse, so the same code serves live processing,
replay and the ``kill`` diagnostic command.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Final, Literal, NamedTuple, cast

from wanderer_console.config.model import MapFilters, MapSettings, Settings
from wanderer_console.config.routing import Route
from wanderer_console.domain.eve import (
    is_wormhole_system,
)
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.notification import NotificationType
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.pipeline.clauses import CLAUSE_REASONS, clause_refusal
from wanderer_console.pipeline.kill_facts import ID_ONLY, KillFacts, SystemInfo
from wanderer_console.pipeline.priority import PrioritySystems

__all__ = [
    "REFUSAL_REASONS",
    "KillDecision",
    "KillJudgement",
    "Refusal",
    "TrackerVerdict",
    "decide_kill",
    "judge_kill",
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


class TrackerVerdict(NamedTuple):
    """What one named tracker (``[[maps.<key>.trackers]]``) of a map said about a kill."""

    tenant: str
    tracker: str
    reason: str | None = None
    """Why it does not match (a :data:`REFUSAL_REASONS` key); ``None``: it matches."""
    role: Role = "neutral"
    """As :attr:`KillDecision.role`, when it matches."""


class KillJudgement(NamedTuple):
    """Every map's verdict on a kill: its default feed and each of its named trackers."""

    decisions: list[KillDecision]
    """Maps whose default tracker (``[filters]`` and kill routes) notifies."""
    refusals: list[Refusal]
    """Why the other maps' default trackers do not (``*``: no map tracks the kill)."""
    trackers: list[TrackerVerdict]
    """The named trackers of every map the kill reached (matched or not)."""
    facts: KillFacts | None = None
    """What was looked up; its ``missing_*`` name what a distance clause still needs."""


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
    "default_tracker_off": "filters.default_tracker is off (only the map's trackers notify)",
    "tracker_disabled": "the tracker is switched off (enabled = false)",
    **{reason: f"filters/tracker: {text}" for reason, text in CLAUSE_REASONS.items()},
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
    priority: PrioritySystems | None = None,
) -> tuple[list[KillDecision], list[Refusal]]:
    """Which maps' default trackers notify this kill, where, and why the others do not
    (:func:`judge_kill` without the named trackers' verdicts)."""
    judgement = judge_kill(
        km,
        settings=settings,
        index=index,
        now=now,
        suppressed=suppressed,
        ignore_age=ignore_age,
        info=info,
        priority=priority,
    )
    return judgement.decisions, judgement.refusals


_WIDE: dict[int, tuple[Settings, frozenset[str]]] = {}


def _wide_maps(settings: Settings) -> frozenset[str]:
    """Maps with an enabled ``scope = "all"`` tracker (they look at every kill), per settings
    object: read for every kill, worked out once per reload."""
    cached = _WIDE.get(id(settings))
    if cached is not None and cached[0] is settings:
        return cached[1]
    wide = frozenset(
        tenant
        for tenant, map_settings in settings.maps.items()
        if any(t.enabled and t.scope == "all" for t in map_settings.trackers)
    )
    _WIDE.clear()  # only the running settings matter; keeping it holds them alive
    _WIDE[id(settings)] = (settings, wide)
    return wide


def judge_kill(
    km: Killmail,
    *,
    settings: Settings,
    index: TrackingIndex,
    now: datetime,
    suppressed: bool,
    ignore_age: bool = False,
    info: SystemInfo | None = None,
    priority: PrioritySystems | None = None,
) -> KillJudgement:
    """Which maps notify this kill, through which of their trackers, and why the others do not.

    A map's default tracker is its ``[filters]`` with its kill routes (PARITY.md §2.2-2.3); its
    named trackers (``[[maps.<key>.trackers]]``) each apply their own clauses. ``info`` answers
    static-universe questions (region, security, wormhole class, ship groups; routes and
    positions when it is also a :class:`~.kill_facts.RouteInfo`) for the clauses that need them;
    without it only what the ids and the maps' static info tell is known, and a clause that needs
    an unknown fact does not match. ``priority`` holds the operators' priority systems (the
    store's), on top of each map's own ``filters.priority_systems`` and ``priority_system_names``.
    """
    involved = _involved_characters(km)
    tracked = index.maps_for_characters(involved)
    tracked |= index.maps_for_system(km.system_id)
    candidates = tracked | _wide_maps(settings) if settings.maps else tracked
    decisions: list[KillDecision] = []
    refusals: list[Refusal] = []
    trackers: list[TrackerVerdict] = []
    if not candidates:
        return KillJudgement(decisions, [Refusal("*", "untracked")], trackers)
    gate: str | None = None
    if suppressed:
        gate = "startup_suppression"
    elif not ignore_age and km.kill_time is not None:
        age = (now - km.kill_time).total_seconds()
        if age > settings.console.max_killmail_age_seconds:
            gate = "too_old"
    if gate is not None:
        for tenant in sorted(candidates):
            refusals.append(Refusal(tenant, gate))
            trackers += _all_refused(settings, tenant, gate)
        return KillJudgement(decisions, refusals, trackers)
    facts: KillFacts | None = None  # made for the first map that looks further
    for tenant in sorted(candidates):
        map_settings = settings.maps.get(tenant)
        if map_settings is None or not map_settings.enabled:
            refusals.append(Refusal(tenant, "map_disabled"))
            trackers += _all_refused(settings, tenant, "map_disabled")
            continue
        if not flags_allow(settings, map_settings, NotificationType.KILL):
            refusals.append(Refusal(tenant, "disabled"))
            trackers += _all_refused(settings, tenant, "disabled")
            continue
        if facts is None:
            facts = KillFacts(km, index, info or ID_ONLY)
        if tenant not in tracked:
            refusals.append(Refusal(tenant, "untracked"))
        elif not map_settings.filters.default_tracker:
            refusals.append(Refusal(tenant, "default_tracker_off"))
        else:
            decision = _decide_for_map(
                km, tenant, map_settings, index, involved, facts, now, priority
            )
            if isinstance(decision, Refusal):
                refusals.append(decision)
            else:
                decisions.append(decision)
        if map_settings.trackers:
            trackers += _judge_trackers(km, tenant, map_settings, index, involved, facts, now)
    return KillJudgement(decisions, refusals, trackers, facts)


def _all_refused(settings: Settings, tenant: str, reason: str) -> list[TrackerVerdict]:
    map_settings = settings.maps.get(tenant)
    if map_settings is None:
        return []
    return [TrackerVerdict(tenant, t.name, reason) for t in map_settings.trackers]


def _tracked_characters(
    filters: MapFilters, tenant: str, index: TrackingIndex, involved: set[int]
) -> set[int]:
    """The kill's characters the map tracks, less its ``character_exclude_list``."""
    # In C (the view's intersection): a kill of 30 pilots notifying 229 maps asked 6,870
    # times, one by one, in Python.
    found = index.map(tenant).characters.keys() & involved
    if found and filters.character_exclude_list:
        found.difference_update(filters.character_exclude_list)
    return found


def _role(km: Killmail, tracked_chars: set[int]) -> Role:
    victim = km.victim.character_id
    if victim is not None and victim in tracked_chars:
        return "loss"
    return "kill" if tracked_chars else "neutral"


def _judge_trackers(
    km: Killmail,
    tenant: str,
    map_settings: MapSettings,
    index: TrackingIndex,
    involved: set[int],
    facts: KillFacts,
    now: datetime,
) -> list[TrackerVerdict]:
    """Each named tracker's verdict: switched on, in its scope, outside the map's excluded
    systems, and every clause of its own passes."""
    filters = map_settings.filters
    tracked_chars = _tracked_characters(filters, tenant, index, involved)
    in_map = bool(tracked_chars) or km.system_id in index.map(tenant).systems
    role = _role(km, tracked_chars)
    out: list[TrackerVerdict] = []
    for tracker in map_settings.trackers:
        reason: str | None
        if not tracker.enabled:
            reason = "tracker_disabled"
        elif km.system_id in filters.system_exclude_list:
            reason = "system_excluded"
        elif tracker.scope == "map" and not in_map:
            reason = "untracked"
        else:
            reason = clause_refusal(km, tracker, facts, now)
        out.append(TrackerVerdict(tenant, tracker.name, reason, role))
    return out


def _corporation_focus(km: Killmail, focus: Sequence[int]) -> bool:
    """The victim's or an attacker's corporation is one the map focuses on (none: no walk of
    the attackers, once per map a kill notifies)."""
    if not focus:
        return False
    wanted = set(focus)
    return km.victim.corporation_id in wanted or any(
        a.corporation_id in wanted for a in km.attackers
    )


def _decide_for_map(
    km: Killmail,
    tenant: str,
    map_settings: MapSettings,
    index: TrackingIndex,
    involved: set[int],
    facts: KillFacts,
    now: datetime,
    operators: PrioritySystems | None = None,
) -> KillDecision | Refusal:
    """One map's default tracker's decision on a kill whose notifications it has switched on."""
    filters = map_settings.filters
    if filters.wormhole_only and not is_wormhole_system(km.system_id):
        return Refusal(tenant, "wormhole_only")
    if km.system_id in filters.system_exclude_list:
        return Refusal(tenant, "system_excluded")
    tracked_chars = _tracked_characters(filters, tenant, index, involved)
    has_system = km.system_id in index.map(tenant).systems
    if not has_system and not tracked_chars:
        return Refusal(tenant, "character_excluded")
    # A system match can be withdrawn by the space and priority switches; a tracked character
    # still notifies (through the character-kill channel).
    # Names are looked up only when a map lists priority systems by name (hot path).
    priority = (
        km.system_id in filters.priority_systems
        or (
            bool(filters.priority_system_names)
            and is_priority_system(filters, km.system_id, facts.names)
        )
        or (
            operators is not None
            and bool(operators)
            and operators.matches(km.system_id, facts.names)
        )
    )
    if has_system and not filters.track_kspace and not is_wormhole_system(km.system_id):
        has_system = False
        if not tracked_chars:
            return Refusal(tenant, "kspace_not_tracked")
    if has_system and filters.priority_systems_only and not priority:
        has_system = False
        if not tracked_chars:
            return Refusal(tenant, "not_priority_system")
    reason = clause_refusal(km, filters, facts, now)
    if reason is not None:
        return Refusal(tenant, reason)
    role = _role(km, tracked_chars)
    # Routing, first match wins (PARITY.md §2.3).
    route: Route
    if _corporation_focus(km, filters.corporation_kill_focus) or (has_system and tracked_chars):
        route = "character_kill"
    elif has_system:
        route = "system_kill"
    else:
        route = "character_kill"
    mention_here = priority or (filters.fallback_to_here and route == "system_kill")
    return KillDecision(tenant, route, role, mention_here)
