"""What the SQLite and the PostgreSQL stores share: every statement of the store, once.

:class:`SqlStore` holds the event log, the stream cursors, retention and the enrichment cache;
:class:`~wanderer_console.store.outbox.OutboxMixin` the outbox;
:class:`~wanderer_console.store.browse.BrowseMixin` the events browser's reads. They run their
SQL through a :class:`~wanderer_console.store.base.DbConnection` (``?`` placeholders) and their
writes through a :class:`~wanderer_console.store.writes.WriteGuard`; where the backends spell a
statement differently, the fragment comes from the store's
:class:`~wanderer_console.store.dialect.Dialect`.
A backend (:mod:`~.sqlite`, :mod:`~.postgres`) adds how it opens, closes and checks itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from wanderer_console.domain.notification import Notification
from wanderer_console.store.base import (
    PRUNE_BATCH,
    SHARED_TENANT,
    OutboxRow,
    PendingWrite,
    StoredEvent,
)
from wanderer_console.store.browse import BrowseMixin
from wanderer_console.store.leases import LeaseMixin
from wanderer_console.store.observe import ObserveMixin
from wanderer_console.store.outbox import OutboxMixin
from wanderer_console.store.priority import PriorityMixin
from wanderer_console.store.writes import WriteFault

__all__ = ["SqlStore"]

_INSERT_CHUNK = 200
"""Events per multi-row INSERT (6 parameters each, far below SQLite's 32,766 limit and
PostgreSQL's 65,535)."""
_ROW_PLACEHOLDER = "(?, ?, ?, ?, ?, ?, ?)"
_FINISHED = "('sent', 'failed', 'dropped')"
"""The outbox states retention may delete (named, not excepted: a state added later is kept
until someone decides it is finished). ``uncertain`` is not one: such a message may or may not
have posted, and waits for the operator to check the channel and retry or drop it."""


class SqlStore(OutboxMixin, LeaseMixin, BrowseMixin, ObserveMixin, PriorityMixin):
    """The statements of a store, over ``_conn`` and ``_writes`` (set by the backend)."""

    shared = False
    """Several instances share this database (set by the runtime on PostgreSQL): a repeat of
    an event every map shares (a killmail, :data:`~.base.SHARED_TENANT`) still writes its
    notifications, since another instance may have stored it for its own maps; the outbox's
    ``UNIQUE(tenant_id, dedup_key)`` keeps each map's notification once."""

    events_written: int
    """Events this store inserted since it opened (a cheap progress figure for benchmarks)."""
    last_write_at: float | None
    """``time.perf_counter()`` when the last write committed (benchmarks time runs by it)."""

    def _init_counters(self) -> None:
        self.events_written = 0
        self.last_write_at = None
        self._queued: list[OutboxRow] | None = None

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
        still advances its cursor (on a :attr:`shared` database, a repeated killmail does write
        its notifications, each once per map by the outbox's key). Either every write commits
        or none does.
        """
        stamp = time.time() if now is None else now
        shared = self.shared
        self._queued = None
        with self._writes.transaction("record events"):
            inserted = self._insert_events([write.event for write in writes])
            # The last row id before this transaction's: its rows are those after it (SQLite
            # alone: one writer at a time, ids given in order).
            before = self._last_outbox_id(writes)
            queued: list[OutboxRow] | None = None
            written = []
            for write, new in zip(writes, inserted, strict=True):
                again = shared and write.event.tenant_id == SHARED_TENANT
                if (new or again) and write.notifications:
                    written += self._insert_notifications(
                        write.notifications, stamp, write.correlation_id, write.trace_parent
                    )
                if write.cursor is not None:
                    self._advance_cursor(*write.cursor, stamp)
            if before is not None:
                queued = self._queued_after(before, written)
        self._queued = queued
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
                "INSERT INTO events"
                " (tenant_id, event_id, source, type, received_at, payload, schema_version)"
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
            "SELECT tenant_id, event_id, source, type, received_at, payload, schema_version"
            " FROM events WHERE received_at >= ? ORDER BY id LIMIT ?",
            (since, limit),
        ).fetchall()
        return [StoredEvent(*row) for row in rows]

    # -- cursors -------------------------------------------------------------------------------

    def get_cursor(self, stream: str) -> str | None:
        """The saved resume position of a stream, if any."""
        row = self._conn.execute("SELECT value FROM cursors WHERE stream = ?", (stream,)).fetchone()
        return None if row is None else str(row[0])

    def probe_write(self) -> None:
        """One small real write through the guard (see :meth:`Store.probe_write`)."""
        with self._writes.transaction("write probe"):
            self._conn.execute("UPDATE schema_version SET version = version")

    def set_cursor(self, stream: str, value: str) -> None:
        """Advance the resume position of a stream (it never moves backwards)."""
        with self._writes.transaction("set cursor"):
            self._advance_cursor(stream, value, time.time())

    # -- hosted maps ---------------------------------------------------------------------------

    def hosted_map_keys(self) -> dict[str, str]:
        """The key kept for each hosted map, by its map server's ``map_id``."""
        rows = self._conn.execute("SELECT map_id, tenant_id FROM hosted_maps").fetchall()
        return {str(map_id): str(key) for map_id, key in rows}

    def keep_hosted_map_keys(self, keys: Mapping[str, tuple[str, str]]) -> dict[str, str]:
        """Record the keys of maps that have none yet; return every kept key (see
        :meth:`Store.keep_hosted_map_keys`). A row whose map or key is taken already (another
        engine recorded it first) is not written: the answer says what was kept."""
        if keys:
            now = time.time()
            with self._writes.transaction("keep hosted map keys") as conn:
                for map_id, (key, slug) in keys.items():
                    conn.execute(
                        "INSERT INTO hosted_maps (map_id, tenant_id, slug, created_at)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (map_id, key, slug, now),
                    )
        return self.hosted_map_keys()

    @property
    def write_fault(self) -> WriteFault | None:
        """Why the store cannot write right now (``None`` while writes succeed)."""
        return self._writes.fault

    def _advance_cursor(self, stream: str, value: str, now: float) -> None:
        self._conn.execute(
            "INSERT INTO cursors (stream, value, updated_at) VALUES (?, ?, ?)"
            f" ON CONFLICT (stream) DO UPDATE SET value = {self._sql.cursor_max},"
            " updated_at = excluded.updated_at",
            (stream, value, now),
        )

    def prune(self, before: float, *, limit: int = PRUNE_BATCH) -> tuple[int, int]:
        """Delete up to ``limit`` events received, and up to ``limit`` notifications finished,
        before ``before`` (unix time); return ``(events, notifications)`` removed.

        Each kind goes in one short transaction of its own, so a backlog (``retention_days``
        lowered on a store of millions of rows) never holds the write lock, or the event loop
        that calls this, for long: the caller repeats, letting other work in between, until
        fewer than ``limit`` of each are removed (:meth:`Maintenance.prune_once
        <wanderer_console.store.maintenance.Maintenance.prune_once>`). Only finished
        notifications go (:data:`_FINISHED`): pending, in-flight and uncertain ones still wait
        for a send or an operator's decision, however old. Nor does the firing message of an
        alert still open (:meth:`open_alerts`), however long it has fired: after a restart it is
        what tells the alert engine that a resolved message must follow.
        """
        # The condition is asked again outside the sub-select: on PostgreSQL a row another
        # engine changes meanwhile (a failed row revived to pending) is re-read once its lock is
        # free, and only this outer condition is checked on the new version; the sub-select's
        # answer is the old one.
        with self._writes.transaction("prune events") as conn:
            events = conn.execute(
                "DELETE FROM events WHERE id IN"
                " (SELECT id FROM events WHERE received_at < ? LIMIT ?) AND received_at < ?",
                (before, limit, before),
            ).rowcount
        kept = [alert.message_key("firing") for alert in self.open_alerts()]
        keep = f" AND dedup_key NOT IN ({', '.join('?' * len(kept))})" if kept else ""
        with self._writes.transaction("prune notifications") as conn:
            notes = conn.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                f" WHERE status IN {_FINISHED} AND created_at < ?{keep} LIMIT ?)"
                f" AND status IN {_FINISHED} AND created_at < ?{keep}",
                (before, *kept, limit, before, *kept),
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
        return self._writes.statement(
            "prune cache",
            "DELETE FROM cache_entries WHERE version != ? OR expires_at <= ?",
            (version, now),
        )
