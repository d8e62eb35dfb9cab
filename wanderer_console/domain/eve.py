"""EVE id ranges and system classes (PROTOCOLS.md §6), pure functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "POCHVEN_REGION_ID",
    "THERA_SYSTEM_ID",
    "SecurityClass",
    "SpaceClass",
    "SpaceFacts",
    "classes_for_class_id",
    "displayed_security",
    "is_character_id",
    "is_kspace_system",
    "is_wormhole_system",
    "security_class",
    "space_facts",
    "wormhole_class_for_region",
]

_WORMHOLE_FIRST = 31_000_000
_WORMHOLE_LAST = 31_999_999
_KSPACE_FIRST = 30_000_000
_KSPACE_LAST = 30_999_999
THERA_SYSTEM_ID = 31_000_005


class SecurityClass(StrEnum):
    """Security band of a solar system."""

    HIGH = "high"
    LOW = "low"
    NULL = "null"
    WORMHOLE = "wormhole"
    UNKNOWN = "unknown"


def is_wormhole_system(system_id: int) -> bool:
    """J-space (including Thera and shattered systems): ids 31,000,000–31,999,999."""
    return _WORMHOLE_FIRST <= system_id <= _WORMHOLE_LAST


def is_kspace_system(system_id: int) -> bool:
    """Known space: ids 30,000,000–30,999,999."""
    return _KSPACE_FIRST <= system_id <= _KSPACE_LAST


def is_character_id(value: int) -> bool:
    """Player character ids (modern ranges plus pre-2010 ids, which cannot be told apart)."""
    return 90_000_000 <= value <= 97_999_999 or 100_000_000 <= value <= 2_129_999_999


def displayed_security(security_status: float) -> float:
    """A system's security as the EVE client shows it: rounded half up to one decimal, except
    that a positive security under 0.05 shows as 0.1 (the system is low-sec, not null-sec).

    Python's ``round`` would not do: it rounds half to even on the binary value (0.25 to 0.2,
    where the client shows 0.3) and takes 0.03 to 0.0, a null-sec band for a low-sec system.
    """
    if 0.0 < security_status < 0.05:
        return 0.1
    return math.floor(security_status * 10 + 0.5) / 10 + 0.0  # + 0.0 turns -0.0 into 0.0


def security_class(system_id: int, security_status: float | None) -> SecurityClass:
    """Band of a system from its id and ESI ``security_status`` (rounded as the client shows
    it, :func:`displayed_security`): 0.5 and up high-sec, 0.1 to 0.4 low-sec, else null-sec."""
    if is_wormhole_system(system_id):
        return SecurityClass.WORMHOLE
    if security_status is None:
        return SecurityClass.UNKNOWN
    rounded = displayed_security(security_status)
    if rounded >= 0.5:
        return SecurityClass.HIGH
    if rounded > 0.0:
        return SecurityClass.LOW
    return SecurityClass.NULL


# -- space classes (kill filters) ----------------------------------------------------------------


class SpaceClass(StrEnum):
    """What a kill filter can name: a security band, a J-space class or a special kind of space.

    One system belongs to several: a C3 is ``wormhole`` and ``c3``; a C13 is ``wormhole``,
    ``c13`` and ``shattered``; Thera is ``wormhole`` and ``thera``.
    """

    HIGH = "high"
    LOW = "low"
    NULL = "null"
    POCHVEN = "pochven"
    WORMHOLE = "wormhole"
    C1 = "c1"
    C2 = "c2"
    C3 = "c3"
    C4 = "c4"
    C5 = "c5"
    C6 = "c6"
    THERA = "thera"
    C13 = "c13"
    SHATTERED = "shattered"
    DRIFTER = "drifter"


POCHVEN_REGION_ID = 10_000_070
"""Pochven (Triglavian space): k-space ids, security -1.0, its own class (25)."""

# Wormhole class ids, as the SDE (``wormholeClassID``) and Wanderer's static info
# (``system_class``) number them.
CLASS_C1, CLASS_C6 = 1, 6
CLASS_HIGH, CLASS_LOW, CLASS_NULL = 7, 8, 9
CLASS_THERA = 12
CLASS_C13 = 13
CLASS_DRIFTER_FIRST, CLASS_DRIFTER_LAST = 14, 18  # Sentinel, Barbican, Vidette, Conflux, Redoubt
CLASS_POCHVEN = 25

_WORMHOLE_REGION_CLASSES: Final[tuple[tuple[int, int, int], ...]] = (
    # (first region id, last region id, class id); J-space regions are named by class letter.
    (11_000_001, 11_000_003, 1),  # A-R00001 … A-R00003: C1
    (11_000_004, 11_000_008, 2),  # B-R00004 … B-R00008: C2
    (11_000_009, 11_000_015, 3),  # C-R00009 … C-R00015: C3
    (11_000_016, 11_000_023, 4),  # D-R00016 … D-R00023: C4
    (11_000_024, 11_000_029, 5),  # E-R00024 … E-R00029: C5
    (11_000_030, 11_000_030, 6),  # F-R00030: C6
    (11_000_031, 11_000_031, CLASS_THERA),  # G-R00031: Thera
    (11_000_032, 11_000_032, CLASS_C13),  # H-R00032: C13 (shattered, small ships only)
    (11_000_033, 11_000_033, CLASS_DRIFTER_FIRST),  # K-R00033: drifter systems (14–18)
)
"""Region → wormhole class, from EVE's static data (one class per J-space region)."""


