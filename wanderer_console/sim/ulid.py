"""A tiny monotonic ULID generator (no dependency).

A ULID is 26 characters of Crockford base32 (upper case): 48 bits of Unix time in milliseconds
followed by 80 random bits. This generator is *monotonic*: within one millisecond (or if the clock
steps back) the previous value is incremented, so successive ids always sort lexicographically in
creation order — the property the Wanderer map relies on for its SSE cursor (PROTOCOLS.md §1.4).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Final

__all__ = ["CROCKFORD_ALPHABET", "UlidGenerator", "is_valid_ulid", "new_ulid", "ulid_time_ms"]

CROCKFORD_ALPHABET: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_DECODE: Final = {ch: i for i, ch in enumerate(CROCKFORD_ALPHABET)}
_ULID_RE: Final = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
_RANDOM_BITS: Final = 80
_RANDOM_MAX: Final = (1 << _RANDOM_BITS) - 1
_TIME_MAX: Final = (1 << 48) - 1


def _encode(value: int) -> str:
    """Encode a 128-bit integer as 26 Crockford base32 characters."""
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD_ALPHABET[value & 0x1F])
        value >>= 5
    return "".join(reversed(chars))


def is_valid_ulid(value: object) -> bool:
    """True when ``value`` is exactly 26 upper-case Crockford base32 characters."""
    return isinstance(value, str) and _ULID_RE.match(value) is not None


def ulid_time_ms(value: str) -> int:
    """The millisecond timestamp encoded in the first 10 characters of a ULID."""
    result = 0
    for ch in value[:10]:
        result = (result << 5) | _DECODE[ch]
    return result


class UlidGenerator:
    """Produces strictly increasing ULIDs.

    ``clock`` returns milliseconds since the epoch and ``random_bits`` returns an 80-bit integer;
    both are injectable for tests.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], int] | None = None,
        random_bits: Callable[[], int] | None = None,
    ) -> None:
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._random = random_bits or (lambda: int.from_bytes(os.urandom(10), "big"))
        self._last_ms = -1
        self._last_rand = 0

    def new(self) -> str:
        """Return the next ULID, greater than every ULID this generator returned before."""
        now = min(self._clock(), _TIME_MAX)
        if now > self._last_ms:
            self._last_ms = now
            # Leave head-room so the increment path rarely overflows.
            self._last_rand = self._random() & (_RANDOM_MAX >> 1)
        elif self._last_rand < _RANDOM_MAX:
            self._last_rand += 1
        else:
            # Randomness exhausted in this millisecond: borrow the next millisecond.
            self._last_ms += 1
            self._last_rand = 0
        return _encode((self._last_ms << _RANDOM_BITS) | self._last_rand)


_DEFAULT = UlidGenerator()


def new_ulid() -> str:
    """A new ULID from the process-wide monotonic generator."""
    return _DEFAULT.new()
