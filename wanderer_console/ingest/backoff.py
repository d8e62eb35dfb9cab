"""Exponential backoff with full jitter."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays of ``base * 2**n`` capped at ``cap``, each drawn uniformly below that bound."""

    def __init__(self, base: float = 1.0, cap: float = 30.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The next wait; at least half the bound so reconnects never hot-loop."""
        bound = min(self.cap, self.base * float(2 ** min(self.attempt, 32)))
        self.attempt += 1
        return bound / 2 + self._rng.uniform(0, bound / 2)

    def next_delay_at_least(self, floor: float) -> float:
        """The next wait, never under ``floor``: when the backoff's own is shorter, one drawn
        from ``floor`` to 1.5 × ``floor``, so the many streams turned away together (a server's
        connection limit) do not all come back in the same instant."""
        delay = self.next_delay()
        if delay >= floor:
            return delay
        return self.spread(floor)

    def spread(self, floor: float) -> float:
        """A wait drawn from ``floor`` to 1.5 × ``floor`` without moving the backoff on: for a
        wait the server (``Retry-After``) or a slow retry sets, never shorter than it, so the
        many streams told the same thing do not all come back in the same instant."""
        return floor + self._rng.uniform(0, floor / 2)

    def reset(self) -> None:
        """Start again from ``base`` (after a healthy connection)."""
        self.attempt = 0
