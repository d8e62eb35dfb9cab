"""What an operator's retry of a dead target says it released, on both backends.

The dead mark is per map and target: two maps may post to one webhook (a shared channel) and
Discord may refuse it for one map's credential only. The retry counted the notifications it
released with ``outbox_depth()``, every pending or in-flight row of the key for every map,
read by a walk of the whole backlog: the console's "N held notifications go out now" (and
``outbox retry``'s answer) counted the other map's rows, which were never held. The store now
counts, in the retry's own transaction, the rows that mark held and the retry released.
"""

from __future__ import annotations

import pytest

from wanderer_console.delivery.outcomes import OutcomeJournal
from wanderer_console.delivery.policy import TargetState
from wanderer_console.delivery.targets import DeadTargets, Revived
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import Store
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.timeout(60)]

SHARED = "https://discord.com/api/webhooks/7/tok"
"""One webhook both maps post to."""


def _note(tenant: str, key: str) -> Notification:
    target = Target(TargetKind.WEBHOOK, SHARED, tenant)
    return Notification(tenant, NotificationType.KILL, key, target, {"content": key})


def test_a_retry_counts_only_the_rows_the_dead_mark_held_not_another_maps(store: Store) -> None:
    store.enqueue(
        [_note("home", f"home-{i}") for i in range(2)]
        + [_note("other", f"other-{i}") for i in range(3)]
        + [_note("home", "home-failed")],
        now=1_000.0,
    )
    rows = {row.dedup_key: row for row in store.due_outbox(now=1e12, limit=100)}
    store.mark_failed(rows["home-failed"].id, error="HTTP 404")
    key = rows["home-0"].target_key
    store.set_dead_target("home", key, reason="HTTP 404", fingerprint="fp", now=1_000.0)
    dead = DeadTargets(store, Metrics(), OutcomeJournal(), TargetState)

    revived = dead.revive(key)

    # Held: home's two pending rows; other's three were due all along (its mark is not dead).
    assert revived == Revived(was_dead=True, held=2, requeued=1)
    assert store.dead_targets() == []
    again = dead.revive(key)
    assert again == Revived(was_dead=False, held=0, requeued=0)
    assert again.nothing


def test_the_store_says_what_a_retry_of_one_map_released(store: Store) -> None:
    """A changed credential revives the target for its map only (``tenant_id``)."""
    store.enqueue([_note("home", "h"), _note("other", "o1"), _note("other", "o2")], now=1.0)
    key = Target(TargetKind.WEBHOOK, SHARED, "home").key
    for tenant in ("home", "other"):
        store.set_dead_target(tenant, key, reason="HTTP 401", fingerprint="fp", now=1.0)

    assert store.revive_target(key, tenant_id="other") == Revived(True, 2, 0)
    assert store.revive_target(key, tenant_id="other") == Revived(False, 0, 0)
    assert [(d.tenant_id, d.target_key) for d in store.dead_targets()] == [("home", key)]
