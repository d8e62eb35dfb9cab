"""The notification outbox (SQLite or PostgreSQL): what is due, what is in flight, what is done.

A row's life: ``pending`` (due at ``next_attempt_at``) → ``sending`` (claimed with a send id
just before its request goes out) → ``sent`` once Discord confirms it; or back to ``pending``
for a retry, or ``failed`` for good with its reason (``dropped`` when the operator gives up on
it). A ``sending`` row found at start is one whose request was in flight at a crash: its
outcome is unknown (*uncertain*), so the dispatcher re-sends it only in ways that cannot post
twice where Discord allows that (the same nonce for bot messages), and counts it where it cannot.
A pending row that keeps its ``send_id`` must be re-sent as the same message (same rows, same
nonce).

Dead targets (Discord answered 401/403/404) are kept with a fingerprint of the credential that
failed: their rows wait, and a different credential (a fixed config) revives the target.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Final

import orjson

from wanderer_console.domain.notification import Notification, TargetKind
from wanderer_console.store.base import (
    ClaimRequest,
    ClusterPause,
    ClusterPaused,
    DbConnection,
    DeadTarget,
    FailedRow,
    LeaseFence,
    OutboxRow,
    PendingWrite,
    Revived,
    SentMessage,
)
from wanderer_console.store.dialect import Dialect
from wanderer_console.store.writes import WriteGuard

__all__ = ["DeadTarget", "FailedRow", "OutboxMixin"]

_READ_TOGETHER = 64
"""Targets whose oldest pending rows one statement reads (:meth:`OutboxMixin._oldest_pending`;
SQLite takes at most 500 terms of a ``UNION ALL``)."""
_PARAMS_MAX = 30_000
"""Bound parameters a statement is given at most (under SQLite's and PostgreSQL's limits)."""
_Inserted = tuple[str, str, str, str, str, str, float, float, str | None, str | None]
"""An outbox row as inserted: map, key, type, target kind and key, body, due and created
times, correlation id, trace parent."""
_QUEUED_MAX = 1_000
"""Rows a write may queue and still have :meth:`OutboxMixin.take_queued` name them (a replay
or a large batch is read back by the dispatcher as before)."""

_ROW_COLUMNS = (
    "id, tenant_id, dedup_key, type, target_kind, target_key, body, attempts, correlation_id,"
    " created_at, send_id, uncertain, sending_at, trace_parent, next_attempt_at, sent_by,"
    " aged_from"
)

_KEPT_IF_UNCERTAIN = "CASE WHEN uncertain > 0 THEN send_id ELSE NULL END"
"""A row's send id once it leaves a send: kept only when that send's outcome was unknown."""
_HELD_BY_DEAD = (
    "EXISTS (SELECT 1 FROM dead_targets d"
    " WHERE d.tenant_id = outbox.tenant_id AND d.target_key = outbox.target_key)"
)
"""An outbox row's target is held as dead for its map (the row waits, pending)."""


def _marks(ids: Sequence[object]) -> str:
    # ``IN (NULL)`` matches nothing, as SQLite's ``IN ()`` does; PostgreSQL refuses ``IN ()``.
    return ",".join("?" * len(ids)) or "NULL"


def _still_claimed(fence: LeaseFence | None) -> tuple[str, tuple[object, ...]]:
    """The condition an outcome of a send claimed under ``fence`` adds to its statement: the
    rows are still that claim's (in flight, by that holder under that token). A map's new owner
    recovers an instance's claims once its lease is gone; an outcome that instance could only
    write later (its store was unreachable) must not undo what the new owner did since."""
    if fence is None:
        return "", ()
    return " AND status = 'sending' AND claimed_by = ? AND claim_token = ?", (
        fence.owner,
        fence.token,
    )


_SENT: Final = (
    "UPDATE outbox SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
    " last_error = NULL, send_id = NULL, message_id = ?"
)
"""How a confirmed message's rows are recorded (its rows and conditions follow)."""
_SENT_ONE: Final = f"{_SENT} WHERE id = ?"
"""What :func:`_sent_statement` writes for a message of one row, run for many at once."""


def _sent_statement(
    message: SentMessage, condition: str, params: tuple[object, ...]
) -> tuple[str, tuple[object, ...]]:
    """The update recording one confirmed message on its rows (where ``condition`` holds)."""
    ids = message.row_ids
    return (
        f"{_SENT} WHERE id IN ({_marks(ids)}){condition}",
        (message.sent_at, message.message_id, *ids, *params),
    )


