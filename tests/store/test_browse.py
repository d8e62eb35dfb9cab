"""The events browser's reads, on SQLite and PostgreSQL: recent events, filtered by map, type,
target and outcome, searched, bounded, and each one's notifications found by their keys."""

from __future__ import annotations

import sqlite3

import pytest

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import Store, StoredEvent, StoreLocation
from wanderer_console.store.browse import link_keys, outcome_of

PRIMARY = Target(TargetKind.WEBHOOK, "https://discord.com/api/webhooks/11/token-a", "alpha")
BRAVO = Target(TargetKind.WEBHOOK, "https://discord.com/api/webhooks/22/token-b", "bravo")


def _kill(killmail_id: int, at: float, system: str = "J100001") -> StoredEvent:
    payload = f'{{"killmail_id": {killmail_id}, "solar_system_name": "{system}"}}'
    return StoredEvent("*", f"kill:{killmail_id}", "killstream", "killmail", at, payload)


def _map_event(tenant: str, ulid: str, at: float, kind: str = "add_system") -> StoredEvent:
    payload = f'{{"id": "{ulid}", "type": "{kind}", "payload": {{"name": "Amarr_{ulid}"}}}}'
    return StoredEvent(tenant, ulid, f"sse:{tenant}", kind, at, payload)


def _note(tenant: str, key: str, target: Target, kind: NotificationType) -> Notification:
    return Notification(tenant, kind, key, target, {"content": key, "embeds": [{"title": key}]})


@pytest.fixture
def seeded(store: Store) -> Store:
    """Kills notified, pending, failed and filtered; map events of two maps."""
    kinds = NotificationType
    # kill 1: notified on alpha (sent), queued on bravo too
    store.record_event(
        _kill(1, 100.0),
        [
            _note("alpha", "kill:1:system_kill", PRIMARY, kinds.KILL),
            _note("bravo", "kill:1:character_kill", BRAVO, kinds.KILL),
        ],
        now=100.0,
    )
    store.record_event(_kill(2, 110.0), [], now=110.0)  # filtered
    store.record_event(
        _kill(3, 120.0, system="Jita"),
        [_note("bravo", "kill:3:system_kill", BRAVO, kinds.KILL)],
        now=120.0,
    )  # pending
    store.record_event(
        _kill(4, 130.0), [_note("alpha", "kill:4:system_kill", PRIMARY, kinds.KILL)], now=130.0
    )  # failed
    store.record_event(
        _map_event("alpha", "01AAA", 140.0),
        [_note("alpha", "system:01AAA", PRIMARY, kinds.SYSTEM)],
        now=140.0,
    )  # notified
    store.record_event(_map_event("bravo", "01BBB", 150.0, "deleted_system"), [], now=150.0)
    # Another map's event with the same id is not alpha's event's notification.
    store.record_event(
        _map_event("bravo", "01AAA", 160.0),
        [_note("bravo", "system:01AAA", BRAVO, kinds.SYSTEM)],
        now=160.0,
    )
    due = {f"{row.tenant_id}/{row.dedup_key}": row.id for row in store.due_outbox(now=1e12)}
    store.claim([due["alpha/kill:1:system_kill"]], send_id="s1", now=101.0)
    store.mark_sent([due["alpha/kill:1:system_kill"]], now=102.0, message_id="1310000000000000001")
    store.mark_sent([due["alpha/system:01AAA"]], now=141.0, message_id="1310000000000000002")
    store.mark_failed(due["alpha/kill:4:system_kill"], error="HTTP 400: Invalid Form Body")
    return store


def _ids(events: list[object]) -> list[str]:
    return [f"{e.tenant_id}/{e.event_id}" for e in events]  # type: ignore[attr-defined]


def test_recent_events_come_newest_first_and_bounded(seeded: Store) -> None:
    everything = seeded.browse_events()
    assert _ids(everything) == [
        "bravo/01AAA",
        "bravo/01BBB",
        "alpha/01AAA",
        "*/kill:4",
        "*/kill:3",
        "*/kill:2",
        "*/kill:1",
    ]
    assert _ids(seeded.browse_events(limit=2)) == ["bravo/01AAA", "bravo/01BBB"]
    assert _ids(seeded.browse_events(limit=2, offset=2)) == ["alpha/01AAA", "*/kill:4"]
    # Only the newest `window` events are looked through.
    assert _ids(seeded.browse_events(window=3)) == _ids(everything)[:3]
    assert _ids(seeded.browse_events(window=3, event_type="killmail")) == []


def test_filters_by_outcome(seeded: Store) -> None:
    assert _ids(seeded.browse_events(outcome="notified")) == [
        "alpha/01AAA",
        "*/kill:1",
    ]
    assert _ids(seeded.browse_events(outcome="filtered")) == [
        "bravo/01BBB",
        "*/kill:2",
    ]
    assert _ids(seeded.browse_events(outcome="pending")) == ["bravo/01AAA", "*/kill:3"]
    assert _ids(seeded.browse_events(outcome="failed")) == ["*/kill:4"]
    with pytest.raises(ValueError, match="unknown outcome 'lost'"):
        seeded.browse_events(outcome="lost")


