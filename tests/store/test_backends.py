"""The same behaviour on SQLite and PostgreSQL: a row's life in the outbox, dead targets, the
enrichment cache, the write guard, tenants and the config audit (every test runs on both)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

import pytest

from wanderer_console.config.audit import ConfigAudit
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.server.tenants import TenantError, TenantRegistry
from wanderer_console.store.backends import open_store
from wanderer_console.store.base import (
    ClaimRequest,
    DatabaseUrl,
    LeaseFence,
    SentMessage,
    Store,
    StoredEvent,
    StoreLocation,
)
from wanderer_console.store.maintenance import Maintenance
from wanderer_console.store.migrations import SCHEMA_VERSION
from wanderer_console.store.writes import StoreWriteError


def _note(key: str, webhook_id: str = "1") -> Notification:
    target = Target(TargetKind.WEBHOOK, f"https://discord.com/api/webhooks/{webhook_id}/t", "home")
    return Notification("home", NotificationType.KILL, key, target, {"embeds": [{"title": key}]})


def _event(event_id: str, at: float = 1.0) -> StoredEvent:
    return StoredEvent("home", event_id, "sse:home", "add_system", at, "{}")


def _raw(location: StoreLocation) -> Any:
    """A connection of the test's own, beside the store's (autocommit)."""
    if isinstance(location, DatabaseUrl):
        import psycopg

        return psycopg.connect(location.secret(), autocommit=True)
    return sqlite3.connect(location, isolation_level=None)


def test_a_row_is_claimed_before_its_send_and_recovered_after_a_crash(store: Store) -> None:
    store.enqueue([_note("a"), _note("b"), _note("c", "2")], now=1.0)
    a, b, c = store.due_outbox(now=2.0)
    assert store.claim([a.id, b.id], send_id="send-1", now=10.0) == 2
    assert store.claim([a.id], send_id="send-2", now=11.0) == 0  # already in flight
    assert store.claim([], send_id="none") == 0
    assert store.outbox_depth() == {"webhook:1": 2, "webhook:2": 1}
    assert [row.dedup_key for row in store.due_outbox(now=20.0)] == ["c"]
    # A crash: both rows are found in flight, made pending again with their send id kept.
    found = store.recover_in_flight()
    assert sorted((i, k, s, at) for i, k, s, at in found) == [
        (a.id, "webhook", "send-1", 10.0),
        (b.id, "webhook", "send-1", 10.0),
    ]
    again = {row.id: row for row in store.due_outbox(now=20.0)}
    assert again[a.id].send_id == "send-1"
    assert again[a.id].uncertain == 1
    # Re-sent under its own send id, a message keeps its first send time (the nonce window).
    assert store.claim([a.id, b.id], send_id="send-1", now=30.0) == 2
    assert store.recover_in_flight()[0][3] == 10.0
    store.release([a.id, b.id], next_attempt_at=40.0, error="HTTP 500", keep_send_id=True)
    assert store.next_due_at() == 1.0  # c is still due since it was written
    # Not due yet at 20.0: the retry at 40.0 (the dispatcher's wait after a look at 20.0).
    assert store.next_due_at(after=20.0) == 40.0
    assert store.next_due_at(after=40.0) is None  # due at 40.0 is not "after" it
    store.mark_sent([c.id], now=41.0)
    assert store.next_due_at() == 40.0
    store.mark_unconfirmed([a.id], error="timed out twice")
    store.mark_failed(b.id, error="HTTP 400: bad embed")
    assert store.outbox_counts() == {"uncertain": 1, "failed": 1, "sent": 1}
    assert {(r.id, r.status) for r in store.failed_rows()} == {
        (a.id, "uncertain"),
        (b.id, "failed"),
    }
    assert store.drop_failed(row_ids=[a.id]) == 1
    assert store.outbox_counts() == {"dropped": 1, "failed": 1, "sent": 1}


def test_claims_and_confirmations_written_together_keep_each_messages_own(
    store_location: StoreLocation,
) -> None:
    """Several messages claimed in one transaction, then confirmed in one: each keeps its own
    send id, confirmation time and Discord message id."""
    store = open_store(store_location)
    raw = _raw(store_location)
    try:
        store.enqueue([_note("a"), _note("b"), _note("c", "2"), _note("d", "3")], now=1.0)
        a, b, c, d = store.due_outbox(now=2.0)
        claims = [
            ClaimRequest([a.id, b.id], "send-1"),
            ClaimRequest([c.id], "send-2"),
            ClaimRequest([d.id], "send-3"),
        ]
        assert store.claim_all(claims, now=3.0) == [2, 1, 1]
        assert raw.execute("SELECT send_id FROM outbox ORDER BY id").fetchall() == [
            ("send-1",),
            ("send-1",),
            ("send-2",),
            ("send-3",),
        ]
        # Messages of one row (a fan-out's) are written by one statement run for each.
        store.mark_sent_all(
            [
                SentMessage([a.id, b.id], 4.0, "m-1"),
                SentMessage([c.id], 5.0),
                SentMessage([d.id], 6.0, "m-3"),
            ]
        )
        rows = raw.execute(
            "SELECT status, sent_at, message_id, send_id, attempts FROM outbox ORDER BY id"
        ).fetchall()
        assert [tuple(row) for row in rows] == [
            ("sent", 4.0, "m-1", None, 1),
            ("sent", 4.0, "m-1", None, 1),
            ("sent", 5.0, None, None, 1),
            ("sent", 6.0, "m-3", None, 1),
        ]
        assert store.recover_in_flight() == []
    finally:
        raw.close()
        store.close()


def test_a_confirmation_kept_past_a_stop_changes_only_rows_still_claimed_by_its_send(
    store: Store,
) -> None:
    """A confirmation the spill kept is applied to rows still ``sending`` under its send id
    (and its lease's holder and token): never to rows recovered, re-claimed by a later send or
    taken over by another instance since; applying it twice changes nothing."""
    store.enqueue([_note(key) for key in "abcd"], now=1.0)
    a, b, c, d = store.due_outbox(now=2.0)
    grant = store.acquire_lease("map:home", "old", 30.0)
    assert grant is not None
    old = LeaseFence("map:home", "old", grant.lease.token)
    assert store.claim([a.id], send_id="s-a", now=3.0) == 1
    assert store.claim([b.id], send_id="s-b", now=3.0) == 1
    assert store.claim([c.id], send_id="s-c", now=3.0, fence=old) == 1
    assert store.claim([d.id], send_id="s-d", now=3.0) == 1
    # b recovered as uncertain since; d recovered, then claimed as a new message.
    store.release([b.id, d.id], next_attempt_at=3.0, error=None, uncertain=True)
    assert store.claim([d.id], send_id="s-d2", now=4.0) == 1
    kept = [
        SentMessage([a.id], 5.0, "m-a", "s-a"),
        SentMessage([b.id], 5.0, "m-b", "s-b"),
        SentMessage([c.id], 5.0, "m-c", "s-c", LeaseFence("map:home", "old", old.token + 1)),
        SentMessage([d.id], 5.0, "m-d", "s-d"),
    ]
    assert store.mark_sent_if_claimed(kept) == 1
    assert store.mark_sent_if_claimed(kept[:1]) == 0  # applied once only
    assert store.mark_sent_if_claimed([SentMessage([c.id], 5.0, "m-c", "s-c", old)]) == 1
    assert sorted(store.outbox_counts().items()) == [("pending", 1), ("sending", 1), ("sent", 2)]


def test_a_dead_target_holds_its_rows_until_revived(store: Store) -> None:
    store.enqueue([_note("a"), _note("b")], now=1.0)
    a, b = store.due_outbox(now=2.0)
    store.set_dead_target("home", "webhook:1", reason="HTTP 404", fingerprint="fp1", now=5.0)
    store.set_dead_target("home", "webhook:1", reason="HTTP 401", fingerprint="fp2", now=6.0)
    (dead,) = store.dead_targets()
    assert (dead.reason, dead.fingerprint, dead.since) == ("HTTP 401", "fp2", 6.0)
    store.mark_failed(a.id, error="HTTP 404")
    held = {row.id: row.status for row in store.failed_rows(target_key="webhook:1")}
    assert held == {a.id: "failed", b.id: "pending"}  # b waits behind the dead target
    assert store.revive_target("webhook:1", tenant_id="home") == (True, 1, 1)  # b held, a failed
    assert store.dead_targets() == []
    assert {row.id for row in store.due_outbox(now=1e12)} == {a.id, b.id}


def test_the_enrichment_cache_keeps_one_version_until_it_expires(store: Store) -> None:
    rows = [("system", "1", 2, '"Jita"', 100.0), ("system", "2", 2, '"Amarr"', 10.0)]
    assert store.save_cache_entries(rows) == 2
    assert store.save_cache_entries([("system", "1", 2, '"Jita IV"', 200.0)]) == 1  # upsert
    assert store.save_cache_entries([("system", "1", 1, '"old"', 200.0)]) == 1
    assert store.load_cache_entries(2, now=50.0) == [("system", "1", 2, '"Jita IV"', 200.0)]
    assert store.prune_cache_entries(2, now=50.0) == 2  # the expired one and the old version
    assert store.load_cache_entries(2, now=0.0) == [("system", "1", 2, '"Jita IV"', 200.0)]


def test_a_failed_write_sets_the_fault_until_a_write_succeeds(
    store_location: StoreLocation,
) -> None:
    errors: list[str] = []
    store = open_store(store_location, on_write_error=errors.append)
    raw = _raw(store_location)
    try:
        store.set_cursor("sse:home", "01A")
        raw.execute("DROP TABLE cursors")  # every cursor write now fails
        with pytest.raises(StoreWriteError, match=r"set cursor"):
            store.set_cursor("sse:home", "01B")
        with pytest.raises(StoreWriteError):
            store.record_event(_event("e1"), [_note("n1")], cursor=("sse:home", "01B"))
        fault = store.write_fault
        assert fault is not None
        assert fault.failures == 2
        assert "cursors" in fault.reason
        assert errors == ["set cursor", "record events"]
        assert store.event_count() == 0  # the failed batch left nothing behind
        raw.execute(
            "CREATE TABLE cursors (stream TEXT PRIMARY KEY, value TEXT NOT NULL,"
            " updated_at DOUBLE PRECISION NOT NULL)"
        )
        assert store.record_event(_event("e1"), [_note("n1")], cursor=("sse:home", "01B"))
        assert store.write_fault is None
        assert store.get_cursor("sse:home") == "01B"
        assert store.ping()
    finally:
        raw.close()
        store.close()


def test_tenants_and_the_config_audit_live_in_the_stores_database(
    store_location: StoreLocation,
) -> None:
    open_store(store_location).close()
    tenants = TenantRegistry(store_location)
    key = tenants.add("home", now=1.0)
    with pytest.raises(TenantError, match="already exists"):
        tenants.add("home")
    assert tenants.authenticate(key) == "home"
    tenants.disable("home", now=2.0)
    assert tenants.authenticate(key) is None
    new_key = tenants.enable("home", rotate=True, now=3.0)
    assert new_key is not None
    assert tenants.authenticate(new_key) == "home"
    assert [t.slug for t in tenants.list()] == ["home"]
    tenants.close()
    tenants.close()  # idempotent

    audit = ConfigAudit(store_location)
    first = audit.record("startup", None, "[console]\n", {"changes": []}, now=1.0)
    second = audit.record("file", None, "[console]\ndry_run = true\n", {"changes": []}, now=2.0)
    assert second > first > 0
    assert [entry.id for entry in audit.history()] == [first, second]
    entry = audit.get(second)
    assert entry is not None
    assert entry.content == "[console]\ndry_run = true\n"
    audit.close()
    # Opened again: the one-time sweep is recorded, the history kept.
    again = ConfigAudit(store_location)
    assert len(again.history()) == 2
    again.close()


def test_retention_prunes_old_events_and_finished_notifications_only(store: Store) -> None:
    store.record_event(
        _event("old", at=100.0), [_note("old-sent"), _note("old-pending")], now=100.0
    )
    store.record_event(_event("new", at=5_000.0), [_note("new-sent")], now=5_000.0)
    rows = {row.dedup_key: row.id for row in store.due_outbox(now=10_000.0)}
    store.mark_sent([rows["old-sent"], rows["new-sent"]])
    assert store.prune(before=1_000.0) == (1, 1)
    assert not store.has_event("home", "old")
    assert store.has_event("home", "new")
    assert store.outbox_counts() == {"pending": 1, "sent": 1}
    assert [e.event_id for e in store.events_since(1_000.0)] == ["new"]


def test_check_integrity_finds_a_sound_database(store: Store) -> None:
    assert store.check_integrity() is None


def test_an_events_schema_version_has_its_own_column(store: Store) -> None:
    """Migration 10: a posted event's declared version is stored beside it and read back;
    an event that declares none reads back ``None``."""
    posted = StoredEvent("home", "api:1", "api", "custom", 1.0, '{"title": "x"}', "1.2.0")
    assert store.record_event(posted)
    assert store.record_event(_event("01KEM3Z4XQ8Y5N6P7R8S9T0V01", at=2.0))
    first, second = store.events_since(0.0)
    assert first == posted
    assert first.schema_version == "1.2.0"
    assert second.schema_version is None


def test_a_write_probe_is_a_real_write_that_clears_the_fault(
    store_location: StoreLocation,
) -> None:
    # A part with nothing of its own to write (delivery, its outcomes all recorded) probes a
    # failing store with it: it must fail while the store refuses writes, and clear the fault
    # once a write succeeds.
    store = open_store(store_location)
    raw = _raw(store_location)
    try:
        raw.execute("ALTER TABLE schema_version RENAME TO schema_version_away")
        with pytest.raises(StoreWriteError, match=r"write probe"):
            store.probe_write()
        assert store.write_fault is not None
        raw.execute("ALTER TABLE schema_version_away RENAME TO schema_version")
        store.probe_write()
        assert store.write_fault is None
        assert store.schema_version == SCHEMA_VERSION  # rewritten as it was
        version = raw.execute("SELECT version FROM schema_version").fetchone()[0]
        assert version == SCHEMA_VERSION
    finally:
        raw.close()
        store.close()


def test_retention_keeps_old_notifications_whose_outcome_is_uncertain(store: Store) -> None:
    """A notification sent twice without an answer (``uncertain``) waits for the operator to
    check the channel and drop or retry it: however old, retention never deletes it."""
    store.record_event(_event("old", at=100.0), [_note("unsure"), _note("sent")], now=100.0)
    rows = {row.dedup_key: row.id for row in store.due_outbox(now=200.0)}
    store.mark_unconfirmed([rows["unsure"]], error="timed out twice")
    store.mark_sent([rows["sent"]], now=150.0)
    assert store.prune(before=1_000.0) == (1, 1)
    assert store.outbox_counts() == {"uncertain": 1}
    assert [r.id for r in store.failed_rows()] == [rows["unsure"]]


async def test_retention_deletes_a_large_backlog_in_batches_with_other_work_in_between(
    store: Store,
) -> None:
    """After ``retention_days`` is lowered, years of rows are old at once: they go a bounded
    batch per statement, each its own transaction, the event loop free in between, so ingest
    and delivery (here: a task writing events) go on meanwhile instead of waiting for one
    enormous DELETE. What must stay stays: recent rows and old rows not finished."""
    old = time.time() - 10 * 86_400
    for n in range(25):
        store.record_event(_event(f"old-{n}", at=old), [_note(f"sent-{n}")], now=old)
    store.record_event(_event("old-p", at=old), [_note("pending"), _note("unsure")], now=old)
    rows = {row.dedup_key: row.id for row in store.due_outbox(now=time.time(), limit=100)}
    store.mark_sent([rows[f"sent-{n}"] for n in range(25)], now=old)
    store.mark_unconfirmed([rows["unsure"]], error="timed out twice")
    maintenance = Maintenance(store, lambda: 1.0)
    maintenance.prune_batch = 10
    old_left: list[int] = []
    done = asyncio.Event()

    async def ingest() -> None:
        """Another writer on the loop: each turn, notes how many old events are left and
        stores a new one."""
        written = 0
        while not done.is_set():
            old_left.append(store.event_count() - written)
            store.record_event(_event(f"new-{written}", at=time.time()))
            written += 1
            await asyncio.sleep(0)

    writer = asyncio.create_task(ingest())
    await asyncio.sleep(0)  # the writer runs once before the prune starts
    try:
        assert await maintenance.prune_once() == (26, 25)
    finally:
        done.set()
        await writer
    # The writer ran (and wrote) between batches: it saw the backlog partly deleted, twice.
    assert old_left[0] == 26
    assert [left for left in dict.fromkeys(old_left) if 0 < left < 26] == [16, 6], old_left
    assert not [e for e in store.events_since(0.0, limit=1000) if e.event_id.startswith("old")]
    assert len(store.events_since(0.0, limit=1000)) == len(old_left)  # every new one stays
    assert store.outbox_counts() == {"pending": 1, "uncertain": 1}


def test_a_moved_target_takes_only_the_rows_no_send_left_unanswered(store: Store) -> None:
    """A reload pointed a map's routes from webhook 1 to webhook 9: its waiting rows move, and
    its dead mark goes. A row whose send had no known outcome (the old webhook may have posted
    it) stays, as does a row in flight; nothing moves under a lease the caller does not hold."""
    store.enqueue([_note(key) for key in "abcd"] + [_note("e", "2")], now=1.0)
    a, b, c, d, _e = store.due_outbox(now=2.0)
    assert store.claim([b.id], send_id="s-b", now=3.0) == 1
    store.release([b.id], next_attempt_at=3.0, error=None, uncertain=True)
    assert store.claim([c.id], send_id="s-c", now=3.0) == 1
    store.set_dead_target("home", "webhook:1", reason="HTTP 404", fingerprint="fp", now=4.0)
    grant = store.acquire_lease("map:home", "other", 30.0)
    assert grant is not None
    mine = LeaseFence("map:home", "me", grant.lease.token)

    def move(fence: LeaseFence | None = None) -> int:
        return store.retarget_pending(
            "home",
            "webhook:1",
            to_kind=TargetKind.WEBHOOK,
            to_key="webhook:9",
            now=5.0,
            fence=fence,
        )

    assert move(mine) == 0
    assert [t.target_key for t in store.dead_targets()] == ["webhook:1"]
    theirs = LeaseFence("map:home", "other", grant.lease.token)
    assert move(theirs) == 2
    assert store.dead_targets() == []
    due = {row.id: row.target_key for row in store.due_outbox(now=10.0)}
    assert due[a.id] == due[d.id] == "webhook:9"
    assert due[b.id] == "webhook:1"
    assert c.id not in due  # still in flight
    assert move() == 0


def test_a_maps_routing_is_recorded_by_key_with_its_moves_under_its_lease(store: Store) -> None:
    """What a start compares the config with: the routing the map last ran with, per map (not
    per engine), keys only. It is written with the moves it decided in one transaction, and
    only by the holder of the map's lease: another engine started with the same config (not
    holding the lease) writes and moves nothing, and once written there is nothing to move
    again."""
    assert store.recorded_routes() == {}
    store.enqueue([_note("a"), _note("b"), _note("c", "2")], now=1.0)
    store.set_dead_target("home", "webhook:1", reason="HTTP 404", fingerprint="fp", now=4.0)
    grant = store.acquire_lease("map:home", "a", 30.0)
    assert grant is not None
    routes = {"system": "webhook:9", "rally": "webhook:2"}
    moves = {"webhook:1": (TargetKind.WEBHOOK, "webhook:9")}

    def due() -> dict[str, str]:
        return {row.dedup_key: row.target_key for row in store.due_outbox(now=10.0)}

    other = LeaseFence("map:home", "b", grant.lease.token)
    assert store.record_routes("home", routes, moves=moves, now=5.0, fence=other) is None
    assert store.recorded_routes() == {}
    assert [t.target_key for t in store.dead_targets()] == ["webhook:1"]
    assert due() == {"a": "webhook:1", "b": "webhook:1", "c": "webhook:2"}

    holder = LeaseFence("map:home", "a", grant.lease.token)
    assert store.record_routes("home", routes, moves=moves, now=5.0, fence=holder) == {
        "webhook:1": 2
    }
    assert store.recorded_routes() == {"home": routes}
    assert store.dead_targets() == []
    assert due() == {"a": "webhook:9", "b": "webhook:9", "c": "webhook:2"}
    assert store.record_routes("home", {"system": "webhook:9"}, now=6.0) == {}
    assert store.recorded_routes() == {"home": {"system": "webhook:9"}}
