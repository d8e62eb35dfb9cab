"""The store on each backend: migrations, atomic event + outbox writes, monotonic cursors.

Tests that take ``store_location`` run on SQLite and on PostgreSQL (``tests/conftest.py``);
the few about SQLite's file (WAL, checkpoints, file mode, query plans) run on SQLite only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store import SqliteStore, StoredEvent
from wanderer_console.store.backends import connect, open_store
from wanderer_console.store.base import StoreLocation
from wanderer_console.store.migrations import SCHEMA_VERSION


def _event(event_id: str = "01A", tenant: str = "home") -> StoredEvent:
    return StoredEvent(tenant, event_id, "sse:home", "add_system", 1.0, "{}")


def _note(key: str) -> Notification:
    target = Target(TargetKind.WEBHOOK, "https://discord.com/api/webhooks/1/tok", "home")
    return Notification("home", NotificationType.SYSTEM, key, target, {"embeds": [{"title": key}]})


def test_schema_is_migrated_and_wal(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    assert store.schema_version == SCHEMA_VERSION
    mode = sqlite3.connect(tmp_path / "db.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()
    # Re-opening an up-to-date database applies nothing and keeps the data.
    again = SqliteStore(tmp_path / "db.sqlite")
    assert again.schema_version == SCHEMA_VERSION
    again.close()


def test_reopening_a_migrated_store_keeps_its_data(store_location: StoreLocation) -> None:
    store = open_store(store_location)
    assert store.schema_version == SCHEMA_VERSION
    store.record_event(_event(), [_note("a")], cursor=("sse:home", "01A"))
    store.close()
    again = open_store(store_location)
    assert again.schema_version == SCHEMA_VERSION
    assert again.has_event("home", "01A")
    assert again.get_cursor("sse:home") == "01A"
    assert [row.dedup_key for row in again.due_outbox(now=1e12)] == ["a"]
    again.close()


def test_newer_schema_is_refused(store_location: StoreLocation) -> None:
    open_store(store_location).close()
    conn = connect(store_location)
    conn.execute("UPDATE schema_version SET version = 999")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this build"):
        open_store(store_location)


def test_event_and_notifications_written_once(store_location: StoreLocation) -> None:
    store = open_store(store_location)
    assert store.record_event(_event(), [_note("system:01A")], now=1.0) is True
    assert store.record_event(_event(), [_note("system:01A-again")], now=1.0) is False
    assert store.event_count() == 1
    rows = store.due_outbox(now=10.0)
    assert [r.dedup_key for r in rows] == ["system:01A"]
    assert rows[0].target_key == "webhook:1"
    assert "tok" not in rows[0].target_key


def test_sent_rows_are_never_due_again(store_location: StoreLocation) -> None:
    store = open_store(store_location)
    store.record_event(_event(), [_note("a"), _note("b")], now=1.0)
    first, second = store.due_outbox(now=2.0)
    store.mark_sent(first.id)
    store.release([second.id], next_attempt_at=100.0, error="HTTP 500")
    assert store.due_outbox(now=50.0) == []
    assert [r.dedup_key for r in store.due_outbox(now=100.0)] == ["b"]
    assert store.outbox_counts() == {"sent": 1, "pending": 1}
    store.mark_failed(second.id, error="gone")
    assert store.outbox_counts() == {"sent": 1, "failed": 1}


def test_cursor_only_moves_forward(store_location: StoreLocation) -> None:
    store = open_store(store_location)
    assert store.get_cursor("sse:home") is None
    store.record_event(_event("01B"), cursor=("sse:home", "01B"))
    store.record_event(_event("01A"), cursor=("sse:home", "01A"))
    assert store.get_cursor("sse:home") == "01B"
    # A duplicate still advances the cursor.
    store.record_event(_event("01B"), cursor=("sse:home", "01C"))
    assert store.get_cursor("sse:home") == "01C"


def test_failed_transaction_writes_nothing(store_location: StoreLocation) -> None:
    store = open_store(store_location)

    bad = _note("x")
    object.__setattr__(bad, "body", {"not": {1, 2}})  # a set is not JSON: the write fails
    with pytest.raises(TypeError):
        store.record_event(_event(), [bad])
    assert store.event_count() == 0
    assert store.record_event(_event(), [_note("ok")]) is True


def test_prune_keeps_pending_and_recent(store_location: StoreLocation) -> None:
    store = open_store(store_location)
    old = StoredEvent("home", "01OLD", "sse:home", "add_system", 100.0, "{}")
    new = StoredEvent("home", "01NEW", "sse:home", "add_system", 5_000.0, "{}")
    store.record_event(old, [_note("old-sent"), _note("old-pending")], now=100.0)
    store.record_event(new, [_note("new-sent")], now=5_000.0)
    rows = {r.dedup_key: r.id for r in store.due_outbox(now=10_000.0)}
    store.mark_sent(rows["old-sent"])
    store.mark_sent(rows["new-sent"])
    assert store.prune(before=1_000.0) == (1, 1)
    assert store.event_count() == 1
    assert store.outbox_counts() == {"pending": 1, "sent": 1}  # old pending kept


def test_whichever_part_creates_the_database_makes_it_private(tmp_path: Path) -> None:
    from wanderer_console.config.audit import ConfigAudit
    from wanderer_console.server.tenants import TenantRegistry

    for name, opener in (("a.db", SqliteStore), ("b.db", ConfigAudit), ("c.db", TenantRegistry)):
        part = opener(tmp_path / name)
        part.close()
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o600, name


def _note_to(key: str, webhook_id: str) -> Notification:
    target = Target(TargetKind.WEBHOOK, f"https://discord.com/api/webhooks/{webhook_id}/t", "home")
    return Notification("home", NotificationType.KILL, key, target, {"embeds": [{"title": key}]})


def test_due_outbox_reads_oldest_first_across_targets_without_the_backlog(
    store_location: StoreLocation,
) -> None:
    store = open_store(store_location)
    # A long backlog for one target, interleaved with a few rows for two others.
    notes = []
    for i in range(300):
        notes.append(_note_to(f"big-{i}", "1"))
        if i % 100 == 0:
            notes.append(_note_to(f"two-{i}", "2"))
            notes.append(_note_to(f"three-{i}", "3"))
    store.enqueue(notes, now=1.0)
    assert store.pending_targets() == ["webhook:1", "webhook:2", "webhook:3"]
    rows = store.due_outbox(2.0, limit=5)
    assert [r.dedup_key for r in rows] == ["big-0", "two-0", "three-0", "big-1", "big-2"]
    others = store.due_outbox(2.0, limit=100, exclude_targets={"webhook:1"})
    assert [r.dedup_key for r in others] == [
        "two-0",
        "three-0",
        "two-100",
        "three-100",
        "two-200",
        "three-200",
    ]
    assert store.outbox_depth() == {"webhook:1": 300, "webhook:2": 3, "webhook:3": 3}
    store.close()
    if not isinstance(store_location, Path):
        return  # PostgreSQL plans by its statistics; SQLite is told the index (INDEXED BY)
    # The queries walk the pending-by-target index, never the whole backlog (plan checked).
    store = open_store(store_location)
    plan = store._conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM outbox INDEXED BY outbox_pending_target"
        " WHERE status = 'pending' AND target_key = ?"
        " AND (next_attempt_at <= ? OR uncertain = 0) ORDER BY id LIMIT 5",
        ("webhook:2", 2.0),
    ).fetchall()
    assert "outbox_pending_target" in str(plan)
    assert "TEMP B-TREE" not in str(plan)
    store.close()


def test_due_outbox_keeps_a_targets_order_across_a_backoff(
    store_location: StoreLocation,
) -> None:
    """A target is read from its oldest pending row: a row waiting out a backoff comes back
    first once a later row of its target is due (the resolved alert after its firing one), a
    row waiting out an unknown outcome keeps its wait, and a target with nothing due is not
    read at all."""
    store = open_store(store_location)
    store.enqueue([_note_to(f"a-{i}", "1") for i in range(3)] + [_note_to("b-0", "2")], now=1.0)
    first = {row.dedup_key: row.id for row in store.due_outbox(2.0, limit=10)}
    store.release([first["a-0"]], next_attempt_at=50.0, error="503")
    store.release([first["a-1"]], next_attempt_at=50.0, error="timeout", uncertain=True)
    store.release([first["b-0"]], next_attempt_at=50.0, error="503")

    rows = store.due_outbox(2.0, limit=10)
    assert [r.dedup_key for r in rows] == ["a-0", "a-2"]
    assert rows[0].next_attempt_at == 50.0
    assert rows[1].next_attempt_at == 1.0
    # The limit still holds: the backlog's oldest rows, the due one beyond it found.
    assert [r.dedup_key for r in store.due_outbox(2.0, limit=1)] == ["a-0"]
    # Nothing of target 1 due any more: neither target is read until its rows are.
    store.release([first["a-2"]], next_attempt_at=50.0, error="503")
    assert store.due_outbox(2.0, limit=10) == []
    assert [r.dedup_key for r in store.due_outbox(50.0, limit=10)] == ["a-0", "a-1", "a-2", "b-0"]
    store.close()


def test_due_outbox_leaves_a_held_target_out_for_its_map_only(
    store_location: StoreLocation,
) -> None:
    """A target held for one map (dead for its credential) leaves that map's rows out of the
    read; another map's rows for the same channel are read."""
    store = open_store(store_location)
    notes = []
    for tenant in ("home", "other", "home"):
        target = Target(TargetKind.BOT_CHANNEL, "42", tenant)
        key = f"{tenant}-{len(notes)}"
        notes.append(Notification(tenant, NotificationType.KILL, key, target, {"content": key}))
    notes.append(_note_to("elsewhere", "1"))
    store.enqueue(notes, now=1.0)
    rows = store.due_outbox(2.0, limit=10, held={("home", "channel:42")})
    assert [r.dedup_key for r in rows] == ["other-1", "elsewhere"]
    assert len(store.due_outbox(2.0, limit=10)) == 4
    store.close()


