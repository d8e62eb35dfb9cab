"""The rows a write queued, handed to the dispatcher instead of read back (``take_queued``).

A kill notifying hundreds of maps was written, then read back by the dispatcher target by
target before its first request (about 1.8 ms of the event loop for 229 maps). On SQLite (one
writer at a time) the store now names the rows the write queued for targets with nothing else
pending: exactly what the dispatcher's read would find for them. A target with an older row
pending is left to the read (its order is the read's to keep), a repeat the outbox refused is
not named, and PostgreSQL (other instances insert meanwhile) names nothing.
"""

from __future__ import annotations

import time

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import PendingWrite, Store, StoredEvent
from wanderer_console.store.outbox import _QUEUED_MAX


def _target(n: int) -> Target:
    return Target(TargetKind.WEBHOOK, f"https://discord.com/api/webhooks/{n}/token-{n}", "home")


def _note(target: Target, key: str, tenant: str = "home") -> Notification:
    return Notification(tenant, NotificationType.KILL, key, target, {"content": key})


def _write(event_id: str, notes: list[Notification]) -> PendingWrite:
    event = StoredEvent("*", event_id, "killstream", "killmail", time.time(), "{}")
    return PendingWrite(event, notes, None, None, "corr-1", None)


def test_the_rows_named_are_what_a_read_finds_for_their_targets(store: Store) -> None:
    waiting, done, fresh, refused = (_target(n) for n in (1, 2, 3, 4))
    now = time.time()
    # An older row waiting out a backoff (due in an hour), a target whose row was sent, a
    # notification already queued under the key the write repeats.
    store.enqueue([_note(waiting, "older")], now=now + 3600)
    store.enqueue([_note(done, "before")], now=now)
    [sent] = store.due_outbox(now + 1, exclude_targets={waiting.key})
    assert store.claim([sent.id], send_id="s1") == 1
    store.mark_sent([sent.id], message_id="m1")
    store.enqueue([_note(refused, "kill:9:home")], now=now)
    assert store.take_queued() is None  # an enqueue names nothing

    notes = [
        _note(waiting, "kill:9:w"),
        _note(done, "kill:9:d"),
        _note(fresh, "kill:9:f1"),
        _note(fresh, "kill:9:f2", tenant="other"),
        _note(refused, "kill:9:home"),  # the outbox keeps one per map and key: not queued
    ]
    assert store.record_events([_write("kill:9", notes)], now=now) == [True]
    queued = store.take_queued()
    read = store.due_outbox(now + 1, exclude_targets={waiting.key, refused.key})
    if _postgresql(store):
        assert queued is None
        return
    assert queued is not None
    assert [(row.tenant_id, row.dedup_key) for row in queued] == [
        ("home", "kill:9:d"),
        ("home", "kill:9:f1"),
        ("other", "kill:9:f2"),
    ]
    assert queued == read  # every column, as the read builds them
    assert queued[0].correlation_id == "corr-1"
    assert store.take_queued() is None  # handed over once


def test_a_write_that_queues_nothing_or_too_much_names_nothing(store: Store) -> None:
    now = time.time()
    assert store.record_events([_write("map:1", [])], now=now) == [True]
    assert store.take_queued() is None
    many = [_note(_target(n), f"kill:2:{n}") for n in range(_QUEUED_MAX + 1)]
    assert store.record_events([_write("kill:2", many)], now=now) == [True]
    assert store.take_queued() is None
    assert len(store.due_outbox(now + 1, limit=_QUEUED_MAX + 10)) == _QUEUED_MAX + 1
    # A repeat of the event writes no notification: none named.
    assert store.record_events([_write("kill:2", many[:3])], now=now) == [False]
    assert store.take_queued() == (None if _postgresql(store) else [])


def _postgresql(store: Store) -> bool:
    return store.shared or type(store).__name__ == "PostgresStore"
