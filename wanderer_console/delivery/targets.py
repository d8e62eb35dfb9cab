"""Targets Discord refused for good, and messages left in flight by the last stop.

A target that answered 401, 403 or 404 is *dead*: it is kept in the store with a fingerprint of
the credential that failed, so a restart, ``outbox list`` and ``/ready`` all see it. Its
notifications wait. It revives when its configuration changes (a different address or token),
when an operator runs ``wanderer-console outbox retry TARGET`` (the store row goes away; the
dispatcher notices at its next look) or retries it from the console.

Rows claimed when the engine last stopped (``sending``) had an unknown outcome: they are made
pending again under their send id, bot messages at once (their nonce protects them), webhook
messages after the uncertainty window. Whether a nonce still protects a message is judged only
by the engine whose clock stamped its first send (``sent_by``): a bot message another instance
sent first is, for this one, as unprotected as a webhook message.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Callable, KeysView, Mapping

from wanderer_console.delivery.outcomes import OutcomeJournal, TargetKey
from wanderer_console.delivery.policy import DeliveryPolicy, ResolvedTarget, TargetState
from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.domain.notification import TargetKind
from wanderer_console.store.base import LeaseFence, OutboxRow, Revived, Store
from wanderer_console.store.outbox import DeadTarget
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["DeadTargets", "Revived", "recover_in_flight"]

log = logging.getLogger("wanderer_console.delivery.dispatcher")


class DeadTargets:
    """The dead targets as last read from the store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        journal: OutcomeJournal,
        state: Callable[[str], TargetState],
        *,
        clock: Clock | None = None,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._journal = journal
        self._state = state
        self._clock = clock or SystemClock()
        self._dead: dict[TargetKey, DeadTarget] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._dead

    def held(self, targets: Mapping[TargetKey, ResolvedTarget]) -> tuple[set[str], set[TargetKey]]:
        """What a read of due rows leaves out: the keys dead for every map configured on them,
        whole (their backlog is never read), and the dead ``(tenant, key)`` of a key another
        map posts to with its own credential (a channel two maps share: that map's rows are
        read, since the target is dead for the first map only)."""
        if not self._dead:
            return set(), set()
        keys = {target for _tenant, target in self._dead}
        shared = {key[1] for key in targets if key[1] in keys and key not in self._dead}
        return keys - shared, {key for key in self._dead if key[1] in shared}

    @property
    def marks(self) -> KeysView[TargetKey]:
        """The dead ``(tenant, key)`` marks (a live view, not a copy)."""
        return self._dead.keys()

    def snapshot(self) -> dict[TargetKey, DeadTarget]:
        """A copy of the dead targets by ``(tenant, key)``."""
        return dict(self._dead)

    def refresh(
        self,
        targets: Mapping[TargetKey, ResolvedTarget],
        lease: Callable[[str], tuple[bool, LeaseFence | None]] = lambda _tenant: (True, None),
    ) -> None:
        """Read the dead targets (an operator may have revived one); revive a changed one, and
        let go of one its map no longer names (:meth:`_forget`) while ``lease`` says the map is
        this instance's (and, several instances, under the lease it names)."""
        dead = {(d.tenant_id, d.target_key): d for d in self._store.dead_targets()}
        configured = {tenant for tenant, _key in targets}
        for key, target in list(dead.items()):
            resolved = targets.get(key)
            if resolved is None and key[0] in configured:
                owned, fence = lease(key[0])
                if owned and self._forget(target, fence):
                    del dead[key]
            elif resolved is not None and resolved.fingerprint != target.fingerprint:
                revived = self._store.revive_target(target.target_key, tenant_id=target.tenant_id)
                del dead[key]
                log.warning(
                    "target revived: its configuration changed; held notifications are sent",
                    extra={
                        "ctx": {
                            "target": key[1],
                            "tenant": key[0],
                            "held": revived.held,
                            "failed_requeued": revived.requeued,
                        }
                    },
                )
        for key in self._dead.keys() - dead.keys():
            self._state(key[1]).disabled_reason = None
        for key, target in dead.items():
            self._state(key[1]).disabled_reason = target.reason
        self._dead = dead
        self._metrics.targets_dead.set(len(dead))

    def _forget(self, target: DeadTarget, fence: LeaseFence | None) -> bool:
        """A dead target its map no longer names (a deleted webhook replaced by a new one, which
        has another id; a channel switched): no change of its configuration can revive it, so
        holding its notifications would keep them, and ``/ready``'s degraded, for ever. They
        are read again and fail as any target's no longer configured do. False when the map's
        lease (``fence``) was lost meanwhile: the mark is left to the map's new owner, whose
        configuration may still name the target (a mark already gone, without a lease, counts
        as let go)."""
        forgotten = self._store.forget_dead_target(target.tenant_id, target.target_key, fence=fence)
        if not forgotten and fence is not None:
            log.info(
                "dead target not let go: the map's lease is no longer this instance's (or the"
                " mark went meanwhile); left to the map's owner",
                extra={"ctx": {"target": target.target_key, "tenant": target.tenant_id}},
            )
            return False
        log.warning(
            "dead target no longer configured; the notifications it held fail as no longer"
            " configured",
            extra={"ctx": {"target": target.target_key, "tenant": target.tenant_id}},
        )
        return True

    def hold(self, row: OutboxRow, reason: str, resolved: ResolvedTarget) -> None:
        """Discord refused ``row``'s target for good: keep it dead until it changes."""
        now = self._clock.wall()
        self._state(row.target_key).disabled_reason = reason
        self._metrics.targets_disabled.inc()
        self._journal.record(
            "dead target",
            functools.partial(
                self._store.set_dead_target,
                row.tenant_id,
                row.target_key,
                reason=reason,
                fingerprint=resolved.fingerprint,
                now=now,
            ),
        )
        self._dead[(row.tenant_id, row.target_key)] = DeadTarget(
            row.tenant_id, row.target_key, reason, resolved.fingerprint, now
        )
        self._metrics.targets_dead.set(len(self._dead))

    def revive(self, target_key: str) -> Revived:
        """Forget a dead target and re-queue its failed notifications.

        Whether it was dead, and how many notifications it held, come from the store's retry
        itself (not this engine's view, which another engine or ``outbox retry`` may have
        changed): a dead target's notifications wait pending, not failed, so the re-queued
        count alone reads as "nothing will be sent" for the usual retry, and as done for a
        mistyped key. The held count is of the rows the removed dead marks held, counted in
        the retry's transaction: not every pending row of the key (another map posting to the
        same channel was never held), nor a walk of the whole backlog."""
        revived = self._store.revive_target(target_key)
        self._dead = {key: dead for key, dead in self._dead.items() if key[1] != target_key}
        self._state(target_key).disabled_reason = None
        self._metrics.targets_dead.set(len(self._dead))
        return revived


