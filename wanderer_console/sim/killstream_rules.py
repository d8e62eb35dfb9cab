"""Validation rules of wanderer-kills' ``killmails:lobby`` channel (PROTOCOLS.md §3.2-3.4)."""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = [
    "LOBBY",
    "MAX_CHARACTERS",
    "MAX_SYSTEMS",
    "client_identifier",
    "validate_ids",
    "validate_join",
]

LOBBY: Final = "killmails:lobby"
MAX_SYSTEMS: Final = 10_000
"""Systems one join (and one socket) may follow (PROTOCOLS.md §3.3)."""
MAX_CHARACTERS: Final = 50_000
"""Characters one join (and one socket) may follow (PROTOCOLS.md §3.3)."""
_LIMITS: Final = {
    # kind -> (max entries, min id, max id, noun used in error types)
    "systems": (MAX_SYSTEMS, 1, 50_000_000, "system"),
    "character_ids": (MAX_CHARACTERS, 90_000_000, 3_000_000_000, "character"),
}
_MISSING: Final = object()


def client_identifier(raw: str) -> str:
    """Sanitise a ``client_identifier`` like the server: trim, cut to 32, ``[A-Za-z0-9_-]``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", raw.strip()[:32])


def validate_ids(value: object, kind: str, limit: int | None = None) -> list[int] | str:
    """Deduplicated ids, or the ``[validation:<type>] ...`` reason string of the first error.

    ``kind`` is ``"systems"`` or ``"character_ids"``; ``limit`` replaces the server's maximum
    (tests shrink it). A non-list value is reported as ``non_integer_*`` (the caller decides
    whether that crashes the channel instead).
    """
    most, low, high, noun = _LIMITS[kind]
    limit = most if limit is None else limit
    if not isinstance(value, list):
        return f"[validation:non_integer_{noun}_ids] {kind} must be a list of integers"
    if len(value) > limit:
        return f"[validation:too_many_{noun}s] Too many {noun}s: {len(value)} (max: {limit})"
    bad_type = [v for v in value if not isinstance(v, int) or isinstance(v, bool)]
    if bad_type:
        return f"[validation:non_integer_{noun}_ids] {noun.capitalize()} IDs must be integers"
    out_of_range = [v for v in value if not low <= v <= high]
    if out_of_range:
        shown = ", ".join(str(v) for v in out_of_range[:10])
        return f"[validation:invalid_{noun}_ids] Invalid {noun} IDs: {shown}"
    return list(dict.fromkeys(value))


def validate_join(
    payload: dict[str, Any],
    *,
    max_systems: int = MAX_SYSTEMS,
    max_characters: int = MAX_CHARACTERS,
) -> tuple[list[int], list[int]] | str:
    """``(systems, character_ids)`` for a join payload, or the error ``reason`` to reply with.

    More than ``max_systems`` systems or ``max_characters`` characters in one join is refused
    (``[validation:too_many_systems] ...``), as the real server refuses it.

    Neither key a list -> success without subscriptions. One a list while the other is present
    but not a list -> ``"join crashed"`` (the channel process dies).
    """
    systems = payload.get("systems", _MISSING)
    characters = payload.get("character_ids", _MISSING)
    systems_list = isinstance(systems, list)
    characters_list = isinstance(characters, list)
    if not systems_list and not characters_list:
        return [], []
    if (systems_list and characters is not _MISSING and not characters_list) or (
        characters_list and systems is not _MISSING and not systems_list
    ):
        return "join crashed"
    checked_systems = validate_ids(systems if systems_list else [], "systems", max_systems)
    if isinstance(checked_systems, str):
        return checked_systems
    checked_characters = validate_ids(
        characters if characters_list else [], "character_ids", max_characters
    )
    if isinstance(checked_characters, str):
        return checked_characters
    return checked_systems, checked_characters
