"""Killmails as the killstream sends them (PROTOCOLS.md §4), normalised.

wanderer-kills writes ``system_id`` and ``kill_time``; ESI and R2Z2 write ``solar_system_id`` and
``killmail_time``. ``zkb`` is camelCase. Every name and ticker is optional: what is missing is
resolved later through the cache facade.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

__all__ = ["Attacker", "Killmail", "Victim", "Zkb"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class Zkb(_Wire):
    """zKillboard metadata; keys arrive camelCase (``totalValue``) or snake_case."""

    location_id: int | None = Field(
        default=None, validation_alias=AliasChoices("locationID", "location_id")
    )
    hash: str | None = None
    total_value: float | None = Field(
        default=None, validation_alias=AliasChoices("totalValue", "total_value")
    )
    fitted_value: float | None = Field(
        default=None, validation_alias=AliasChoices("fittedValue", "fitted_value")
    )
    dropped_value: float | None = Field(
        default=None, validation_alias=AliasChoices("droppedValue", "dropped_value")
    )
    destroyed_value: float | None = Field(
        default=None, validation_alias=AliasChoices("destroyedValue", "destroyed_value")
    )
    points: int | None = None
    npc: bool = False
    solo: bool = False
    awox: bool = False
    labels: tuple[str, ...] = ()

    @field_validator("total_value", "fitted_value", "dropped_value", "destroyed_value")
    @classmethod
    def _isk(cls, value: float | None) -> float | None:
        """An ISK value that is not a finite number is unknown: pydantic reads the strings
        "NaN" and "inf" as floats, and a NaN compares false with every bound, so it passed any
        ``min_value_isk`` (as did an infinity)."""
        if value is None or not math.isfinite(value):
            return None
        return value


class _Party(_Wire):
    character_id: int | None = None
    corporation_id: int | None = None
    alliance_id: int | None = None
    faction_id: int | None = None
    ship_type_id: int | None = None
    character_name: str | None = None
    corporation_name: str | None = None
    corporation_ticker: str | None = None
    alliance_name: str | None = None
    alliance_ticker: str | None = None
    ship_name: str | None = None


class Victim(_Party):
    """The pilot (or structure) that lost a ship; ``character_id`` is null for structures."""

    damage_taken: int = 0


class Attacker(_Party):
    """One attacker; NPCs have no ``character_id``."""

    damage_done: int = 0
    final_blow: bool = False
    weapon_type_id: int | None = None
    security_status: float = 0.0


class Killmail(_Wire):
    """One killmail, whichever source it came from."""

    killmail_id: int = Field(gt=0)
    kill_time: datetime | None = Field(
        default=None, validation_alias=AliasChoices("kill_time", "killmail_time")
    )
    system_id: int = Field(gt=0, validation_alias=AliasChoices("system_id", "solar_system_id"))
    solar_system_name: str | None = None
    moon_id: int | None = None
    war_id: int | None = None
    attacker_count: int | None = None
    victim: Victim = Field(default_factory=Victim)
    attackers: tuple[Attacker, ...] = ()
    zkb: Zkb = Field(default_factory=Zkb)

    @field_validator("kill_time")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        """Every kill time in UTC: a time without an offset is UTC (as ESI and zKillboard mean
        it); one that cannot be expressed in UTC (year 1 or 9999 with an offset) is refused."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("kill_time is out of range once expressed in UTC") from None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Killmail:
        """Validate one killmail object as any source sends it."""
        return cls.model_validate(data)

    @property
    def total_value(self) -> float | None:
        """ISK value from zKillboard, if known."""
        return self.zkb.total_value

    @property
    def attacker_total(self) -> int:
        """Number of attackers: the sent count, else the length of the list."""
        return self.attacker_count if self.attacker_count is not None else len(self.attackers)

    def character_ids(self) -> Iterator[int]:
        """Victim and attacker character ids (NPCs and structures have none)."""
        if self.victim.character_id is not None:
            yield self.victim.character_id
        for attacker in self.attackers:
            if attacker.character_id is not None:
                yield attacker.character_id

    def final_blow(self) -> Attacker | None:
        """The attacker with the final blow, else the one that did most damage."""
        for attacker in self.attackers:
            if attacker.final_blow:
                return attacker
        return max(self.attackers, key=lambda a: a.damage_done, default=None)

    def top_damage(self) -> Attacker | None:
        """The attacker that did the most damage."""
        return max(self.attackers, key=lambda a: a.damage_done, default=None)