def recover_in_flight(
    store: Store,
    policy: DeliveryPolicy,
    *,
    clock: Clock | None = None,
    tenant: str | None = None,
    spare: LeaseFence | None = None,
    claimed_by: str | None = None,
) -> int:
    """Schedule the careful re-send of rows claimed when the engine last stopped; how many.

    Several instances narrow it (:meth:`~wanderer_console.store.base.Store.recover_in_flight`):
    a map's rows claimed by an instance that lost its lease (``tenant`` and the ``spare``
    lease now held), or the rows this instance claimed (``claimed_by``, at its stop). A webhook
    message another instance left in flight waits out that instance's request first (see below).
    """
    now = (clock or SystemClock()).wall()
    # A row re-sent after an unknown outcome and cut again is left uncertain, unless its nonce
    # still protects it: the rule Outcomes applies to a re-send's lost answer. The store judges
    # only rows whose first send this instance stamped; another's clock is not this one's.
    found = store.recover_in_flight(
        tenant=tenant, spare=spare, claimed_by=claimed_by, nonce_since=now - policy.nonce_window
    )
    if not found:
        return 0
    # A webhook message has no nonce: it goes again once its first request has certainly ended
    # and the uncertainty window has passed. This engine's own requests ended with it (a crash,
    # a stop). Another instance's may still be out: it started before that instance's lease ran
    # out (before this takeover) and waits at most the longest send timeout; its ``sending_at``
    # is that instance's clock, which says nothing of this one's.
    longest = policy.send_timeout(True) or policy.confirm_timeout
    orphaned = now + longest + policy.uncertain_window
    later: dict[float, list[int]] = defaultdict(list)
    for row_id, kind, _send_id, sending_at in found:
        if kind != TargetKind.BOT_CHANNEL.value:
            own = max(now, sending_at + policy.uncertain_window)
            later[own if tenant is None else orphaned].append(row_id)
    for when, ids in later.items():
        store.schedule(ids, next_attempt_at=when)
    log.warning(
        "notifications were in flight when the engine stopped; re-sending them carefully"
        if tenant is None
        else "notifications were in flight at an instance that lost the map; re-sending them"
        " carefully",
        extra={
            "ctx": {
                "tenant": tenant,
                "notifications": len(found),
                "webhook": sum(len(ids) for ids in later.values()),
                "rule": "bot messages again with their nonce; webhook messages after the"
                " uncertainty window"
                + ("" if tenant is None else ", once the previous holder's request has ended")
                + ", counted in wc_delivery_uncertain_total",
            }
        },
    )
    return len(found)
