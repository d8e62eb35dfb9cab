"""Priority systems kept by the operators, and the trail of every change to them.

Added and removed with ``/notifier system add-priority|remove-priority`` or from the console;
they survive restarts (the notifier kept them in a file outside its data volume, PARITY.md
§5.5). A name is matched case-insensitively, so it is keyed by its case-folded form and shown
as first written. Every change is recorded in ``priority_audit`` with who made it.
"""

from __future__ import annotations

import time

from wanderer_console.store.base import DbConnection, PriorityChange, PrioritySystem
from wanderer_console.store.writes import WriteGuard

__all__ = ["PriorityMixin", "priority_key"]


def priority_key(name: str) -> str:
    """The name as it is compared: trimmed, case-folded."""
    return name.strip().casefold()


class PriorityMixin:
    """The priority-system statements of a store (:class:`~wanderer_console.store.sql.SqlStore`)."""

    _conn: DbConnection
    _writes: WriteGuard

    def priority_systems(self) -> list[PrioritySystem]:
        """Every priority system, by name."""
        rows = self._conn.execute(
            "SELECT name, added_by, added_at FROM priority_systems ORDER BY name_key"
        ).fetchall()
        return [PrioritySystem(str(n), str(by), float(at)) for n, by, at in rows]

    def add_priority_system(self, name: str, *, actor: str, now: float | None = None) -> bool:
        """Add ``name``; False when it was one already (nothing recorded then)."""
        at = time.time() if now is None else now
        with self._writes.transaction("add priority system") as conn:
            added = conn.execute(
                "INSERT INTO priority_systems (name_key, name, added_by, added_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (name_key) DO NOTHING",
                (priority_key(name), name.strip(), actor, at),
            ).rowcount
            if added:
                _trail(conn, at, actor, "add", name.strip())
        return bool(added)

    def remove_priority_system(self, name: str, *, actor: str, now: float | None = None) -> bool:
        """Remove ``name``; False when it was not one."""
        at = time.time() if now is None else now
        with self._writes.transaction("remove priority system") as conn:
            removed = conn.execute(
                "DELETE FROM priority_systems WHERE name_key = ?", (priority_key(name),)
            ).rowcount
            if removed:
                _trail(conn, at, actor, "remove", name.strip())
        return bool(removed)

    def priority_changes(self, limit: int = 100) -> list[PriorityChange]:
        """The latest changes, oldest first."""
        rows = self._conn.execute(
            "SELECT at, actor, action, name FROM priority_audit ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [PriorityChange(float(a), str(b), str(c), str(d)) for a, b, c, d in reversed(rows)]


def _trail(conn: DbConnection, at: float, actor: str, action: str, name: str) -> None:
    conn.execute(
        "INSERT INTO priority_audit (at, actor, action, name) VALUES (?, ?, ?, ?)",
        (at, actor, action, name),
    )
