"""Several instances on one database: the registry, map leases, fenced claims and recovery.

The statements run on both backends (only PostgreSQL is shared by several engines, but the
contract is the same text): a lease is taken only when free, its token grows at every takeover,
a heartbeat renews only unexpired leases, a claim under a lost lease claims nothing, and the
recovery of in-flight rows spares the current holder's claims.
"""

from __future__ import annotations

import time

import pytest

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import (
    SHARED_TENANT,
    ClaimRequest,
    ClusterPaused,
    InstanceInfo,
    LeaseFence,
    PendingWrite,
    Store,
    StoredEvent,
)

A = InstanceInfo("a", "host-a", 1, "test", 1.0)
B = InstanceInfo("b", "host-b", 2, "test", 2.0)


def _note(tenant: str, key: str) -> Notification:
    target = Target(TargetKind.BOT_CHANNEL, "100000000000000001", tenant)
    return Notification(tenant, NotificationType.KILL, key, target, {"embeds": [{"title": key}]})


def test_a_lease_is_taken_only_when_free_and_its_token_grows_at_every_takeover(
    store: Store,
) -> None:
    grant = store.acquire_lease("map:home", "a", 30.0)
    assert grant is not None
    assert (grant.lease.owner, grant.lease.token, grant.previous) == ("a", 1, None)
    assert store.acquire_lease("map:home", "b", 30.0) is None  # a holds it
    assert store.release_lease(LeaseFence("map:home", "a", 1))
    assert not store.release_lease(LeaseFence("map:home", "a", 1))  # no longer a's
    grant = store.acquire_lease("map:home", "b", 30.0)
    assert grant is not None
    assert (grant.lease.owner, grant.lease.token) == ("b", 2)
    assert grant.previous is not None
    assert (grant.previous.owner, grant.previous.token) == (None, 1)


def test_an_expired_lease_is_lost_even_if_nobody_took_it(store: Store) -> None:
    grant = store.acquire_lease("map:home", "a", 0.2)
    assert grant is not None
    state = store.heartbeat(A, 0.2)
    assert [lease.resource for lease in state.held] == ["map:home"]
    assert [i.instance_id for i in state.instances] == ["a"]
    time.sleep(0.3)
    state = store.heartbeat(A, 30.0)  # too late: the lease expired meanwhile
    assert state.held == []
    grant = store.acquire_lease("map:home", "b", 30.0)
    assert grant is not None
    assert grant.lease.token == 2
    assert grant.previous is not None
    assert grant.previous.owner == "a"
    assert grant.previous.renewed_at is not None


def test_the_registry_lists_live_instances_and_a_leaving_one_frees_its_leases(
    store: Store,
) -> None:
    store.heartbeat(A, 30.0)
    store.heartbeat(B, 30.0)
    store.acquire_lease("map:one", "a", 30.0)
    store.acquire_lease("map:two", "a", 30.0)
    assert [i.instance_id for i in store.cluster_state().instances] == ["a", "b"]
    assert store.leave_cluster("a") == 2
    state = store.cluster_state()
    assert [i.instance_id for i in state.instances] == ["b"]
    assert [(lease.resource, lease.owner) for lease in state.leases] == [
        ("map:one", None),
        ("map:two", None),
    ]
    grant = store.acquire_lease("map:one", "b", 30.0)
    assert grant is not None
    assert grant.lease.token == 2


def test_a_claim_under_a_lost_lease_claims_nothing_and_recovery_spares_the_holder(
    store: Store,
) -> None:
    store.enqueue([_note("home", f"k{i}") for i in range(3)], now=1.0)
    a, b, c = (row.id for row in store.due_outbox(now=10.0))
    grant = store.acquire_lease("map:home", "a", 0.3)
    assert grant is not None
    old = LeaseFence("map:home", "a", grant.lease.token)
    assert store.claim([a], send_id="s-a", now=2.0, fence=old) == 1
    time.sleep(0.4)  # a stalls past its lease
    assert store.claim([b], send_id="s-b", now=3.0, fence=old) == 0  # fenced off
    grant = store.acquire_lease("map:home", "b", 30.0)
    assert grant is not None
    new = LeaseFence("map:home", "b", grant.lease.token)
    assert store.claim([c], send_id="s-c", now=4.0, fence=new) == 1
    # The new holder recovers a's claim (outcome unknown), never its own in-flight row.
    assert store.recover_in_flight(tenant="home", spare=new) == [(a, "bot_channel", "s-a", 2.0)]
    assert store.recover_in_flight(tenant="home", spare=new) == []
    # a, back from its stall, cannot undo b's claim; b can put its own back.
    assert store.unclaim([c], fence=old, keep_send_id=False) == 0
    assert store.unclaim([c], fence=new, keep_send_id=False) == 1
    rows = {row.id: row for row in store.due_outbox(now=10.0)}
    assert (rows[a].send_id, rows[a].uncertain, rows[a].sending_at) == ("s-a", 1, 2.0)
    assert (rows[c].send_id, rows[c].uncertain, rows[c].sending_at) == (None, 0, None)


