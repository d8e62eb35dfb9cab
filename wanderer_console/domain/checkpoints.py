"""Resume points waiting for the pipeline queue's checkpoints.

A source saves where to resume (the killstream's watermark, R2Z2's sequence) only once every
item it queued before that point is written: a crash must never resume past an item not
stored. It offers each point with the queue's mark taken then (``BoundedPriorityQueue.mark``),
and saves the newest point whose mark has passed — under steady load too, when the queue is
never idle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["PendingMarks"]

_T = TypeVar("_T")


class PendingMarks(Generic[_T]):
    """``(point, queue mark)`` pairs offered and not yet settled, oldest first; past
    ``maxlen`` the oldest are forgotten (the point saved is then a little older than it could
    be, never ahead of an item not written)."""

    def __init__(self, maxlen: int) -> None:
        self._pending: deque[tuple[_T, int]] = deque(maxlen=maxlen)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def offer(self, point: _T, mark: int) -> None:
        """``point`` may be saved once ``mark`` has passed."""
        if self._pending and self._pending[-1][1] == mark:
            self._pending[-1] = (point, mark)  # nothing queued since the last one: same point
        else:
            self._pending.append((point, mark))

    def settled(self, passed: Callable[[int], bool]) -> tuple[_T, int] | None:
        """The newest pair whose mark has ``passed`` (it and the older ones leave), if any."""
        done: tuple[_T, int] | None = None
        while self._pending and passed(self._pending[0][1]):
            done = self._pending.popleft()
        return done

    def keep(self, pair: tuple[_T, int]) -> None:
        """Put back a pair :meth:`settled` gave whose save the store refused: it is settled
        again at the next look."""
        self._pending.appendleft(pair)
