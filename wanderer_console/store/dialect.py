"""Where the store's SQL differs between SQLite and PostgreSQL: every difference, in one place.

The store's statements are written once (``?`` placeholders, which the PostgreSQL connection
turns into ``%s``); the few fragments that cannot be the same text on both are here:

* **Index hints.** SQLite has no statistics until ``ANALYZE``, so the dispatcher's queries name
  the partial index of pending rows (``INDEXED BY``); PostgreSQL has no hints and picks it from
  its statistics.
  The events browser's reads name theirs too (:meth:`Dialect.indexed_by`).
* **Byte order.** A key range (a kill's tracker messages) compares bytes: ``COLLATE "C"`` on
  PostgreSQL, whose default collation may not; SQLite always does.
* **Null-safe equality.** ``a IS ?`` on SQLite is ``a IS NOT DISTINCT FROM ?`` on PostgreSQL.
* **The larger of two values.** SQLite's two-argument ``max()`` is ``GREATEST()``; the cursor
  column compares bytewise on both (PostgreSQL declares it ``COLLATE "C"``).
* **Claiming rows.** PostgreSQL locks the rows it claims and skips rows another transaction
  holds (``FOR UPDATE SKIP LOCKED``), so several engines could share one outbox; SQLite's
  ``BEGIN IMMEDIATE`` already serialises writers. A fenced claim (several instances) also
  share-locks the lease row it checks, so a takeover cannot commit in the middle of it.
* **The database's clock.** Lease expiry is compared with the server's clock, never with an
  instance's (instances on several hosts disagree): ``extract(epoch from clock_timestamp())``
  on PostgreSQL, ``julianday('now')`` turned into Unix seconds on SQLite.

Table definitions differ too (types, identity columns): each migration carries both texts
(:mod:`~wanderer_console.store.migrations`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PAUSE_CHANNEL", "POSTGRESQL", "SQLITE", "Dialect"]

PAUSE_CHANNEL = "wc_delivery_pause"
"""The PostgreSQL notification channel a pause or resume of the cluster is announced on."""


@dataclass(frozen=True, slots=True)
class Dialect:
    """The SQL fragments one backend spells its own way."""

    name: str
    pending_index: str
    """Hint after ``FROM outbox`` for queries on pending rows by target."""
    sending_index: str
    """Hint after ``FROM outbox`` for queries on in-flight rows."""
    same_send_id: str
    """``send_id`` equals the parameter, NULL equal to NULL."""
    cursor_max: str
    """The upserted cursor value: the larger of the stored and the proposed one."""
    lock_claimed: bool
    """Claim through ``FOR UPDATE SKIP LOCKED``."""
    clock: str
    """The database's wall clock now, in Unix seconds (lease expiry is measured by it)."""
    lock_lease: str
    """After the fenced claim's look at its lease row: lock it against a concurrent takeover."""

    browse_setup: str = ""
    """Run before the events browser's filtered read, in its transaction: PostgreSQL's JIT
    compiles that statement for ~0.4 s (its correlated look-ups inflate the estimated cost)
    while it runs in milliseconds."""

    notify_pause: str = ""
    """In the transaction of a pause or a resume of the cluster: tell the engines listening, so
    they follow it at once rather than at their next heartbeat (PostgreSQL's ``NOTIFY``, sent
    at the commit)."""

    bytewise: str = ""
    """After a text column compared by range: compare its bytes (PostgreSQL's default collation
    may order punctuation otherwise; SQLite compares bytes already)."""

    def indexed_by(self, index: str) -> str:
        """A hint to put after a table name: read it through ``index`` (SQLite only).

        The events browser names its indexes: without statistics SQLite picked ``outbox_due``
        for a status test (walking every sent row) and the events' unique index for a map
        filter (reading all of a map's events, then sorting them)."""
        return f" INDEXED BY {index}" if self.name == "sqlite" else ""

    def claimable(self, marks: str) -> str:
        """The ``WHERE`` clause of a claim of the rows ``id IN (marks)`` still pending."""
        if not self.lock_claimed:
            return f"id IN ({marks}) AND status = 'pending'"
        return (
            f"id IN (SELECT id FROM outbox WHERE id IN ({marks}) AND status = 'pending'"
            " FOR UPDATE SKIP LOCKED) AND status = 'pending'"
        )


SQLITE = Dialect(
    name="sqlite",
    pending_index=" INDEXED BY outbox_pending_target",
    sending_index=" INDEXED BY outbox_sending",
    same_send_id="send_id IS ?",
    cursor_max="max(value, excluded.value)",
    lock_claimed=False,
    clock="((julianday('now') - 2440587.5) * 86400.0)",
    lock_lease="",
)

POSTGRESQL = Dialect(
    name="postgresql",
    pending_index="",
    sending_index="",
    same_send_id="send_id IS NOT DISTINCT FROM ?",
    cursor_max="GREATEST(cursors.value, excluded.value)",
    lock_claimed=True,
    clock="extract(epoch from clock_timestamp())::double precision",
    lock_lease=" FOR SHARE",
    browse_setup="SET LOCAL jit = off",
    bytewise=' COLLATE "C"',
    notify_pause=f"NOTIFY {PAUSE_CHANNEL}",
)