def test_an_outcome_written_under_a_lost_claim_leaves_the_new_owners_rows_alone(
    store: Store,
) -> None:
    """An outcome other than a confirmation, written under the lease its rows were claimed
    under (late: the store could not write when it was read), changes only rows still claimed
    by that holder and token; the map's new owner has recovered and settled the others."""
    store.enqueue([_note("home", f"k{i}") for i in range(4)], now=1.0)
    ids = [row.id for row in store.due_outbox(now=10.0)]
    grant = store.acquire_lease("map:home", "a", 30.0)
    assert grant is not None
    old = LeaseFence("map:home", "a", grant.lease.token)
    assert store.claim(ids, send_id="s-a", now=2.0, fence=old) == 4
    store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
    grant = store.acquire_lease("map:home", "b", 30.0)
    assert grant is not None
    new = LeaseFence("map:home", "b", grant.lease.token)
    assert len(store.recover_in_flight(tenant="home", spare=new)) == 4
    sent, sending, pending, _untouched = ids
    assert store.claim([sent, sending], send_id="s-a", fence=new) == 2
    store.mark_sent([sent])
    # a's outcomes, written at last: none of them applies any more.
    store.release(ids, next_attempt_at=0.0, error="HTTP 500", fence=old)
    store.mark_failed(ids, error="HTTP 400", fence=old)
    store.mark_unconfirmed(ids, error="twice", fence=old)
    assert store.outbox_counts() == {"sent": 1, "sending": 1, "pending": 2}
    # b's own outcome, under its own claim, applies.
    store.release([sending, pending], next_attempt_at=0.0, error="HTTP 500", fence=new)
    assert store.outbox_counts() == {"sent": 1, "pending": 3}
    assert {row.id: row.attempts for row in store.due_outbox(now=10.0)}[sending] == 1


def test_a_stop_recovers_only_the_rows_its_instance_claimed(store: Store) -> None:
    store.enqueue([_note("one", "k1"), _note("two", "k2")], now=1.0)
    first, second = (row.id for row in store.due_outbox(now=10.0))
    one = store.acquire_lease("map:one", "a", 30.0)
    two = store.acquire_lease("map:two", "b", 30.0)
    assert one is not None
    assert two is not None
    store.claim([first], send_id="s1", fence=LeaseFence("map:one", "a", one.lease.token))
    store.claim([second], send_id="s2", fence=LeaseFence("map:two", "b", two.lease.token))
    assert [row[0] for row in store.recover_in_flight(claimed_by="a")] == [first]
    assert store.outbox_counts() == {"pending": 1, "sending": 1}


@pytest.mark.parametrize("shared", [False, True])
def test_a_repeated_killmail_writes_its_notifications_only_on_a_shared_database(
    store: Store, shared: bool
) -> None:
    store.shared = shared
    kill = StoredEvent(SHARED_TENANT, "kill:1", "killstream", "killmail", 1.0, "{}")
    # Instance a stored the kill for its map; instance b sees it again for its own map.
    assert store.record_events([PendingWrite(kill, [_note("one", "kill:1:system_kill")])]) == [True]
    again = [PendingWrite(kill, [_note("two", "kill:1:system_kill")])]
    assert store.record_events(again) == [False]
    assert store.record_events(again) == [False]  # and once only
    tenants = sorted(row.tenant_id for row in store.due_outbox(now=1e12))
    assert tenants == (["one", "two"] if shared else ["one"])
    # Map events are never shared: a repeat writes nothing.
    event = StoredEvent("two", "01MAP", "sse:two", "add_system", 1.0, "{}")
    store.record_events([PendingWrite(event, [])])
    assert store.record_events([PendingWrite(event, [_note("two", "sys")])]) == [False]
    assert len(store.due_outbox(now=1e12)) == len(tenants)


