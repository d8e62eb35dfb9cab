"""Per-map kill filters (PARITY.md §2, §10 and the aa-killtracker clauses of §11).

Every clause is ANDed; an empty filter set passes everything. Invalid combinations are rejected
here so ``config check`` reports them with their file, line and key.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from wanderer_console.config.section import LIVE, Section

__all__ = ["MapFilters", "SpaceClassName"]

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


class MapFilters(Section):
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
    """Only solo kills (zKillboard ``solo`` or a single attacker)."""
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
    require_victim_ship_groups: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim's ship is in one of these groups (unknown group: no match)."""
    require_victim_ship_types: Annotated[list[int], LIVE] = Field(default_factory=list)
    """The victim's ship is one of these types."""
    require_attacker_ship_groups: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker flies a ship in one of these groups (unknown group: no match)."""
    require_attacker_ship_types: Annotated[list[int], LIVE] = Field(default_factory=list)
    """Some attacker flies one of these ship types."""

    @model_validator(mode="after")
    def _consistent(self) -> MapFilters:
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
        if self.priority_systems_only and not (self.priority_systems or self.priority_system_names):
            problems.append(
                "priority_systems_only needs priority_systems or priority_system_names"
                " (otherwise no system kill is ever notified)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self
