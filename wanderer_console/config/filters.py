"""Per-map kill filters (PARITY.md §2, §10 and the aa-killtracker clauses of §11).

Every clause is ANDed; an empty filter set passes everything. Invalid combinations are rejected
here so ``config check`` reports them with their file, line and key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from wanderer_console.config.section import LIVE, Section
from wanderer_console.domain.eve import is_kspace_system, is_wormhole_system
from wanderer_console.domain.ship_groups import SHIP_GROUPS

__all__ = ["KillClauses", "MapFilters", "SpaceClassName", "clause_problems"]


def _known_groups(groups: list[int]) -> list[int]:
    unknown = [group for group in groups if group not in SHIP_GROUPS]
    if unknown:
        listed = ", ".join(str(group) for group in unknown)
        raise ValueError(
            f"unknown ship group {listed} (not a ship, structure, fighter or deployable group;"
            " docs/trackers.md lists them)"
        )
    return groups


def _reachable_origin(system_id: int | None) -> int | None:
    if system_id is None:
        return None
    if is_wormhole_system(system_id):
        raise ValueError(
            f"{system_id} is a J-space system: no stargate route or jump range reaches it"
        )
    if not is_kspace_system(system_id):
        raise ValueError(f"{system_id} is not a k-space solar system id (30000000-30999999)")
    return system_id


ShipGroups = Annotated[list[int], AfterValidator(_known_groups)]
"""Ship group ids, each one the SDE table knows."""
OriginSystem = Annotated[int | None, AfterValidator(_reachable_origin)]
"""A k-space system id (stargates and jump ranges start there)."""

SpaceClassName = Literal[
    "high",
    "low",
    "null",
    "pochven",
    "wormhole",
    "c1",
    "c2",
    "c3",
    "c4",
    "c5",
    "c6",
    "thera",
    "c13",
    "shattered",
    "drifter",
]
"""Values of :class:`wanderer_console.domain.eve.SpaceClass` (kept in step by a test)."""


class KillClauses(Section):
    """The kill clauses a map's default feed and each of its trackers share (PARITY.md §11.1).

    All are ANDed; an empty list or an unset bound passes everything. Applied live.
    """

    # -- aa-killtracker clauses (PARITY.md §11), all ANDed; empty means "any" ---------------------
    min_value_isk: Annotated[float | None, LIVE] = Field(default=None, ge=0)
    """Minimum zKillboard total value in ISK; a kill without a value does not match."""
    require_npc_kills: Annotated[bool, LIVE] = False
    """Only kills zKillboard marks as NPC kills."""
    exclude_npc_kills: Annotated[bool, LIVE] = False
    """No kills zKillboard marks as NPC kills."""
    require_war_kills: Annotated[bool, LIVE] = False
    """Only kills with a ``war_id``."""
    exclude_war_kills: Annotated[bool, LIVE] = False
    """No kills with a ``war_id``."""
    require_solo_kills: Annotated[bool, LIVE] = False
    """Only solo kills (zKillboard ``solo``, or a single attacker in a kill that is not an
    NPC kill)."""
    exclude_solo_kills: Annotated[bool, LIVE] = False
    """No solo kills."""
    include_security_classes: Annotated[list[SpaceClassName], LIVE] = Field(default_factory=list)
    """Only kills in one of these classes; unknown class means no match."""
    exclude_security_classes: Annotated[list[SpaceClassName], LIVE] = Field(default_factory=list)
    """No kills in any of these classes; unknown class means no match."""
    require_regions: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Only kills in these regions (unknown region: no match)."""
    require_constellations: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Only kills in these constellations (unknown constellation: no match)."""
    require_systems: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Only kills in these systems."""
    min_attackers: Annotated[int | None, LIVE] = Field(default=None, ge=1)
    """At least this many attackers."""
    max_attackers: Annotated[int | None, LIVE] = Field(default=None, ge=1)
    """At most this many attackers."""
    require_attacker_alliances: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker is in one of these alliances."""
    require_attacker_corporations: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker is in one of these corporations."""
    require_attacker_factions: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker is in one of these factions."""
    exclude_attacker_alliances: Annotated[list[int], LIVE] = Field(default_factory=list)
    """No attacker is in any of these alliances."""
    exclude_attacker_corporations: Annotated[list[int], LIVE] = Field(default_factory=list)
    """No attacker is in any of these corporations."""
    exclude_attacker_factions: Annotated[list[int], LIVE] = Field(default_factory=list)
    """No attacker is in any of these factions."""
    require_attacker_organizations_final_blow: Annotated[bool, LIVE] = False
    """The final blow comes from a required attacker alliance or corporation."""
    require_victim_alliances: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim is in one of these alliances."""
    require_victim_corporations: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim is in one of these corporations."""
    require_victim_factions: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim is in one of these factions."""
    exclude_victim_alliances: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim is in none of these alliances."""
    exclude_victim_corporations: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim is in none of these corporations."""
    exclude_victim_factions: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim is in none of these factions."""
    require_victim_ship_groups: Annotated[ShipGroups, LIVE] = Field(default_factory=list)
    """The victim's ship is in one of these groups (unknown group: no match)."""
    require_victim_ship_types: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim's ship is one of these types."""
    require_attacker_ship_groups: Annotated[ShipGroups, LIVE] = Field(default_factory=list)
    """Some attacker flies a ship in one of these groups (unknown group: no match)."""
    require_attacker_ship_types: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker flies one of these ship types."""

    # -- the clauses trackers brought (issue 22): distance, weapons, fleets, age -------------------
    origin_system_id: Annotated[OriginSystem, LIVE] = None
    """The home system ``max_jumps`` and ``max_distance_ly`` count from (a k-space system)."""
    max_jumps: Annotated[int | None, LIVE] = Field(default=None, ge=0)
    """At most this many stargate jumps from ``origin_system_id`` (ESI route, shortest; no
    route, e.g. in J-space, means no match)."""
    max_distance_ly: Annotated[float | None, LIVE] = Field(default=None, gt=0)
    """At most this many light-years from ``origin_system_id`` (capital ranges; from the
    systems' ESI coordinates; unknown means no match)."""
    require_attacker_weapon_types: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker used one of these weapon types (``weapon_type_id``)."""
    require_attacker_weapon_groups: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker used a weapon of one of these inventory groups (unknown group: no match)."""
    fleet_min_attackers: Annotated[int | None, LIVE] = Field(default=None, ge=2)
    """A fleet kill: at least this many attackers from one alliance or one corporation."""
    max_age_seconds: Annotated[float | None, LIVE] = Field(default=None, gt=0)
    """Only kills at most this old when they are decided (on top of
    ``console.max_killmail_age_seconds``)."""

    @model_validator(mode="after")
    def _consistent(self) -> KillClauses:
        problems = [
            f"{a} and {b} are both set; choose one"
            for a, b in (
                ("require_npc_kills", "exclude_npc_kills"),
                ("require_war_kills", "exclude_war_kills"),
                ("require_solo_kills", "exclude_solo_kills"),
            )
            if getattr(self, a) and getattr(self, b)
        ]
        if (
            self.min_attackers is not None
            and self.max_attackers is not None
            and self.min_attackers > self.max_attackers
        ):
            problems.append(
                f"min_attackers ({self.min_attackers}) is greater than"
                f" max_attackers ({self.max_attackers})"
            )
        pairs: list[tuple[str, str]] = [
            (f"require_{who}_{what}", f"exclude_{who}_{what}")
            for who in ("attacker", "victim")
            for what in ("alliances", "corporations", "factions")
        ]
        pairs.append(("include_security_classes", "exclude_security_classes"))
        for a, b in pairs:
            both = sorted(set(getattr(self, a)) & set(getattr(self, b)), key=str)
            if both:
                listed = ", ".join(str(value) for value in both)
                problems.append(f"{listed} in both {a} and {b}")
        if self.require_attacker_organizations_final_blow and not (
            self.require_attacker_alliances or self.require_attacker_corporations
        ):
            problems.append(
                "require_attacker_organizations_final_blow needs require_attacker_alliances"
                " or require_attacker_corporations"
            )
        if {"high", "low", "null", "pochven", "wormhole"} <= set(self.exclude_security_classes):
            problems.append("exclude_security_classes excludes every kind of space")
        problems += clause_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class MapFilters(KillClauses):
    """Per-map kill filters and routing lists; the rules read them at every kill (all live)."""

    wormhole_only: Annotated[bool, LIVE] = False
    """Only notify kills in J-space."""
    corporation_kill_focus: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Kills involving these corporations go to the character-kill channel."""
    system_exclude_list: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Never notify kills in these systems."""
    character_exclude_list: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Characters never counted as tracked."""

    # -- space and priority (the notifier's documented flags, PARITY.md §2.4 / §10) ---------------
    track_kspace: Annotated[bool, LIVE] = True
    """Notify kills in tracked k-space systems; off: J-space system kills only (characters too)."""
    priority_systems: Annotated[list[int], LIVE] = Field(default_factory=list)
    """System ids whose kills (and new-system notifications) carry ``@here``."""
    priority_system_names: Annotated[list[str], LIVE] = Field(default_factory=list)
    """System names (case-insensitive) treated like ``priority_systems``."""
    priority_systems_only: Annotated[bool, LIVE] = False
    """Notify tracked-system kills only in priority systems (character kills still notify)."""
    fallback_to_here: Annotated[bool, LIVE] = False
    """System-kill notifications carry ``@here`` (the notifier's voice-mention fallback)."""

    # -- trackers (issue 22) -------------------------------------------------------------------
    default_tracker: Annotated[bool, LIVE] = True
    """The map's own kill feed (these filters, the map's kill routes), shown as its ``default``
    tracker; off: only the map's ``[[maps.<key>.trackers]]`` notify kills."""

    @model_validator(mode="after")
    def _priority(self) -> MapFilters:
        if self.priority_systems_only and not (self.priority_systems or self.priority_system_names):
            raise ValueError(
                "priority_systems_only needs priority_systems or priority_system_names"
                " (otherwise no system kill is ever notified)"
            )
        return self


def clause_problems(clauses: KillClauses) -> list[str]:
    """What is wrong across the clauses trackers brought: a bound without an origin."""
    return [
        f"{bound} needs origin_system_id"
        for bound in ("max_jumps", "max_distance_ly")
        if getattr(clauses, bound) is not None and clauses.origin_system_id is None
    ]
