"""Map event ids (ULIDs, as the map server writes them): their time, and the least id of a time.

The map server's event stream resumes from an id (``?last_event_id=``) and backfills every event
whose id sorts after it; ids sort by the time in their first 48 bits. Shared by the stream
(:mod:`~wanderer_console.ingest.map_sse`) and the pipeline's resume points.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["is_ulid", "ulid_at", "ulid_seconds"]

_ULID: Final = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD: Final = {ch: i for i, ch in enumerate(_ALPHABET)}


def is_ulid(value: str) -> bool:
    """True for a ULID as the map server writes it (26 upper-case Crockford characters)."""
    return _ULID.match(value) is not None


def ulid_seconds(value: str | None) -> float | None:
    """The Unix time (seconds) in a ULID's first 48 bits; ``None`` when it is not a ULID."""
    if value is None or not _ULID.match(value):
        return None
    millis = 0
    for ch in value[:10]:
        millis = (millis << 5) | _CROCKFORD[ch]
    return millis / 1000.0


def ulid_at(seconds: float) -> str:
    """The least ULID of the millisecond ``seconds`` (Unix time): it sorts before every id made
    from that millisecond on, and after every one made before it."""
    millis = max(0, min(int(seconds * 1000), (1 << 48) - 1))
    stamp = "".join(_ALPHABET[(millis >> shift) & 0x1F] for shift in range(45, -5, -5))
    return stamp + "0" * 16
