"""The store's upkeep: retention of old records and a periodic integrity check.

Retention runs hourly and deletes events, and notifications finished, older than
``console.retention_days`` (pending, in-flight and uncertain notifications are never deleted,
nor the firing message of an alert still firing: its resolved message follows it). A store that
cannot write (a full disk: deletes need room in the write-ahead log too) or does not answer
says so itself, once; retention then tries again every :attr:`Maintenance.retry_after` seconds
(5 minutes) until it prunes, and never crashes its task.
The integrity check reads the whole database every few hours on its own read-only connection in
a thread, so damage is found before a write trips on it: the problem is kept for ``/ready`` and
logged at ERROR with what to do. On SQLite that is ``PRAGMA quick_check`` on a read-only
connection; on PostgreSQL, whose server keeps its own files sound, a fresh connection that must
answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from wanderer_console.store.base import PRUNE_BATCH, Store
from wanderer_console.store.writes import StoreWriteError, unavailable
from wanderer_console.telemetry.logging import redact

__all__ = ["Maintenance"]

log = logging.getLogger("wanderer_console.runtime")


class Maintenance:
    """Retention and integrity loops over one store."""

    def __init__(self, store: Store, retention_days: Callable[[], float]) -> None:
        self._store = store
        self._retention_days = retention_days
        self.prune_batch = PRUNE_BATCH
        """Rows per retention statement (tests lower it)."""
        self.integrity_interval = 6 * 3600.0
        """Seconds between two full integrity checks of the database."""
        self.integrity_problem: str | None = None
        """Damage the last periodic check found (``None``: none found)."""
        self.retry_after = 300.0
        """Seconds before retention tries again after the store refused it (tests lower it)."""
        self.prune_failures = 0
        """Retention runs the store refused (it could not write, or did not answer)."""

    async def retention(self) -> None:
        """Hourly: drop events and finished notifications older than the retention period.

        A run the store refuses (a full disk, a database that does not answer) is tried again
        after :attr:`retry_after` seconds; the store's own fault says why (once per outage).
        """
        failing = False
        while True:
            try:
                await self.prune_once()
            except Exception as exc:
                if not isinstance(exc, StoreWriteError) and not unavailable(exc):
                    raise
                self.prune_failures += 1
                if not failing:
                    log.warning(
                        "retention could not prune old records; tries again later",
                        extra={
                            "ctx": {
                                "error": redact(f"{type(exc).__name__}: {exc}")[:300],
                                "retry_in_seconds": self.retry_after,
                            }
                        },
                    )
                failing = True
                await asyncio.sleep(self.retry_after)
                continue
            failing = False
            await asyncio.sleep(3600)

    async def prune_once(self) -> tuple[int, int]:
        """Drop what is older than the retention period now, :attr:`prune_batch` rows per
        statement with the event loop free between them; return ``(events, notifications)``.

        Lowering ``retention_days`` on a store of millions of rows makes them all old at once:
        deleted in one statement they held the loop (no Discord send, no ingest) and, on SQLite,
        the write lock, for as long as the database took. In batches, the dispatcher and the
        sources write between two of them.
        """
        cutoff = time.time() - self._retention_days() * 86_400
        events = notes = 0
        while True:
            batch = self.prune_batch
            more_events, more_notes = self._store.prune(cutoff, limit=batch)
            events, notes = events + more_events, notes + more_notes
            if more_events < batch and more_notes < batch:
                break
            await asyncio.sleep(0)
        if events or notes:
            log.info(
                "old records pruned", extra={"ctx": {"events": events, "notifications": notes}}
            )
        return events, notes

    async def integrity(self) -> None:
        """Every :attr:`integrity_interval` seconds: check the whole database."""
        path = self._store.path
        while True:
            await asyncio.sleep(self.integrity_interval)
            problem = await asyncio.to_thread(self._store.check_integrity)
            if problem != self.integrity_problem and problem is not None:
                log.error(
                    "database damaged; stop the console, restore the backup or run"
                    " `sqlite3 DB .recover`"
                    if isinstance(path, Path)
                    else "database check failed; see the PostgreSQL server's log",
                    extra={"ctx": {"path": str(path), "problem": problem}},
                )
            self.integrity_problem = problem