def test_record_events_tells_new_from_repeated_within_and_across_batches(
    store_location: StoreLocation,
) -> None:
    from wanderer_console.store.base import PendingWrite

    store = open_store(store_location)
    assert store.record_event(_event("old"))
    writes = [
        PendingWrite(_event("a"), [_note("note-a")], ("sse:home", "01B")),
        PendingWrite(_event("old"), [_note("note-old")]),  # already stored
        PendingWrite(_event("b"), []),
        PendingWrite(_event("a"), [_note("note-a2")]),  # repeated within the batch
    ]
    # More rows than one multi-row statement carries, so chunks meet too.
    writes += [PendingWrite(_event(f"bulk-{i}"), []) for i in range(450)]
    inserted = store.record_events(writes, now=5.0)
    assert inserted[:4] == [True, False, True, False]
    assert all(inserted[4:])
    assert store.event_count() == 1 + 2 + 450
    assert store.events_written == 1 + 2 + 450
    keys = {row.dedup_key for row in store.due_outbox(10.0, limit=10)}
    assert keys == {"note-a"}  # a repeat writes no notification
    assert store.get_cursor("sse:home") == "01B"
    store.close()


def test_wal_is_checkpointed_off_the_writers_connection(tmp_path: Path) -> None:
    import time

    path = tmp_path / "db.sqlite"
    store = SqliteStore(path, checkpoint_interval=0.05)
    assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    for i in range(300):
        store.record_event(_event(f"e{i}"))
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size > 0
    deadline = time.monotonic() + 10
    while store.checkpointer.checkpoints < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert store.checkpointer.checkpoints >= 2
    assert store.checkpointer.failures == 0
    # Every frame the writer committed has been copied into the database file already.
    other = sqlite3.connect(path)
    busy, log_frames, copied = other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    other.close()
    assert busy == 0
    assert log_frames == copied
    store.close()
    assert not store.checkpointer._thread.is_alive()
    assert not wal.exists() or wal.stat().st_size == 0  # folded in at a clean close
    assert SqliteStore(path).event_count() == 300


def test_failed_checkpoint_is_counted_not_raised(tmp_path: Path) -> None:
    from wanderer_console.store.checkpoint import WalCheckpointer

    checkpointer = WalCheckpointer(tmp_path / "db.sqlite")
    closed = sqlite3.connect(tmp_path / "db.sqlite")
    closed.close()
    checkpointer.checkpoint(closed)  # sqlite3.ProgrammingError is an sqlite3.Error
    assert checkpointer.failures == 1
    assert checkpointer.checkpoints == 0


def test_a_hosted_maps_key_is_kept_once_and_never_given_to_two_maps(
    store_location: StoreLocation,
) -> None:
    store = open_store(store_location)
    assert store.hosted_map_keys() == {}
    kept = store.keep_hosted_map_keys({"m-1": ("home", "home"), "m-2": ("away", "away")})
    assert kept == {"m-1": "home", "m-2": "away"}
    # A map keyed already keeps its key (another engine's later proposal, a renamed slug's);
    # a key already some map's is not given to another one.
    kept = store.keep_hosted_map_keys({"m-1": ("home-2", "home-2"), "m-3": ("home", "home")})
    assert kept == {"m-1": "home", "m-2": "away"}
    store.close()
    assert open_store(store_location).hosted_map_keys() == kept
