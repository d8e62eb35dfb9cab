"""EVE id ranges and system classes (PROTOCOLS.md §6), pure functions."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "SecurityClass",
    "is_character_id",
    "is_kspace_system",
    "is_solar_system_id",
    "is_wormhole_system",
    "security_class",
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


def is_solar_system_id(value: int) -> bool:
    """Any solar system id, k-space, J-space or abyssal."""
    return 30_000_000 <= value <= 32_999_999


def is_character_id(value: int) -> bool:
    """Player character ids (modern ranges plus pre-2010 ids, which cannot be told apart)."""
    return 90_000_000 <= value <= 97_999_999 or 100_000_000 <= value <= 2_129_999_999


def security_class(system_id: int, security_status: float | None) -> SecurityClass:
    """Band of a system from its id and ESI ``security_status`` (rounded as the client shows it)."""
    if is_wormhole_system(system_id):
        return SecurityClass.WORMHOLE
    if security_status is None:
        return SecurityClass.UNKNOWN
    rounded = round(security_status, 1)
    if rounded >= 0.5:
        return SecurityClass.HIGH
    if rounded > 0.0:
        return SecurityClass.LOW
    return SecurityClass.NULL