def test_filters_by_map_type_and_target(seeded: Store) -> None:
    # A map's own events and the kills it was notified of (queued, sent or failed).
    assert _ids(seeded.browse_events(tenant="alpha")) == ["alpha/01AAA", "*/kill:4", "*/kill:1"]
    assert _ids(seeded.browse_events(tenant="bravo")) == [
        "bravo/01AAA",
        "bravo/01BBB",
        "*/kill:3",
        "*/kill:1",
    ]
    assert _ids(seeded.browse_events(event_type="add_system")) == ["bravo/01AAA", "alpha/01AAA"]
    assert _ids(seeded.browse_events(target="webhook:22")) == [
        "bravo/01AAA",
        "*/kill:3",
        "*/kill:1",
    ]
    both = seeded.browse_events(tenant="alpha", event_type="killmail", outcome="notified")
    assert _ids(both) == ["*/kill:1"]
    assert seeded.recent_event_types() == ["add_system", "deleted_system", "killmail"]


def test_search_is_a_case_insensitive_substring_of_the_event(seeded: Store) -> None:
    assert _ids(seeded.browse_events(search="jita")) == ["*/kill:3"]
    assert _ids(seeded.browse_events(search="AMARR_01B")) == ["bravo/01BBB"]
    assert _ids(seeded.browse_events(search="deleted")) == ["bravo/01BBB"]
    assert _ids(seeded.browse_events(search="kill:2")) == ["*/kill:2"]
    # LIKE's wildcards are searched for as themselves.
    assert seeded.browse_events(search="%") == []
    assert seeded.browse_events(search="amarr_%") == []
    assert _ids(seeded.browse_events(search="  jita ", outcome="pending")) == ["*/kill:3"]


def test_each_event_gets_its_own_notifications(seeded: Store) -> None:
    events = [(e.tenant_id, e.event_id) for e in seeded.browse_events()]
    found = seeded.event_notifications(events)
    kill_1 = found[("*", "kill:1")]
    assert [(n.tenant_id, n.target_key, n.status) for n in kill_1] == [
        ("alpha", "webhook:11", "sent"),
        ("bravo", "webhook:22", "pending"),
    ]
    sent = kill_1[0]
    assert (sent.message_id, sent.sent_at, sent.attempts) == ("1310000000000000001", 102.0, 1)
    assert '"content": "kill:1:system_kill"' in sent.body.replace('":"', '": "')
    assert ("*", "kill:2") not in found
    assert [n.target_key for n in found[("alpha", "01AAA")]] == ["webhook:11"]
    assert [n.target_key for n in found[("bravo", "01AAA")]] == ["webhook:22"]
    (failed,) = found[("*", "kill:4")]
    assert (failed.status, failed.last_error) == ("failed", "HTTP 400: Invalid Form Body")
    assert [outcome_of([n.status for n in found.get(e, [])]) for e in events] == [
        "pending",
        "filtered",
        "notified",
        "failed",
        "pending",
        "filtered",
        "notified",
    ]


def test_an_event_is_found_again_by_its_row_id(seeded: Store) -> None:
    newest = seeded.browse_events(limit=1)[0]
    assert seeded.event_by_row(newest.id) == newest
    assert seeded.event_by_row(newest.id + 1000) is None


def test_link_keys_are_those_the_pipeline_writes() -> None:
    assert link_keys("*", "kill:9") == ("kill:9:system_kill", "kill:9:character_kill")
    assert link_keys("alpha", "01X") == (
        "system:01X",
        "character:01X",
        "rally:01X",
        "custom:01X",
    )


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # a plan of SQLite's own
def test_the_outcome_filter_looks_notifications_up_by_index(
    seeded: Store, store_location: StoreLocation
) -> None:
    """SQLite's plan of the real statement: events by received time, the outbox by key."""
    conn = seeded._conn
    assert isinstance(conn, sqlite3.Connection)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        seeded.browse_events(outcome="pending", tenant="alpha")
    finally:
        conn.set_trace_callback(None)
    (statement,) = [s for s in statements if "FROM events" in s]
    plan = conn.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
    text = " | ".join(str(row[-1]) for row in plan)
    assert "outbox_dedup_key" in text, text
    assert "SCAN o " not in f"{text} ", text
    assert "SCAN outbox" not in text, text
    assert "events_received_at" in text, text


def test_a_kill_sent_only_to_a_trackers_own_target_is_notified_not_filtered(store: Store) -> None:
    # kill:7 matched only a named tracker with its own webhook (kill:<id>:tracker:<target>);
    # kill:70 and kill:8 must not pick it up (key ranges end at the id).
    store.record_event(
        _kill(7, 100.0),
        [_note("alpha", "kill:7:tracker:webhook:caps", BRAVO, NotificationType.KILL)],
        now=100.0,
    )
    store.record_event(_kill(70, 101.0), [], now=101.0)
    store.record_event(
        _kill(8, 102.0),
        [_note("alpha", "kill:8:system_kill", PRIMARY, NotificationType.KILL)],
        now=102.0,
    )
    found = store.event_notifications([("*", "kill:7"), ("*", "kill:70"), ("*", "kill:8")])
    assert [n.dedup_key for n in found[("*", "kill:7")]] == ["kill:7:tracker:webhook:caps"]
    assert ("*", "kill:70") not in found
    assert [n.dedup_key for n in found[("*", "kill:8")]] == ["kill:8:system_kill"]
    assert outcome_of([n.status for n in found[("*", "kill:7")]]) == "pending"
