"""The dispatcher's read of what is due (``Store.due_outbox``) over many targets at once: a
kill notifying hundreds of maps is read a few statements at a time (on both backends), with
every target's rows as a read of that target alone gives them."""

from __future__ import annotations

import pytest

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import Store


def _note(key: str, webhook_id: int, tenant: str = "home") -> Notification:
    target = Target(TargetKind.WEBHOOK, f"https://discord.com/api/webhooks/{webhook_id}/t", tenant)
    return Notification(tenant, NotificationType.KILL, key, target, {"content": key})


@pytest.mark.parametrize("maps_in_scope", [None, 1, 2_000])
def test_a_read_over_hundreds_of_targets_gives_each_target_its_own_rows(
    store: Store, maps_in_scope: int | None
) -> None:
    """150 targets with a row due (past a statement's 64 targets, and a part-filled last
    one), a target whose older row waits out a backoff (read first, with the due one), one
    whose rows all wait (not read), one shared by two maps and held for one of them, and rows
    of a map outside the scope read (with 2,000 maps in scope, a statement reads fewer
    targets: PostgreSQL takes at most 65,535 parameters)."""
    store.enqueue([_note(f"fan:{n}", 1000 + n) for n in range(150)], now=1.0)
    store.enqueue([_note("wait:old", 3000), _note("wait:new", 3000)], now=1.0)
    store.enqueue([_note("all:1", 4000), _note("all:2", 4000)], now=1.0)
    store.enqueue([_note("held:home", 5000), _note("held:away", 5000, "away")], now=1.0)
    store.enqueue([_note("away:only", 6000, "away")], now=1.0)
    ids = {row.dedup_key: row.id for row in store.due_outbox(now=2.0, limit=500)}
    assert len(ids) == 150 + 2 + 2 + 2 + 1
    # Older rows waiting out a backoff: the target's whole order is kept when one row is due.
    store.release([ids["wait:old"]], next_attempt_at=1e9, error="HTTP 500")
    store.release([ids["all:1"], ids["all:2"]], next_attempt_at=1e9, error="HTTP 500")
    scope = None
    if maps_in_scope is not None:
        scope = ["home", *(f"map-{n}" for n in range(maps_in_scope - 1))]

    rows = store.due_outbox(now=2.0, limit=500, held=[("home", "webhook:5000")], tenants=scope)

    want = [f"fan:{n}" for n in range(150)] + ["wait:old", "wait:new", "held:away"]
    if scope is None:
        want.append("away:only")
    else:
        want.remove("held:away")  # the away map's rows are not this instance's
    assert [row.dedup_key for row in rows] == want  # in id order, each row once
    assert [row.id for row in rows] == sorted(row.id for row in rows)
    assert {row.dedup_key: row.next_attempt_at for row in rows}["wait:old"] == 1e9


def test_a_read_past_its_limit_leaves_the_rest_in_order_for_the_next(store: Store) -> None:
    """A read stops at ``limit`` rows (oldest first), also over targets read together; what
    it leaves comes in the next read, in order, nothing twice."""
    store.enqueue([_note(f"big:{n}", 7000) for n in range(12)], now=1.0)
    store.enqueue([_note(f"one:{n}", 8000 + n) for n in range(70)], now=1.0)
    rows = store.due_outbox(now=2.0, limit=5)
    assert [row.dedup_key for row in rows] == [f"big:{n}" for n in range(5)]
    store.mark_failed([row.id for row in rows], error="test")
    rows = store.due_outbox(now=2.0, limit=100)
    assert [row.dedup_key for row in rows] == [f"big:{n}" for n in range(5, 12)] + [
        f"one:{n}" for n in range(70)
    ]
