"""SQLite implementation of the store (WAL, one connection, used from the event loop).

Every call is a short indexed statement, so it runs inline on the loop: an executor hop would
cost more than the query. An event and the notifications it caused are written in one
transaction, so a crash between "decided" and "delivered" loses nothing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from wanderer_console.domain.notification import Notification
from wanderer_console.store.base import PendingWrite, StoredEvent
from wanderer_console.store.checkpoint import WalCheckpointer
from wanderer_console.store.integrity import (
    SchemaTooNewError,
    StorageError,
    ensure_data_dir,
    open_error,
    verify_at_open,
)
from wanderer_console.store.migrations import SCHEMA_VERSION, migrate
from wanderer_console.store.outbox import OutboxMixin
from wanderer_console.store.writes import StoreWriteError, WriteFault, WriteGuard

__all__ = ["DB_NAME", "SqliteStore", "StoreWriteError", "open_database"]

DB_NAME = "wanderer-console.db"
"""The SQLite database's file name inside the data directory."""

_INSERT_CHUNK = 200
"""Events per multi-row INSERT (6 parameters each, far below SQLite's 32,766 limit)."""
_ROW_PLACEHOLDER = "(?, ?, ?, ?, ?, ?)"


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the console's database with its schema migrated.

    Every part that keeps its own connection (the store, the config audit, the tenant registry)
    opens the file here, so whichever creates it makes it private to the operator: the outbox,
    the audit's config versions and the tenants all hold sensitive data.

    Whatever stops it (a data directory it cannot create or write, a file that is not a
    database, a database ``quick_check`` finds damaged, a schema from a newer build) raises
    :class:`~wanderer_console.store.integrity.StorageError`: one paragraph naming the path and
    what to do, which the command line prints instead of a traceback.
    """
    ensure_data_dir(path.parent)
    fresh = not path.exists()
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise open_error(path, exc) from exc
    try:
        if fresh:
            os.chmod(path, 0o600)
        conn.execute("PRAGMA busy_timeout=5000")
        if not fresh:
            verify_at_open(conn, path)  # before the migration, which would trip on damage
        migrate(conn)
    except StorageError:
        conn.close()
        raise
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise open_error(path, exc) from exc
    except RuntimeError as exc:
        conn.close()
        if "newer than this build" not in str(exc):
            raise
        raise SchemaTooNewError(
            path,
            str(exc),
            "Run the version that last used this data directory, or restore the backup taken"
            " before it (see the deployment guide, Upgrades).",
        ) from exc
    return conn


class SqliteStore(OutboxMixin):
    """The default store: one SQLite file in the data directory."""

    def __init__(
        self,
        path: Path,
        *,
        checkpoint_interval: float = 1.0,
        on_write_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        self._conn = open_database(path)
        self._writes = WriteGuard(self._conn, path, on_error=on_write_error)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run on their own thread, never inside a commit on the event loop.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self.checkpointer = WalCheckpointer(path, interval=checkpoint_interval)
        self.checkpointer.start()
        self.schema_version = SCHEMA_VERSION  # open_database migrated it
        self.events_written = 0
        """Events this store inserted since it opened (a cheap progress figure for benchmarks)."""
        self.last_write_at: float | None = None
        """``time.perf_counter()`` when the last write committed (benchmarks time runs by it)."""

    def close(self) -> None:
        """Stop the checkpoints, fold the WAL into the database file and close (idempotent)."""
        self.checkpointer.stop()
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.close()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    # -- events --------------------------------------------------------------------------------

    def record_event(
        self,
        event: StoredEvent,
        notifications: Sequence[Notification] = (),
        *,
        cursor: tuple[str, str] | None = None,
        now: float | None = None,
        correlation_id: str | None = None,
    ) -> bool:
        """Store an event, its notifications and the stream cursor atomically.

        ``cursor`` is ``(stream, value)``; the saved value only ever grows (ULIDs sort by time),
        and it advances even for a duplicate. Returns False when ``(tenant_id, event_id)`` was
        already stored, in which case no notification is written.
        """
        write = PendingWrite(event, list(notifications), cursor, None, correlation_id)
        return self.record_events([write], now=now)[0]

    def record_events(
        self, writes: Sequence[PendingWrite], *, now: float | None = None
    ) -> list[bool]:
        """Write many events (each with its notifications and cursor) in one transaction.

        Returns, per write, whether its event was new; a duplicate writes no notification but
        still advances its cursor. Either every write commits or none does.
        """
        stamp = time.time() if now is None else now
        with self._writes.transaction("record events"):
            inserted = self._insert_events([write.event for write in writes])
            for write, new in zip(writes, inserted, strict=True):
                if new and write.notifications:
                    self._insert_notifications(write.notifications, stamp, write.correlation_id)
                if write.cursor is not None:
                    self._advance_cursor(*write.cursor, stamp)
        self.events_written += sum(inserted)
        self.last_write_at = time.perf_counter()
        return inserted

    def _insert_events(self, events: Sequence[StoredEvent]) -> list[bool]:
        """Insert events with one multi-row statement per chunk; per event, whether it was new.

        ``RETURNING`` names the rows actually inserted, so a duplicate (already stored, or
        repeated within the batch: only its first occurrence inserts) reads as not new.
        """
        fresh: set[tuple[str, str]] = set()
        for start in range(0, len(events), _INSERT_CHUNK):
            chunk = events[start : start + _INSERT_CHUNK]
            params = [value for event in chunk for value in event]
            rows = self._conn.execute(
                "INSERT INTO events (tenant_id, event_id, source, type, received_at, payload)"
                f" VALUES {','.join([_ROW_PLACEHOLDER] * len(chunk))}"
                " ON CONFLICT (tenant_id, event_id) DO NOTHING RETURNING tenant_id, event_id",
                params,
            ).fetchall()
            fresh.update((str(tenant), str(event_id)) for tenant, event_id in rows)
        inserted = []
        for event in events:
            key = (event.tenant_id, event.event_id)
            inserted.append(key in fresh)
            fresh.discard(key)  # a repeat later in the batch was not the one inserted
        return inserted

    def has_event(self, tenant_id: str, event_id: str) -> bool:
        """True when the event is already stored."""
        row = self._conn.execute(
            "SELECT 1 FROM events WHERE tenant_id = ? AND event_id = ?", (tenant_id, event_id)
        ).fetchone()
        return row is not None

    def event_count(self) -> int:
        """Number of stored events."""
        return int(self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def events_since(self, since: float, *, limit: int = 100_000) -> list[StoredEvent]:
        """Stored events received at or after ``since``, oldest first."""
        rows = self._conn.execute(
            "SELECT tenant_id, event_id, source, type, received_at, payload FROM events"
            " WHERE received_at >= ? ORDER BY id LIMIT ?",
            (since, limit),
        ).fetchall()
        return [StoredEvent(*row) for row in rows]

    # -- cursors -------------------------------------------------------------------------------

    def get_cursor(self, stream: str) -> str | None:
        """The saved resume position of a stream, if any."""
        row = self._conn.execute("SELECT value FROM cursors WHERE stream = ?", (stream,)).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, stream: str, value: str) -> None:
        """Advance the resume position of a stream (it never moves backwards)."""
        with self._writes.transaction("set cursor"):
            self._advance_cursor(stream, value, time.time())

    @property
    def write_fault(self) -> WriteFault | None:
        """Why the store cannot write right now (``None`` while writes succeed)."""
        return self._writes.fault

    def _advance_cursor(self, stream: str, value: str, now: float) -> None:
        self._conn.execute(
            "INSERT INTO cursors (stream, value, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (stream) DO UPDATE SET value = max(value, excluded.value),"
            " updated_at = excluded.updated_at",
            (stream, value, now),
        )

    def prune(self, before: float) -> tuple[int, int]:
        """Delete events received and notifications finished before ``before`` (unix time).

        Pending notifications are never deleted. Returns ``(events, notifications)`` removed.
        """
        with self._writes.transaction("prune") as conn:
            events = conn.execute("DELETE FROM events WHERE received_at < ?", (before,)).rowcount
            notes = conn.execute(
                "DELETE FROM outbox WHERE status NOT IN ('pending', 'sending') AND created_at < ?",
                (before,),
            ).rowcount
        return events, notes

    # -- enrichment cache ----------------------------------------------------------------------

    def save_cache_entries(self, rows: Iterable[tuple[str, str, int, str, float]]) -> int:
        """Upsert ``(namespace, key, version, value_json, expires_at)`` rows; return the count."""
        batch = list(rows)
        with self._writes.transaction("save cache") as conn:
            conn.executemany(
                "INSERT INTO cache_entries (namespace, key, version, value, expires_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, key, version) DO UPDATE SET"
                " value = excluded.value, expires_at = excluded.expires_at",
                batch,
            )
        return len(batch)

    def load_cache_entries(
        self, version: int, now: float
    ) -> list[tuple[str, str, int, str, float]]:
        """Cache rows of ``version`` that expire after ``now`` (older versions are ignored)."""
        rows = self._conn.execute(
            "SELECT namespace, key, version, value, expires_at FROM cache_entries"
            " WHERE version = ? AND expires_at > ?",
            (version, now),
        ).fetchall()
        return [(str(n), str(k), int(v), str(val), float(e)) for n, k, v, val, e in rows]

    def prune_cache_entries(self, version: int, now: float) -> int:
        """Delete cache rows of other versions or already expired; return how many."""
        result = self._writes.statement(
            "prune cache",
            "DELETE FROM cache_entries WHERE version != ? OR expires_at <= ?",
            (version, now),
        )
        return int(result.rowcount)
