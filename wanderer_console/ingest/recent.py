"""A bounded memory of recently seen ids, shared by sources to drop repeats before parsing.

The killstream sends every real-time update twice, repeats preloads on each rejoin, and the
characters socket sees kills the systems socket also sees. Dropping those repeats at the source,
before validation and queueing, saves most of the pipeline's work; the event log's unique key
stays the authority.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["RecentIds"]


class RecentIds:
    """Remembers the last ``size`` ids; :meth:`seen` answers and records in one step."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._ids: OrderedDict[int, None] = OrderedDict()

    def seen(self, value: int) -> bool:
        """True when ``value`` was recorded before; otherwise record it and return False."""
        if value in self._ids:
            self._ids.move_to_end(value)
            return True
        self._ids[value] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return False

    def clear(self) -> None:
        """Forget every id (this engine took a map over: its kills must be read again)."""
        self._ids.clear()

    def __contains__(self, value: object) -> bool:
        return value in self._ids

    def __len__(self) -> int:
        return len(self._ids)