def test_claims_written_together_are_each_fenced_by_their_own_maps_lease(store: Store) -> None:
    """Sends starting in one turn of the loop claim in one transaction: each claim is still
    checked alone (its rows still pending, its own map's lease and token), so one fenced off or
    already taken claims nothing while the others claim, and all share the commit's time."""
    store.enqueue([_note("one", "k1"), _note("one", "k2"), _note("two", "k3")], now=1.0)
    store.enqueue([_note("three", "k4")], now=1.0)
    first, second, third, fourth = (row.id for row in store.due_outbox(now=10.0))
    one = store.acquire_lease("map:one", "a", 30.0)
    two = store.acquire_lease("map:two", "a", 30.0)
    three = store.acquire_lease("map:three", "b", 30.0)
    assert one is not None
    assert two is not None
    assert three is not None
    assert store.claim([second], send_id="earlier", now=5.0) == 1
    counts = store.claim_all(
        [
            ClaimRequest([first], "s1", LeaseFence("map:one", "a", one.lease.token)),
            ClaimRequest([second], "s2", LeaseFence("map:one", "a", one.lease.token)),  # taken
            ClaimRequest([third], "s3", LeaseFence("map:two", "a", two.lease.token + 1)),  # stale
            ClaimRequest([fourth], "s4", LeaseFence("map:three", "b", three.lease.token)),
        ],
        now=20.0,
    )
    assert counts == [1, 0, 0, 1]
    found = sorted((i, s, at) for i, _kind, s, at in store.recover_in_flight())
    assert found == [(first, "s1", 20.0), (second, "earlier", 5.0), (fourth, "s4", 20.0)]
    assert [row.id for row in store.due_outbox(now=10.0) if row.send_id is None] == [third]
    assert store.claim_all([]) == []


def test_a_claim_undone_changes_only_the_rows_that_claim_holds(store: Store) -> None:
    """A claim reported failed may have been applied all the same (the connection lost during
    its COMMIT); undoing it puts back only rows still claimed under its send id and lease: none
    if it did not apply, never another send's or another holder's."""
    store.enqueue([_note("home", f"k{i}") for i in range(4)], now=1.0)
    a, b, c, d = (row.id for row in store.due_outbox(now=10.0))
    grant = store.acquire_lease("map:home", "a", 30.0)
    assert grant is not None
    mine = LeaseFence("map:home", "a", grant.lease.token)
    assert store.claim([a, b], send_id="s-1", now=2.0, fence=mine) == 2  # applied
    assert store.claim([c], send_id="s-2", now=2.0, fence=mine) == 1  # another send's
    # The claim of d under s-3 did not apply: nothing to undo.
    assert store.undo_claim([d], send_id="s-3", fence=mine, keep_send_id=False) == 0
    # Another holder's token, or another send id, leaves the rows alone.
    other = LeaseFence("map:home", "a", grant.lease.token + 1)
    assert store.undo_claim([a, b], send_id="s-1", fence=other, keep_send_id=False) == 0
    assert store.undo_claim([a, b, c], send_id="s-2", fence=mine, keep_send_id=True) == 1
    assert store.undo_claim([a, b], send_id="s-1", fence=mine, keep_send_id=False) == 2
    rows = {row.id: row for row in store.due_outbox(now=10.0)}
    assert set(rows) == {a, b, c, d}  # all due again, as if never claimed
    assert (rows[a].send_id, rows[a].uncertain, rows[a].sending_at) == (None, 0, None)
    assert (rows[c].send_id, rows[c].sending_at) == ("s-2", 2.0)  # a re-send keeps its id
    # Alone (no lease): the send id alone decides.
    assert store.claim([d], send_id="s-4", now=3.0) == 1
    assert store.undo_claim([d], send_id="s-4", fence=None, keep_send_id=False) == 1


def test_the_clusters_pause_keeps_who_paused_first_and_every_heartbeat_reads_it(
    store: Store,
) -> None:
    assert store.cluster_pause() is None
    assert store.heartbeat(A, 30.0).pause is None
    first = store.pause_cluster("tui:alice", "a")
    assert (first.actor, first.instance) == ("tui:alice", "a")
    again = store.pause_cluster("tui:bob", "b")  # already paused: alice's pause stays
    assert again == first
    assert store.cluster_pause() == first
    assert store.heartbeat(B, 30.0).pause == first  # every engine reads it as it heartbeats
    assert store.cluster_state().pause == first
    assert store.resume_cluster()
    assert not store.resume_cluster()  # nothing left to lift
    assert store.cluster_pause() is None
    assert store.heartbeat(A, 30.0).pause is None


def test_no_claim_under_a_lease_is_written_while_the_cluster_is_paused(store: Store) -> None:
    """An engine that has not read the pause yet (another engine was told) still claims
    nothing: the claim's own transaction reads it, and says so."""
    store.enqueue([_note("home", "k1"), _note("home", "k2")], now=1.0)
    first, second = (row.id for row in store.due_outbox(now=10.0))
    grant = store.acquire_lease("map:home", "a", 30.0)
    assert grant is not None
    fence = LeaseFence("map:home", "a", grant.lease.token)
    paused = store.pause_cluster("tui:alice", "b")
    with pytest.raises(ClusterPaused) as raised:
        store.claim([first], send_id="s1", now=2.0, fence=fence)
    assert raised.value.pause == paused
    with pytest.raises(ClusterPaused):
        store.claim_all([ClaimRequest([second], "s2", fence)], now=2.0)
    assert {row.id: row.send_id for row in store.due_outbox(now=10.0)} == {
        first: None,
        second: None,
    }
    assert store.resume_cluster()
    assert store.claim([first], send_id="s1", now=3.0, fence=fence) == 1