def wormhole_class_for_region(region_id: int | None) -> int | None:
    """Class id (1–6, 12 Thera, 13 C13, 14 drifter, 25 Pochven) of a region, if derivable."""
    if region_id is None:
        return None
    if region_id == POCHVEN_REGION_ID:
        return CLASS_POCHVEN
    for first, last, class_id in _WORMHOLE_REGION_CLASSES:
        if first <= region_id <= last:
            return class_id
    return None


def classes_for_class_id(class_id: int) -> frozenset[SpaceClass]:
    """The space classes a Wanderer/SDE class id stands for (empty when the id is unknown)."""
    if CLASS_C1 <= class_id <= CLASS_C6:
        return frozenset({SpaceClass.WORMHOLE, SpaceClass(f"c{class_id}")})
    simple = {
        CLASS_HIGH: SpaceClass.HIGH,
        CLASS_LOW: SpaceClass.LOW,
        CLASS_NULL: SpaceClass.NULL,
        CLASS_POCHVEN: SpaceClass.POCHVEN,
    }
    if class_id in simple:
        return frozenset({simple[class_id]})
    if class_id == CLASS_THERA:
        return frozenset({SpaceClass.WORMHOLE, SpaceClass.THERA})
    if class_id == CLASS_C13:
        return frozenset({SpaceClass.WORMHOLE, SpaceClass.C13, SpaceClass.SHATTERED})
    if CLASS_DRIFTER_FIRST <= class_id <= CLASS_DRIFTER_LAST:
        return frozenset({SpaceClass.WORMHOLE, SpaceClass.DRIFTER})
    return frozenset()


_BANDS: Final = frozenset(
    {SpaceClass.HIGH, SpaceClass.LOW, SpaceClass.NULL, SpaceClass.POCHVEN, SpaceClass.WORMHOLE}
)
_WORMHOLE_KINDS: Final = frozenset(
    {
        SpaceClass.C1,
        SpaceClass.C2,
        SpaceClass.C3,
        SpaceClass.C4,
        SpaceClass.C5,
        SpaceClass.C6,
        SpaceClass.THERA,
        SpaceClass.C13,
        SpaceClass.DRIFTER,
    }
)


@dataclass(frozen=True, slots=True)
class SpaceFacts:
    """A system's space classes: ``known`` ones hold; ``unknown`` ones may or may not."""

    known: frozenset[SpaceClass]
    unknown: frozenset[SpaceClass]

    def membership(self, value: SpaceClass) -> bool | None:
        """True, False, or None when the facts cannot tell."""
        if value in self.known:
            return True
        if value in self.unknown:
            return None
        return False


def space_facts(
    system_id: int,
    *,
    class_id: int | None = None,
    region_id: int | None = None,
    security_status: float | None = None,
    is_shattered: bool | None = None,
) -> SpaceFacts:
    """Classify a system from whatever is known, most specific source first.

    ``class_id`` (Wanderer's ``system_class``) wins; else the region gives the J-space class (or
    Pochven); else the id range tells J-space from k-space and Thera by id, and the security
    status gives the band of a k-space system. ``shattered`` is known for C13, from
    ``is_shattered``, or to be false outside J-space; otherwise it stays unknown.
    """
    known: set[SpaceClass] = set()
    if class_id is None:
        class_id = wormhole_class_for_region(region_id)
    if class_id is None and system_id == THERA_SYSTEM_ID:
        class_id = CLASS_THERA
    if class_id is not None:
        known |= classes_for_class_id(class_id)
    if not known & _BANDS:
        if is_wormhole_system(system_id):
            known.add(SpaceClass.WORMHOLE)
        elif is_kspace_system(system_id) and security_status is not None:
            band = security_class(system_id, security_status)
            known.add(SpaceClass(band.value))
    if is_shattered:
        known.add(SpaceClass.SHATTERED)
    unknown: set[SpaceClass] = set()
    if not known & _BANDS:
        unknown |= _BANDS | _WORMHOLE_KINDS | {SpaceClass.SHATTERED}
    elif known & _BANDS == {SpaceClass.NULL} and class_id is None:
        # Security alone cannot tell null-sec from Pochven (both -1.0); the region can.
        unknown.add(SpaceClass.POCHVEN)
    elif SpaceClass.WORMHOLE in known:
        if not known & _WORMHOLE_KINDS:
            unknown |= _WORMHOLE_KINDS
        never_shattered = known & {SpaceClass.THERA, SpaceClass.DRIFTER}
        if is_shattered is None and SpaceClass.SHATTERED not in known and not never_shattered:
            unknown.add(SpaceClass.SHATTERED)
    return SpaceFacts(frozenset(known), frozenset(unknown))
