"""What a dead mark holds, per map and target, on both backends.

A target is dead per (map, target): a webhook two maps post to may be refused for one of them
while the other's notifications are still delivered through it. The outbox's depth is counted
per target key (``outbox_depth``), so it mixes the dead map's held rows with the other map's
rows on their way: the console could only say "pending: N" of such a target. ``held_depth``
counts the pending rows of each dead ``(map, target)`` it is given, in one grouped query.
"""

from __future__ import annotations

import pytest

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import Store

pytestmark = [pytest.mark.timeout(60)]

SHARED = "https://discord.com/api/webhooks/7/tok"
"""One webhook both maps post to."""
OWN = "https://discord.com/api/webhooks/8/tok"
"""A webhook only ``home`` posts to."""


def _note(tenant: str, key: str, url: str = SHARED) -> Notification:
    target = Target(TargetKind.WEBHOOK, url, tenant)
    return Notification(tenant, NotificationType.KILL, key, target, {"content": key})


def test_a_dead_marks_held_count_is_its_maps_rows_not_the_other_maps(store: Store) -> None:
    store.enqueue(
        [_note("home", f"home-{i}") for i in range(3)]
        + [_note("other", f"other-{i}") for i in range(2)]
        + [_note("home", "own", OWN)],
        now=1_000.0,
    )
    shared = Target(TargetKind.WEBHOOK, SHARED, "home").key
    own = Target(TargetKind.WEBHOOK, OWN, "home").key
    assert store.outbox_depth() == {shared: 5, own: 1}  # the key's count mixes both maps

    assert store.held_depth([("home", shared)]) == {("home", shared): 3}
    assert store.held_depth([("home", shared), ("other", shared), ("home", own)]) == {
        ("home", shared): 3,
        ("other", shared): 2,
        ("home", own): 1,
    }


def test_a_mark_with_nothing_pending_holds_zero_and_no_mark_asks_nothing(store: Store) -> None:
    store.enqueue([_note("other", "o")], now=1.0)
    shared = Target(TargetKind.WEBHOOK, SHARED, "home").key
    (row,) = store.due_outbox(now=2.0)
    store.mark_failed(row.id, error="HTTP 400")  # failed, not held: not counted

    assert store.held_depth([("home", shared), ("other", shared)]) == {
        ("home", shared): 0,
        ("other", shared): 0,
    }
    assert store.held_depth([]) == {}