class OutboxMixin:
    """The outbox half of a store (:class:`~wanderer_console.store.sql.SqlStore`).

    The partial index of pending rows by ``(target_key, id)`` (migration 6) is named in the
    dispatcher's queries on SQLite (``_sql.pending_index``) because, without statistics, SQLite
    would pick ``outbox_due`` and walk and sort the whole backlog.
    """

    _conn: DbConnection
    _writes: WriteGuard
    _sql: Dialect

    _queued: list[OutboxRow] | None
    """What :meth:`take_queued` hands over (set by the last ``record_events``)."""
    shared: bool

    _pause: Callable[[DbConnection], ClusterPause | None]
    """The cluster's pause as a connection reads it (:class:`~.leases.LeaseMixin`)."""

    def _insert_notifications(
        self,
        notifications: Iterable[Notification],
        now: float,
        correlation_id: str | None = None,
        trace_parent: str | None = None,
    ) -> list[_Inserted]:
        """Insert the rows (a repeat of a row's map and key is left out); return what each
        was given, in order."""
        values = [
            (
                n.tenant,
                n.dedup_key,
                n.type.value,
                n.target.kind.value,
                n.target.key,
                orjson.dumps(n.body).decode(),
                now,
                now,
                correlation_id,
                trace_parent,
            )
            for n in notifications
        ]
        self._conn.executemany(
            "INSERT INTO outbox (tenant_id, dedup_key, type, target_kind, target_key, body,"
            " next_attempt_at, created_at, correlation_id, trace_parent)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (tenant_id, dedup_key) DO NOTHING",
            values,
        )
        return values

    def take_queued(self) -> list[OutboxRow] | None:
        """The rows the last :meth:`record_events` queued for targets with nothing else
        pending, in id order, once (then ``None``); ``None`` when not known.

        They are what :meth:`due_outbox` would read for those targets right after the commit,
        so the dispatcher starts their sends without reading them back (a kill notifying 229
        maps: 1.8 ms of the event loop before its first request). Known on SQLite alone: one
        writer at a time, so the transaction's rows are exactly those after the last id before
        it. A target with an older row pending (a backoff, a backlog) is left out: its order is
        the read's to decide."""
        queued, self._queued = self._queued, None
        return queued

    def _last_outbox_id(self, writes: Sequence[PendingWrite]) -> int | None:
        """The outbox's last row id, read at the start of a :meth:`record_events` transaction
        whose rows :meth:`take_queued` will name; ``None`` when it will not (PostgreSQL, where
        other instances insert meanwhile; nothing queued; more than a read's worth)."""
        if self._sql.name != "sqlite" or self.shared:
            return None
        count = sum(len(write.notifications) for write in writes)
        if not 0 < count <= _QUEUED_MAX:
            return None
        return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])

    def _queued_after(self, before: int, written: Sequence[_Inserted]) -> list[OutboxRow] | None:
        """The rows inserted after id ``before`` in this transaction (``written``: what they
        were given), but those whose target had a row pending before them; ``None`` when a new
        row matches nothing written (the dispatcher then reads, as before).

        Built from what was written, as the read would (a new row's defaults: no attempt, no
        send id); only the ids are read back, and the ids of the targets' older pending rows."""
        given: dict[tuple[str, str], _Inserted] = {}
        for values in written:
            given.setdefault((values[0], values[1]), values)  # a repeat: the first inserted
        rows: list[OutboxRow] = []
        for row_id, tenant, dedup_key in self._conn.execute(
            "SELECT id, tenant_id, dedup_key FROM outbox WHERE id > ? ORDER BY id", (before,)
        ):
            found = given.get((tenant, dedup_key))
            if found is None:
                return None
            _, _, kind, target_kind, target_key, body, due, created, correlation, trace = found
            # Positionally, in _ROW_COLUMNS' order (the test compares them with the read's).
            rows.append(
                OutboxRow(
                    row_id,
                    tenant,
                    dedup_key,
                    kind,
                    target_kind,
                    target_key,
                    body,
                    0,  # attempts
                    correlation,
                    created,
                    None,  # send_id
                    0,  # uncertain
                    None,  # sending_at
                    trace,
                    due,  # next_attempt_at
                    None,  # sent_by
                    None,  # aged_from
                )
            )
        targets = list({row.target_key for row in rows})
        older: set[str] = set()
        size = _PARAMS_MAX - 1
        for start in range(0, len(targets), size):
            chunk = targets[start : start + size]
            older.update(
                str(key)
                for (key,) in self._conn.execute(
                    f"SELECT DISTINCT target_key FROM outbox{self._sql.pending_index}"
                    f" WHERE status = 'pending' AND target_key IN ({_marks(chunk)}) AND id <= ?",
                    (*chunk, before),
                )
            )
        return [row for row in rows if row.target_key not in older] if older else rows

    def enqueue(self, notifications: Sequence[Notification], *, now: float | None = None) -> None:
        """Add notifications without an event (operator test messages)."""
        with self._writes.transaction("enqueue"):
            self._insert_notifications(notifications, time.time() if now is None else now)

    # -- reading what is due -------------------------------------------------------------------

    def due_outbox(
        self,
        now: float,
        *,
        limit: int = 100,
        exclude_targets: Collection[str] = (),
        held: Collection[tuple[str, str]] = (),
        tenants: Collection[str] | None = None,
    ) -> list[OutboxRow]:
        """Pending notifications whose next attempt is due, oldest first.

        A target is read from its oldest pending row: when one of its rows is due, the older
        ones still waiting out a backoff (a failure, a rate limit) come first, so a target
        tried again sends its messages in the order they were queued (an alert's resolved
        message never before its firing one). Rows waiting out an unknown outcome
        (``uncertain``) keep their wait, as in :meth:`resume_target`. A target with no row due
        is not read.

        ``exclude_targets`` leaves out targets already being worked on (or dead), so a large
        backlog for one rate-limited target is not read again and again. Each target's oldest
        rows are read through the ``outbox_pending_target`` index, so the cost follows the rows
        returned and the number of targets, not the size of the backlog. ``held`` leaves out
        one map's rows for a target (``(tenant, target)``: a target dead for that map only,
        another map posting into the same channel with its own credential is read).
        ``tenants`` keeps only those maps' rows (the maps whose lease this instance holds).
        A message bound to a send id is never read in part: ``limit`` may be passed by the
        rest of the last one (:meth:`_whole_messages`).
        """
        excluded = set(exclude_targets)
        held_for: dict[str, list[str]] = {}
        for tenant, target in held:
            held_for.setdefault(target, []).append(tenant)
        scope = () if tenants is None else tuple(tenants)
        only = "" if tenants is None else f" AND tenant_id IN ({_marks(scope)})"
        targets = [target for target in self.pending_targets() if target not in excluded]
        oldest = self._oldest_pending(
            [target for target in targets if target not in held_for], now, limit, only, scope
        )
        rows: list[OutboxRow] = []
        cut: set[str] = set()  # targets whose rows may not all have been read
        for target in targets:
            left_out = held_for.get(target, [])
            but = f" AND tenant_id NOT IN ({_marks(left_out)})" if left_out else ""
            where = f" WHERE status = 'pending' AND target_key = ?{only}{but}"
            params = (target, *scope, *left_out)
            if left_out:
                first = [
                    OutboxRow(*row)
                    for row in self._conn.execute(self._first_rows(where), (*params, now, limit))
                ]
            else:
                first = oldest.get(target, [])
            due = any(row.next_attempt_at <= now for row in first)
            if not due and len(first) == limit:
                # Only rows waiting out a backoff among the first ``limit``: is one due beyond?
                due = (
                    self._conn.execute(
                        f"SELECT 1 FROM outbox{self._sql.pending_index}{where}"
                        " AND next_attempt_at <= ? LIMIT 1",
                        (*params, now),
                    ).fetchone()
                    is not None
                )
            if due:
                rows.extend(first)
                if len(first) == limit:
                    cut.add(target)
        rows.sort(key=lambda row: row.id)
        cut |= {row.target_key for row in rows[limit:]}
        return self._whole_messages(rows[:limit], cut, now)

    def _oldest_pending(
        self,
        targets: Sequence[str],
        now: float,
        limit: int,
        only: str,
        scope: tuple[str, ...],
    ) -> dict[str, list[OutboxRow]]:
        """Each target's first ``limit`` pending rows (not waiting out an unknown outcome), in
        id order, read :data:`_READ_TOGETHER` targets to a statement.

        One statement a target cost as much as the rest of a fan-out's read: a kill notifying
        250 maps was 250 statements (and, on PostgreSQL, as many round trips). Each target is
        still read through the ``outbox_pending_target`` index and its own ``LIMIT``, so a
        target's backlog costs no more than before. A statement holds the next size up of 1,
        8 or :data:`_READ_TOGETHER` targets (the rest ``NULL``, which matches nothing): few
        statement texts, each prepared once.
        """
        found: dict[str, list[OutboxRow]] = {}
        # Within the bound parameters of a statement (PostgreSQL's 65,535; SQLite's 32,766).
        size = max(1, min(_READ_TOGETHER, _PARAMS_MAX // (len(scope) + 3)))
        where = f" WHERE status = 'pending' AND target_key = ?{only}"
        one = f"SELECT * FROM ({self._first_rows(where)}) AS t"
        for start in range(0, len(targets), size):
            chunk: list[str | None] = list(targets[start : start + size])
            terms = min(n for n in (1, 8, size) if len(chunk) <= n <= size)
            chunk += [None] * (terms - len(chunk))
            params: list[object] = []
            for target in chunk:
                params += (target, *scope, now, limit)
            for row in self._conn.execute(" UNION ALL ".join([one] * terms), params):
                read = OutboxRow(*row)
                found.setdefault(read.target_key, []).append(read)
        for rows in found.values():
            rows.sort(key=lambda row: row.id)  # UNION ALL keeps no order of its own
        return found

    def _first_rows(self, where: str) -> str:
        """The statement reading a target's first ``limit`` pending rows by ``where`` (then its
        parameters, ``now`` and ``limit``): through the pending index, in id order, those
        waiting out an unknown outcome left out until due."""
        return (
            f"SELECT {_ROW_COLUMNS} FROM outbox{self._sql.pending_index}{where}"
            " AND (next_attempt_at <= ? OR uncertain = 0) ORDER BY id LIMIT ?"
        )

    def _whole_messages(
        self, rows: list[OutboxRow], cut: Collection[str], now: float
    ) -> list[OutboxRow]:
        """``rows`` with every row of the messages they start: a row bound to a send id goes
        again only with the other rows of its message. A bot message sent in part under its
        nonce would be answered, for the rest, with the part Discord created: those would be
        marked sent and never posted. Only a read cut short by ``limit`` (the targets in
        ``cut``) can hold part of a message; the rest of it is read here (at most 9 rows)."""
        bound: dict[str, set[str]] = {}
        for row in rows:
            if row.send_id and row.target_key in cut:
                bound.setdefault(row.target_key, set()).add(row.send_id)
        if not bound:
            return rows
        have = {row.id for row in rows}
        for target, send_ids in bound.items():
            ids = sorted(send_ids)
            for found in self._conn.execute(
                f"SELECT {_ROW_COLUMNS} FROM outbox{self._sql.pending_index}"
                f" WHERE status = 'pending' AND target_key = ? AND send_id IN ({_marks(ids)})"
                " AND (next_attempt_at <= ? OR uncertain = 0)",
                (target, *ids, now),
            ):
                row = OutboxRow(*found)
                if row.id not in have:
                    rows.append(row)
        rows.sort(key=lambda row: row.id)
        return rows

    def pending_targets(self) -> list[str]:
        """Target keys with at least one pending notification (one index probe per target)."""
        hint = self._sql.pending_index
        rows = self._conn.execute(
            "WITH RECURSIVE t(key) AS ("
            f" SELECT MIN(target_key) FROM outbox{hint}"
            " WHERE status = 'pending'"
            " UNION ALL"
            f" SELECT (SELECT MIN(target_key) FROM outbox{hint}"
            "  WHERE status = 'pending' AND target_key > t.key)"
            " FROM t WHERE t.key IS NOT NULL"
            ") SELECT key FROM t WHERE key IS NOT NULL"
        ).fetchall()
        return [str(key) for (key,) in rows]

    def next_due_at(self, after: float | None = None) -> float | None:
        """When the earliest pending notification becomes due, if any is pending; with
        ``after``, the earliest not due yet at that time (one probe of the ``outbox_due``
        index either way)."""
        later, params = ("", ()) if after is None else (" AND next_attempt_at > ?", (after,))
        row = self._conn.execute(
            f"SELECT MIN(next_attempt_at) FROM outbox WHERE status = 'pending'{later}", params
        ).fetchone()
        return None if row[0] is None else float(row[0])

    def outbox_depth(self) -> dict[str, int]:
        """Pending and in-flight notifications per target key.

        Pending rows are counted through their partial index (the backlog can be large);
        in-flight rows are at most a message per target.
        """
        depth: dict[str, int] = {}
        for key, count in self._conn.execute(
            f"SELECT target_key, COUNT(*) FROM outbox{self._sql.pending_index}"
            " WHERE status = 'pending' GROUP BY target_key"
        ):
            depth[str(key)] = int(count)
        for key, count in self._conn.execute(
            f"SELECT target_key, COUNT(*) FROM outbox{self._sql.sending_index}"
            " WHERE status = 'sending' GROUP BY target_key"
        ):
            depth[str(key)] = depth.get(str(key), 0) + int(count)
        return depth

    def held_depth(self, marks: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """Pending notifications of each ``(tenant, target key)`` in ``marks`` (0 for none):
        what each dead mark holds, for the map it is dead for only.

        :meth:`outbox_depth` counts per key, so a key two maps post to, dead for one of them,
        mixes that map's held rows with the other's on their way. One grouped query over the
        ``outbox_pending_target`` index, walking the pending rows of the marks' keys only (a
        shared key's live map's rows are being sent, so few); none without marks.
        """
        if not marks:
            return {}
        keys = sorted({key for _tenant, key in marks})
        counts = {
            (str(tenant), str(key)): int(count)
            for tenant, key, count in self._conn.execute(
                f"SELECT tenant_id, target_key, COUNT(*) FROM outbox{self._sql.pending_index}"
                f" WHERE status = 'pending' AND target_key IN ({_marks(keys)})"
                " GROUP BY tenant_id, target_key",
                keys,
            )
        }
        return {mark: counts.get(mark, 0) for mark in marks}

    def outbox_counts(self) -> dict[str, int]:
        """Outbox rows per status."""
        rows = self._conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
        return {str(status): int(count) for status, count in rows}

    # -- one send's life -----------------------------------------------------------------------

    def claim(
        self,
        row_ids: Sequence[int],
        *,
        send_id: str,
        now: float | None = None,
        fence: LeaseFence | None = None,
    ) -> int:
        """Mark rows in flight under ``send_id`` before their request goes out; return how many.

        Committed before the request, so a crash during it leaves the rows ``sending``: their
        outcome is then known to be uncertain, never mistaken for "not sent". On PostgreSQL the
        rows are locked as they are claimed and rows another transaction holds are skipped
        (``FOR UPDATE SKIP LOCKED``), so engines sharing the outbox never claim the same row.

        With ``fence`` (several instances), the same statement checks that the lease is still
        the caller's, under that token and unexpired by the database's clock (the lease row
        share-locked on PostgreSQL, so a takeover waits for the claim): an instance that lost
        its lease claims nothing. The rows record the claiming instance and token. Nor is
        anything claimed while the cluster is paused (the pause read in the same transaction):
        :class:`~wanderer_console.store.base.ClusterPaused` is raised instead, so an engine
        that has not read the pause yet (another engine was told) sends nothing under it.
        """
        return self.claim_all([ClaimRequest(row_ids, send_id, fence)], now=now)[0]

    def claim_all(self, claims: Sequence[ClaimRequest], *, now: float | None = None) -> list[int]:
        """Several messages' claims (sends starting together) in one transaction; return how
        many rows each claimed, in order.

        Each claim is its own statement, exactly :meth:`claim`'s (its rows, its send id, its
        map's lease): they only share the commit, so a fan-out's sends starting in one turn of
        the loop pay one commit instead of one each. The transaction fails as a whole (a
        :class:`~wanderer_console.store.writes.StoreWriteError`): then nothing is claimed;
        so does a fenced one under the cluster's pause (:class:`~.base.ClusterPaused`).
        """
        stamp = time.time() if now is None else now
        fenced = any(claim.fence is not None for claim in claims)
        with self._writes.transaction("claim") as conn:
            paused = self._pause(conn) if fenced else None
            if paused is None:
                return [
                    int(conn.execute(*self._claim_statement(c, stamp)).rowcount) for c in claims
                ]
        raise ClusterPaused(paused)

    def _claim_statement(self, claim: ClaimRequest, stamp: float) -> tuple[str, tuple[object, ...]]:
        row_ids, send_id, fence = claim
        where = self._sql.claimable(_marks(row_ids))
        owner, token = (None, None) if fence is None else (fence.owner, fence.token)
        params: tuple[object, ...] = (
            *(send_id, stamp),  # sending_at
            *(send_id, owner),  # sent_by
            *(send_id, owner, token),
            *row_ids,
        )
        if fence is not None:
            where += (
                " AND EXISTS (SELECT 1 FROM leases WHERE resource = ? AND owner = ?"
                f" AND token = ? AND expires_at > {self._sql.clock}{self._sql.lock_lease})"
            )
            params = (*params, *fence)
        # A message sent again under its own send id keeps its first send time, and whose clock
        # that time is (the SET expressions all read the row as it was).
        first = f"{self._sql.same_send_id} AND sending_at IS NOT NULL"
        return (
            f"UPDATE outbox SET status = 'sending', sending_at = CASE WHEN {first}"
            f" THEN sending_at ELSE ? END, sent_by = CASE WHEN {first} THEN sent_by ELSE ? END,"
            " send_id = ?, claimed_by = ?, claim_token = ?"
            f" WHERE {where}",
            params,
        )

    def unclaim(self, row_ids: Sequence[int], *, fence: LeaseFence, keep_send_id: bool) -> int:
        """Put rows claimed under ``fence`` back to pending without an attempt: their request
        never went out (the lease was lost between the claim and the send). Only rows still
        claimed by that holder and token change, so a new owner's claim is never undone.

        ``keep_send_id`` keeps a message that went out before (a re-send) bound to its send id
        and first send time; a fresh message forgets both.
        """
        held, holder = _still_claimed(fence)
        return self._put_back("unclaim", row_ids, held, holder, keep_send_id=keep_send_id)

    def undo_claim(
        self,
        row_ids: Sequence[int],
        *,
        send_id: str,
        fence: LeaseFence | None,
        keep_send_id: bool,
    ) -> int:
        """Put back to pending the rows a claim reported failed may have claimed all the same
        (a connection lost during its COMMIT: applied or not, the caller cannot know); return
        how many. Only rows still ``sending`` under that ``send_id`` (and ``fence``'s holder
        and token) change: nothing if the claim did not apply, never a later claim's rows. No
        request went out for them, so it is no attempt (``keep_send_id`` as :meth:`unclaim`).
        """
        held, holder = _still_claimed(fence)  # alone: any row still in flight under send_id
        sending = held or " AND status = 'sending'"
        return self._put_back(
            "undo claim",
            row_ids,
            f" AND send_id = ?{sending}",
            (send_id, *holder),
            keep_send_id=keep_send_id,
        )

    def _put_back(
        self,
        operation: str,
        row_ids: Sequence[int],
        condition: str,
        params: tuple[object, ...],
        *,
        keep_send_id: bool,
    ) -> int:
        """Rows claimed but never sent back to pending, untouched (no attempt counted), where
        ``condition`` (added to ``id IN (row_ids)``) holds; how many changed."""
        keep = "send_id" if keep_send_id else "NULL"
        kept_at = "sending_at" if keep_send_id else "NULL"
        with self._writes.transaction(operation) as conn:
            cursor = conn.execute(
                f"UPDATE outbox SET status = 'pending', send_id = {keep}, sending_at = {kept_at},"
                " claimed_by = NULL, claim_token = NULL"
                f" WHERE id IN ({_marks(row_ids)}){condition}",
                (*row_ids, *params),
            )
        return int(cursor.rowcount)

    def mark_sent(
        self,
        row_id: int | Sequence[int],
        *,
        now: float | None = None,
        message_id: str | None = None,
    ) -> None:
        """Discord confirmed these notifications: they are never sent again. ``message_id`` is
        the id Discord gave the message they went out in (the events browser shows it)."""
        ids = [row_id] if isinstance(row_id, int) else list(row_id)
        self.mark_sent_all([SentMessage(ids, time.time() if now is None else now, message_id)])

    def mark_sent_all(self, messages: Sequence[SentMessage]) -> None:
        """Several confirmed messages (answers read in one turn of the loop) recorded in one
        transaction: each message's rows as :meth:`mark_sent` records them, one commit."""
        # A fan-out's messages are one row each: one statement run for all of them (a
        # statement built and run per message cost more than the rows' update).
        alone = [(m.sent_at, m.message_id, m.row_ids[0]) for m in messages if len(m.row_ids) == 1]
        with self._writes.transaction("mark sent") as conn:
            if alone:
                conn.executemany(_SENT_ONE, alone)
            for message in messages:
                if len(message.row_ids) != 1:
                    conn.execute(*_sent_statement(message, "", ()))

    def mark_sent_if_claimed(self, messages: Sequence[SentMessage]) -> int:
        """Confirmations kept past a stop (:mod:`~wanderer_console.delivery.spill`), recorded
        as :meth:`mark_sent_all` does but only on rows still ``sending`` under the message's
        send id (and its lease's holder and token): never on rows recovered, re-sent or settled
        since (another engine took the map over). Return how many rows changed."""
        changed = 0
        with self._writes.transaction("mark sent") as conn:
            for message in messages:
                if message.send_id is None:
                    continue
                held, holder = _still_claimed(message.fence)
                condition = f" AND status = 'sending' AND send_id = ?{held}"
                cursor = conn.execute(
                    *_sent_statement(message, condition, (message.send_id, *holder))
                )
                changed += int(cursor.rowcount)
        return changed

    def release(
        self,
        row_ids: Sequence[int],
        *,
        next_attempt_at: float,
        error: str | None,
        attempt: bool = True,
        keep_send_id: bool = False,
        uncertain: bool = False,
        fence: LeaseFence | None = None,
    ) -> None:
        """Put claimed (or pending) rows back to pending for a later attempt.

        ``attempt`` counts the try (a rate limit or an open breaker is not the message's
        fault and does not); ``keep_send_id`` keeps the rows bound to their message and nonce
        (the send may have reached Discord); ``uncertain`` counts an unknown outcome. With
        ``fence`` (the lease the rows were claimed under), only rows still claimed by it change.
        """
        held, holder = _still_claimed(fence)
        with self._writes.transaction("release") as conn:
            conn.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?,"
                " last_error = coalesce(?, last_error),"
                f" attempts = attempts + {1 if attempt else 0},"
                f" uncertain = uncertain + {1 if uncertain else 0},"
                f" send_id = {'send_id' if keep_send_id else 'NULL'}"
                f" WHERE id IN ({_marks(row_ids)}){held}",
                (next_attempt_at, None if error is None else error[:500], *row_ids, *holder),
            )

    def mark_failed(
        self, row_id: int | Sequence[int], *, error: str, fence: LeaseFence | None = None
    ) -> None:
        """Give up on notifications for good; kept with the reason for the operator. With
        ``fence`` (the lease they were claimed under), only rows still claimed by it change.

        A row whose send had no known outcome keeps its send id: re-queued by the operator
        (:meth:`revive_target`), a bot message goes again under its nonce, which Discord may
        still remember, instead of posting a second time under a new one."""
        ids = [row_id] if isinstance(row_id, int) else list(row_id)
        held, holder = _still_claimed(fence)
        with self._writes.transaction("mark failed") as conn:
            conn.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?,"
                f" send_id = {_KEPT_IF_UNCERTAIN} WHERE id IN ({_marks(ids)}){held}",
                (error[:500], *ids, *holder),
            )

    def fail_pending(self, tenant: str, *, error: str, fence: LeaseFence | None = None) -> int:
        """Give up on every pending notification of a map no longer configured (due or not);
        return how many. With ``fence`` (several instances), only while the map's lease is still
        the caller's, checked in the same statement as :meth:`claim` checks it: no other
        instance can be sending these rows meanwhile."""
        held, lease = self._lease_still(fence)
        with self._writes.transaction("fail pending") as conn:
            cursor = conn.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?,"
                f" send_id = NULL WHERE tenant_id = ? AND status = 'pending'{held}",
                (error[:500], tenant, *lease),
            )
        return int(cursor.rowcount)

    def fail_unsent(
        self, row_ids: Sequence[int], *, error: str, fence: LeaseFence | None = None
    ) -> int:
        """Give up on notifications that cannot be sent (their target is no longer
        configured) and were not claimed; return how many. Only rows still pending change, and
        with ``fence`` (several instances) only while the map's lease is still the caller's,
        checked in the same statement as :meth:`claim` checks it: a row the map's new owner
        has claimed since is its to settle. A row whose send had no known outcome keeps its
        send id, as :meth:`mark_failed` keeps it."""
        held, lease = self._lease_still(fence)
        with self._writes.transaction("mark failed") as conn:
            cursor = conn.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?,"
                f" send_id = {_KEPT_IF_UNCERTAIN}"
                f" WHERE id IN ({_marks(row_ids)}) AND status = 'pending'{held}",
                (error[:500], *row_ids, *lease),
            )
        return int(cursor.rowcount)

    def _lease_still(self, fence: LeaseFence | None) -> tuple[str, tuple[object, ...]]:
        """The condition that ``fence``'s lease is still held (none without a fence)."""
        if fence is None:
            return "", ()
        return (
            " AND EXISTS (SELECT 1 FROM leases WHERE resource = ? AND owner = ?"
            f" AND token = ? AND expires_at > {self._sql.clock}{self._sql.lock_lease})",
            tuple(fence),
        )

    def mark_unconfirmed(
        self, row_ids: Sequence[int], *, error: str, fence: LeaseFence | None = None
    ) -> None:
        """Stop re-sending notifications sent twice without an answer (each may have posted).
        With ``fence`` (the lease they were claimed under), only rows still claimed by it."""
        held, holder = _still_claimed(fence)
        with self._writes.transaction("mark uncertain") as conn:
            conn.execute(
                "UPDATE outbox SET status = 'uncertain', attempts = attempts + 1,"
                " uncertain = uncertain + 1, last_error = ?"
                f" WHERE id IN ({_marks(row_ids)}){held}",
                (error[:500], *row_ids, *holder),
            )

    def recover_in_flight(
        self,
        *,
        tenant: str | None = None,
        spare: LeaseFence | None = None,
        claimed_by: str | None = None,
        nonce_since: float | None = None,
    ) -> list[tuple[int, str, str, float]]:
        """Rows left ``sending`` by a crash, made pending again with their send id kept.

        Returns ``(id, target_kind, send_id, sending_at)`` per row, so the dispatcher can decide
        when each message may safely go out again; each counts one uncertain outcome.

        With ``nonce_since`` (bot messages first sent since then are still protected by their
        nonce), a row whose earlier send had no known outcome either is left ``uncertain``
        instead, unless a nonce protects it: it has been sent twice without an answer, and a
        third send is worse than a probably delivered notification (the rule an unknown
        answer to a re-send follows while the engine runs). Such rows are not returned.
        ``nonce_since`` is the caller's clock, so only a first send the caller stamped itself
        (``sent_by``: ``spare``'s holder, ``claimed_by``, or an engine alone) can be judged
        protected; another instance's ``sending_at`` is its own clock's, ahead or behind.

        Without arguments every ``sending`` row (one engine: none can be in flight at its
        start). Several instances narrow it: ``tenant`` (a map whose lease the caller holds)
        with ``spare`` (that lease) recovers the map's rows claimed by anyone but the lease's
        current holder and token, i.e. claims of an instance that died or lost the lease;
        ``claimed_by`` recovers the rows one instance claimed (its own, at its stop).
        """
        clauses = ["status = 'sending'"]
        params: list[object] = []
        if tenant is not None:
            clauses.append("tenant_id = ?")
            params.append(tenant)
        if spare is not None:
            clauses.append(
                "(claimed_by IS NULL OR claim_token IS NULL OR claimed_by <> ? OR claim_token <> ?)"
            )
            params += [spare.owner, spare.token]
        if claimed_by is not None:
            clauses.append("claimed_by = ?")
            params.append(claimed_by)
        where = " AND ".join(clauses)
        found = self._conn.execute(
            f"SELECT id FROM outbox{self._sql.sending_index} WHERE {where}", params
        ).fetchall()
        if not found:
            return []
        why = (
            "in flight when the engine stopped: outcome unknown"
            if tenant is None
            else "in flight at an instance that lost the map's lease: outcome unknown"
        )
        me = spare.owner if spare is not None else claimed_by
        with self._writes.transaction("recover in-flight") as conn:
            if nonce_since is not None:
                conn.execute(
                    "UPDATE outbox SET status = 'uncertain', attempts = attempts + 1,"
                    " uncertain = uncertain + 1, last_error = ?, claimed_by = NULL,"
                    f" claim_token = NULL WHERE {where} AND uncertain > 0"
                    " AND (target_kind <> ? OR sending_at < ?"
                    " OR coalesce(sent_by, '') <> coalesce(?, ''))",
                    (
                        f"sent twice without an answer; probably delivered ({why})",
                        *params,
                        TargetKind.BOT_CHANNEL.value,
                        nonce_since,
                        me,
                    ),
                )
            rows = conn.execute(
                "UPDATE outbox SET status = 'pending', uncertain = uncertain + 1,"
                f" last_error = ?, claimed_by = NULL, claim_token = NULL WHERE {where}"
                " RETURNING id, target_kind, send_id, sending_at",
                (why, *params),
            ).fetchall()
        return sorted((int(i), str(k), str(s or ""), float(at or 0.0)) for i, k, s, at in rows)

    def schedule(self, row_ids: Sequence[int], *, next_attempt_at: float) -> None:
        """Set when pending rows are next due (no attempt counted)."""
        with self._writes.transaction("schedule") as conn:
            conn.execute(
                f"UPDATE outbox SET next_attempt_at = ? WHERE id IN ({_marks(row_ids)})",
                (next_attempt_at, *row_ids),
            )

    def resume_target(self, target_key: str, *, now: float) -> int:
        """Make a target's waiting rows due now (its sink answers again); return how many.

        Rows waiting out an unknown outcome (``uncertain``) keep their wait: that wait is what
        keeps a webhook message from posting twice.
        """
        with self._writes.transaction("resume target") as conn:
            cursor = conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE target_key = ?"
                " AND status = 'pending' AND next_attempt_at > ? AND uncertain = 0",
                (now, target_key, now),
            )
            return int(cursor.rowcount)

    # -- dead targets and failed rows (operator commands) --------------------------------------

    def dead_targets(self) -> list[DeadTarget]:
        """Every target currently held as dead."""
        rows = self._conn.execute(
            "SELECT tenant_id, target_key, reason, fingerprint, since FROM dead_targets"
        ).fetchall()
        return [DeadTarget(str(t), str(k), str(r), str(f), float(s)) for t, k, r, f, s in rows]

    def set_dead_target(
        self, tenant_id: str, target_key: str, *, reason: str, fingerprint: str, now: float
    ) -> None:
        """Hold a target: its rows wait until its credential changes or an operator retries."""
        with self._writes.transaction("dead target") as conn:
            conn.execute(
                "INSERT INTO dead_targets (tenant_id, target_key, reason, fingerprint, since)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, target_key) DO UPDATE SET"
                " reason = excluded.reason, fingerprint = excluded.fingerprint,"
                " since = excluded.since",
                (tenant_id, target_key, reason[:500], fingerprint, now),
            )

    def revive_target(self, target_key: str, *, tenant_id: str | None = None) -> Revived:
        """Forget that a target is dead and make its failed rows pending again; say what it
        changed, counted by the statements that changed it (one transaction): whether a dead
        mark went, the pending rows those marks held (of their maps only: another map posting to
        the same key was never held) and the failed rows re-queued.

        The rows it re-queues, failed ones and those the dead target held, count their maximum
        age from now (``aged_from``): a notification that expired, or waited out a long outage
        held, would otherwise fail again as expired at the first 5xx after the retry. A row
        whose send had no known outcome stays bound to its message (see :meth:`mark_failed`)."""
        tenant_clause = "" if tenant_id is None else " AND tenant_id = ?"
        params: tuple[str, ...] = (target_key,) if tenant_id is None else (target_key, tenant_id)
        now = time.time()
        with self._writes.transaction("revive target") as conn:
            held = conn.execute(
                "UPDATE outbox SET aged_from = ?"
                f" WHERE status = 'pending' AND target_key = ?{tenant_clause}"
                f" AND {_HELD_BY_DEAD}",
                (now, *params),
            ).rowcount
            marks = conn.execute(
                f"DELETE FROM dead_targets WHERE target_key = ?{tenant_clause}", params
            ).rowcount
            requeued = conn.execute(
                "UPDATE outbox SET status = 'pending', next_attempt_at = ?, aged_from = ?,"
                f" send_id = {_KEPT_IF_UNCERTAIN}"
                f" WHERE status = 'failed' AND target_key = ?{tenant_clause}",
                (now, now, *params),
            ).rowcount
        return Revived(int(marks) > 0, int(held), int(requeued))

    def forget_dead_target(
        self, tenant_id: str, target_key: str, *, fence: LeaseFence | None = None
    ) -> bool:
        """Stop holding a dead target no configuration names any more: its held rows are read
        again, and fail as no longer configured (its failed rows stay as they are). With
        ``fence`` (several instances), only while the map's lease is still the caller's,
        checked in the statement as :meth:`fail_unsent` checks it; False when no mark went."""
        held, lease = self._lease_still(fence)
        with self._writes.transaction("forget dead target") as conn:
            cursor = conn.execute(
                f"DELETE FROM dead_targets WHERE tenant_id = ? AND target_key = ?{held}",
                (tenant_id, target_key, *lease),
            )
        return int(cursor.rowcount) > 0

    def retarget_pending(
        self,
        tenant_id: str,
        target_key: str,
        *,
        to_kind: TargetKind,
        to_key: str,
        now: float,
        fence: LeaseFence | None = None,
    ) -> int:
        """Move a map's notifications waiting for ``target_key`` to another target (a reload
        pointed the routes that used it there); return how many, and stop holding the old key
        as dead for that map.

        Only rows whose earlier sends all had a known outcome move: one whose send's outcome
        was unknown (``uncertain``) may already be posted by the old target, and rows in flight
        settle with it. A send id kept after a known answer (429, 5xx, 401/403/404: see
        :data:`_KEPT_IF_UNCERTAIN`) binds the rows to one message of the old target and is
        dropped; except a bot message's after a transient failure (its target not dead), whose
        nonce guards a post a 5xx may hide: it stays. The moved rows are due now; those a dead
        target held count their maximum age from now (as :meth:`revive_target`'s do). With
        ``fence`` (several instances), nothing changes unless the map's lease is still the
        caller's, checked in the statements as :meth:`fail_pending` checks it."""
        held, lease = self._lease_still(fence)
        with self._writes.transaction("retarget pending") as conn:
            return self._retarget(conn, tenant_id, target_key, to_kind, to_key, now, held, lease)

    def _retarget(
        self,
        conn: DbConnection,
        tenant_id: str,
        target_key: str,
        to_kind: TargetKind,
        to_key: str,
        now: float,
        held: str,
        lease: tuple[object, ...],
    ) -> int:
        """:meth:`retarget_pending`'s statements, in the caller's transaction."""
        cursor = conn.execute(
            "UPDATE outbox SET target_kind = ?, target_key = ?, next_attempt_at = ?,"
            f" send_id = NULL, aged_from = CASE WHEN {_HELD_BY_DEAD} THEN ? ELSE aged_from END"
            " WHERE tenant_id = ? AND target_key = ? AND status = 'pending'"
            " AND uncertain = 0 AND (send_id IS NULL OR target_kind = 'webhook'"
            f" OR {_HELD_BY_DEAD}){held}",
            (to_kind.value, to_key, now, now, tenant_id, target_key, *lease),
        )
        conn.execute(
            f"DELETE FROM dead_targets WHERE tenant_id = ? AND target_key = ?{held}",
            (tenant_id, target_key, *lease),
        )
        return int(cursor.rowcount)

    def recorded_routes(self) -> dict[str, dict[str, str]]:
        """The routing each map last ran with, by map: route (or ``tracker:NAME``) -> target
        key (see :meth:`record_routes`)."""
        rows = self._conn.execute("SELECT tenant_id, routes FROM map_routes").fetchall()
        return {str(tenant): dict(orjson.loads(routes)) for tenant, routes in rows}

    def record_routes(
        self,
        tenant_id: str,
        routes: Mapping[str, str],
        *,
        moves: Mapping[str, tuple[TargetKind, str]] | None = None,
        now: float | None = None,
        fence: LeaseFence | None = None,
    ) -> dict[str, int] | None:
        """Record the routing a map runs with (route -> target key: keys only, never a URL),
        after moving its notifications waiting for the old keys of ``moves`` (old key -> the new
        target's kind and key, each as :meth:`retarget_pending` moves them), all in one
        transaction: a crash leaves the old routing recorded with nothing moved, which the next
        start decides again. Returns the rows moved by old key; ``None`` when ``fence``'s lease
        (several instances) is no longer the caller's: then nothing changed, the map's holder
        records it."""
        at = time.time() if now is None else now
        held, lease = self._lease_still(fence)
        body = orjson.dumps(dict(routes), option=orjson.OPT_SORT_KEYS).decode()
        with self._writes.transaction("record routes") as conn:
            moved = {
                old: self._retarget(conn, tenant_id, old, kind, key, at, held, lease)
                for old, (kind, key) in (moves or {}).items()
            }
            written = conn.execute(
                "INSERT INTO map_routes (tenant_id, routes, recorded_at) SELECT ?, ?, ?"
                f" WHERE 1 = 1{held} ON CONFLICT (tenant_id) DO UPDATE SET"
                " routes = excluded.routes, recorded_at = excluded.recorded_at",
                (tenant_id, body, at, *lease),
            ).rowcount
        return moved if written else None

    def failed_rows(self, *, target_key: str | None = None, limit: int = 1000) -> list[FailedRow]:
        """Failed rows, and rows held by dead targets, newest first.

        A pending row is held only by its own map's dead mark (:data:`_HELD_BY_DEAD`, the
        condition :meth:`revive_target` counts): two maps may post to one webhook and Discord
        refuse it for one map's credential only; the other map's rows are being sent, and are
        neither "held" in ``outbox list`` nor given a place of its ``limit``."""
        held = f"status IN ('failed', 'uncertain') OR (status = 'pending' AND {_HELD_BY_DEAD})"
        where = f"({held})" + ("" if target_key is None else " AND target_key = ?")
        params: tuple[object, ...] = () if target_key is None else (target_key,)
        rows = self._conn.execute(
            "SELECT id, tenant_id, target_key, type, status, attempts, last_error, created_at"
            f" FROM outbox WHERE {where} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        ).fetchall()
        return [FailedRow(*row) for row in rows]

    def drop_failed(self, *, target_key: str | None = None, row_ids: Sequence[int] = ()) -> int:
        """Mark failed or uncertain rows (of a target, or by id) ``dropped``: the operator gives
        up on them."""
        clauses = ["status IN ('failed', 'uncertain')"]
        params: list[object] = []
        if target_key is not None:
            clauses.append("target_key = ?")
            params.append(target_key)
        if row_ids:
            clauses.append(f"id IN ({_marks(row_ids)})")
            params.extend(row_ids)
        with self._writes.transaction("drop failed") as conn:
            cursor = conn.execute(
                f"UPDATE outbox SET status = 'dropped' WHERE {' AND '.join(clauses)}", params
            )
        return int(cursor.rowcount)
