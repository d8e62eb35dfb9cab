"""Which rows ``outbox list`` shows as held by a dead target, on both backends.

The dead mark is per map and target: two maps may post to one webhook (a shared channel) and
Discord may refuse it for one map's credential only. ``failed_rows`` took a pending row as
held when its target key was dead for *any* map, so the other map's rows, which the engine
is sending, were listed as held (``"held": true``) and took the listing's ``limit`` from the
rows that really wait. A pending row is held only by its own map's dead mark.
"""

from __future__ import annotations

import pytest

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import Store

pytestmark = [pytest.mark.timeout(60)]

SHARED = "https://discord.com/api/webhooks/7/tok"
"""One webhook both maps post to."""


def _note(tenant: str, key: str) -> Notification:
    target = Target(TargetKind.WEBHOOK, SHARED, tenant)
    return Notification(tenant, NotificationType.KILL, key, target, {"content": key})


def _two_maps_one_dead(store: Store) -> tuple[dict[str, int], str]:
    """Map ``home``'s mark of the shared webhook is dead, ``other``'s is not; each map has a
    failed row. Returns the row ids by dedup key, and the shared target key."""
    store.enqueue(
        [_note("home", f"home-{i}") for i in range(2)]
        + [_note("other", f"other-{i}") for i in range(3)]
        + [_note("home", "home-failed"), _note("other", "other-failed")],
        now=1_000.0,
    )
    rows = {row.dedup_key: row for row in store.due_outbox(now=1e12, limit=100)}
    store.mark_failed(rows["home-failed"].id, error="HTTP 404")
    store.mark_failed(rows["other-failed"].id, error="HTTP 400")
    key = rows["home-0"].target_key
    store.set_dead_target("home", key, reason="HTTP 404", fingerprint="fp", now=1_000.0)
    return {dedup: row.id for dedup, row in rows.items()}, key


def test_only_the_dead_maps_pending_rows_are_listed_as_held(store: Store) -> None:
    ids, key = _two_maps_one_dead(store)
    expected = {
        ids["home-failed"]: ("home", "failed"),
        ids["other-failed"]: ("other", "failed"),  # failed rows of every map are listed
        ids["home-0"]: ("home", "pending"),  # held by home's dead mark
        ids["home-1"]: ("home", "pending"),
    }  # other-0..2: pending and being sent, its mark of the webhook is not dead

    for listed in (store.failed_rows(), store.failed_rows(target_key=key)):
        assert {row.id: (row.tenant_id, row.status) for row in listed} == expected
        assert [row.id for row in listed] == sorted(expected, reverse=True)  # newest first


def test_the_limit_is_not_spent_on_another_maps_rows(store: Store) -> None:
    ids, _key = _two_maps_one_dead(store)
    # Newest first: other-failed, home-failed, then home's two held rows; none of other's
    # pending rows (enqueued between them) may take a place.
    assert [row.id for row in store.failed_rows(limit=3)] == [
        ids["other-failed"],
        ids["home-failed"],
        ids["home-1"],
    ]


def test_both_maps_dead_hold_both_maps_rows(store: Store) -> None:
    ids, key = _two_maps_one_dead(store)
    store.set_dead_target("other", key, reason="HTTP 401", fingerprint="fp", now=1_001.0)
    assert {row.id for row in store.failed_rows() if row.status == "pending"} == {
        ids[f"home-{i}"] for i in range(2)
    } | {ids[f"other-{i}"] for i in range(3)}
