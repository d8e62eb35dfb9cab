"""The outbox dispatcher: every pending notification is delivered once Discord confirms it.

Due rows are read from the durable outbox and handed to one worker per target, so a target that
waits on a rate limit never holds up another. A worker packs queued rows into messages of up to
10 embeds, paces its channel, claims the rows (``sending``, with a send id) before the request
and marks them sent only after Discord's confirmation. What is done with every other answer is
:mod:`~wanderer_console.delivery.policy`'s rule: transient failures wait and retry until the
notification's maximum age, permanent ones fail it or hold its target, and a send whose outcome
is unknown is re-sent only as the same message (the same nonce for bot messages).

A store that cannot record an outcome stops delivery: the unrecorded outcome is kept and written
first once the store writes again, and nothing new is sent meanwhile, so a full disk never turns
into a loop of re-posts. :meth:`Dispatcher.stop` lets requests in flight finish (bounded) and
leaves the rest recognisably uncertain.

**Several instances** (one PostgreSQL database): a :class:`SendGate` says which maps' rows this
instance sends (those whose lease it holds: one instance sends per map, so Discord's limits are
not shared between processes) and fences every claim with the map's lease. A claim under a lost
lease claims nothing; rows claimed when the lease is lost before the request are put back
untouched; an answer other than "sent" after the lease was lost mid-request is left to the map's
new owner, which recovers the claim as uncertain (:meth:`Dispatcher.recover_orphans`). Such an
outcome written late (kept while the store could not write) changes only the rows still claimed
under its lease's token: never what the new owner did with them since. No claim is written while
the cluster is paused (the claim's transaction reads the pause): one refused so hands the pause to
:attr:`Dispatcher.on_cluster_paused`, which holds this instance before its heartbeat reads it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeAlias

import orjson

from wanderer_console.config.live import LiveSettings
from wanderer_console.config.model import Settings
from wanderer_console.config.routing import (
    OPS_TENANT,
    changed_maps,
    moved_targets,
    moves_between,
    route_keys,
    tenant_routes,
)
from wanderer_console.delivery.discord import DiscordSender, Outcome, SendResult
from wanderer_console.delivery.outcomes import OutcomeJournal, Outcomes, TargetKey
from wanderer_console.delivery.pacing import Batch, BucketBudget, ChannelPacer, pack
from wanderer_console.delivery.policy import (
    DeliveryPolicy,
    ResolvedTarget,
    TargetState,
    resolved_targets,
)
from wanderer_console.delivery.spill import SPILL_FILE, ConfirmationSpill
from wanderer_console.delivery.targets import DeadTargets, Revived, recover_in_flight
from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.store.base import (
    ClaimRequest,
    ClusterPause,
    ClusterPaused,
    LeaseFence,
    OutboxRow,
    SentMessage,
    Store,
)
from wanderer_console.store.outbox import DeadTarget
from wanderer_console.store.writes import StoreWriteError, unavailable
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.logging import redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "FAULT_RECHECK_AFTER",
    "Dispatcher",
    "ResolvedTarget",
    "SendGate",
    "TargetState",
    "build_dispatcher",
]

log = logging.getLogger(__name__)

_FETCH = 500
_SENDS_STARTING = 32
"""Sends between their claim and their request's first wait at once (see :meth:`_deliver`)."""
_WRITE_PROBE_MAX = 5.0
"""Longest wait between two attempts to write to a store that cannot write."""
_READ_RETRY = 1.0
"""Seconds before the outbox is read again after a read failed."""
FAULT_RECHECK_AFTER = 15.0
"""Seconds without a failed write after which delivery, with nothing of its own to write,
probes a store marked failing itself (the pipeline tries its kept writes again at most every
5 s: three of its tries)."""


_Started: TypeAlias = tuple[
    Coroutine[Any, Any, SendResult], LeaseFence | None, tracing.SpanHandle | None
]
"""A claimed send: its request (not started yet), the lease it was claimed under, its spans."""
_Running: TypeAlias = tuple[
    "asyncio.Task[SendResult]", LeaseFence | None, tracing.SpanHandle | None
]
"""A claimed send whose request is out (its task has taken its first step)."""


class _Scope(NamedTuple):
    """What a look may send (:meth:`Dispatcher._scope`)."""

    targets: Mapping[TargetKey, ResolvedTarget]
    tenants: Collection[str] | None
    """The maps whose rows may be sent (``None``: every map)."""
    busy: set[str]
    """Target keys with a worker running."""
    dead: set[str]
    """Target keys dead for every map configured on them."""
    held: set[TargetKey]
    """``(tenant, key)`` dead for that map alone."""


@dataclass(slots=True)
class _Starting:
    """A send waiting for the claims of its turn of the loop (see :meth:`Dispatcher._start_all`)."""

    batch: Batch
    send_id: str
    again: bool
    resolved: ResolvedTarget
    state: TargetState
    fence: LeaseFence | None
    context: contextvars.Context
    """The worker's context: the request's task runs in it, as it would in the worker."""
    started: asyncio.Future[_Running | None]


def _answer_of(sending: Awaitable[SendResult]) -> SendResult | None:
    """The answer a send's request task already took (``None``: none, or not a task)."""
    if not isinstance(sending, asyncio.Task) or not sending.done() or sending.cancelled():
        return None
    return None if sending.exception() is not None else sending.result()


class SendGate(Protocol):
    """Which maps' notifications this instance sends, under which lease (several instances)."""

    @property
    def instance_id(self) -> str:
        """This instance's id (recorded on the rows it claims)."""

    def tenants(self) -> Collection[str]:
        """Maps whose rows this instance sends now."""

    def fence(self, tenant: str) -> LeaseFence | None:
        """The lease to claim ``tenant``'s rows under; ``None``: send nothing for it now."""

    def holds(self, fence: LeaseFence) -> bool:
        """True while ``fence`` is still this instance's (certainly unexpired) lease."""

    def carried(self, tenant: str) -> list[str]:
        """The tenants whose rows are sent under ``tenant``'s lease (itself, and the
        operations messages when it carries them)."""


class Dispatcher:
    """Works the outbox until stopped.

    Every time it reads (due rows, pauses, pacing, outcomes) comes from ``clock`` (the system
    clock by default); its waits are the event loop's, interrupted by a wake, a stop or a change
    of pace.
    """

    def __init__(
        self,
        store: Store,
        sender: DiscordSender,
        metrics: Metrics,
        targets: Callable[[], Mapping[TargetKey, ResolvedTarget]],
        *,
        dry_run: Callable[[], bool] = lambda: False,
        poll_interval: float = 1.0,
        channel_per_minute: int = 30,
        channel_window: float = 60.0,
        policy: DeliveryPolicy | None = None,
        clock: Clock | None = None,
        gate: SendGate | None = None,
        spill: ConfirmationSpill | None = None,
        routes: Callable[[str], Mapping[str, Target | None] | None] | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._gate = gate
        self._routes = routes
        """Where each of a map's routes posts now (``None``: the map is not configured); with
        it, the routing each map runs with is recorded in the store (see :meth:`adopt_routes`)."""
        self._unrecorded: set[str] = set()
        """Maps whose recorded routing the next look compares with their routing now."""
        self._spill = spill
        """Where a stop keeps the confirmations the store refuses, for the next start."""
        self._store = store
        self.sender = sender
        """Speaks to Discord (replaced when ``discord.api_url`` changes)."""
        self._metrics = metrics
        self._targets = targets
        self._dry_run = dry_run
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._repace = asyncio.Event()
        self._turnstile = asyncio.Semaphore(_SENDS_STARTING)
        """Held from a claim until its request is out (see :meth:`_deliver`)."""
        self._starting: list[_Starting] = []
        """Sends through the turnstile whose claims are written together next turn."""
        self._pacer = ChannelPacer(per_minute=channel_per_minute, window=channel_window)
        self._buckets = BucketBudget()
        """What each target's bucket allows (workers of several maps may share a target)."""
        self._busy: dict[TargetKey, asyncio.Task[bool]] = {}
        self._resting = 0
        """Workers waiting out a rate limit (:meth:`_sleep`)."""
        self._depth_updated = 0.0
        self._depth_every = 1.0
        self._depth: dict[str, int] = {}
        self._held: dict[TargetKey, int] = {}
        """Pending rows per dead ``(tenant, key)``, counted with :attr:`_depth`."""
        self._counted_marks: frozenset[TargetKey] = frozenset()
        """The dead marks at the last count (a change counts again at once)."""
        self.depth_error: str | None = None
        """Why the last count of the outbox failed (the database not answering), else None:
        :meth:`snapshot` then gives the count before it."""
        self._journal = OutcomeJournal()
        self._dead = DeadTargets(store, metrics, self._journal, self.state, clock=self._clock)
        self._outcomes = Outcomes(
            store,
            metrics,
            policy or DeliveryPolicy(),
            self._pacer,
            self._dead,
            self._journal,
            clock=self._clock,
            instance=None if gate is None else gate.instance_id,
        )
        self._recovered = False
        self._next_write_probe = 0.0
        self._write_probe_delay = 0.5
        self.fault_recheck_after = FAULT_RECHECK_AFTER
        """See :data:`FAULT_RECHECK_AFTER`."""
        self.paused = False
        self.on_cluster_paused: Callable[[ClusterPause], None] | None = None
        """Told of the cluster's pause a claim found (the runtime's delivery hold, which sets
        :attr:`paused`); nothing was claimed."""
        self.maps_unknown: Callable[[], bool] = lambda: False
        """True while the engine does not know every map yet (hosted mode before its first
        refresh applied): only the rows of the maps configured are read meanwhile; those of
        any other map wait, pending, instead of failing as no longer configured."""
        self.states: dict[str, TargetState] = {}
        self._waiting = False
        """True while the loop awaits a wake (nothing of its own is running)."""
        self._read_error: str | None = None
        """Why the last look could not read the outbox (``None`` once one could)."""
        self._settled = False
        """The last look read every due row of the targets then idle, and nothing since made a
        row due that is not either with a running worker or in :attr:`_dirty`: a worker's clean
        end needs no new look (see :meth:`_worker_done`)."""
        self._dirty: set[str] = set()
        """Busy targets that may have due rows their worker was not given (busy at the last
        look, which left them out, or woken for since): their worker's end looks again."""
        self._read_at: float | None = None
        """The wall time the loop's last look read the outbox at (``None``: it did not read):
        what the wait after it counts from (:meth:`_idle_timeout`)."""
        self._moves: dict[TargetKey, Target] = {}
        """Targets a reload moved (:meth:`retarget`), whose waiting rows the next look moves."""
        self._context: contextvars.Context | None = None
        """The loop's context, which workers started from a wake run in (not the caller's)."""

    @property
    def policy(self) -> DeliveryPolicy:
        """Retry, uncertainty and stop rules (replaced live on a config reload)."""
        return self._outcomes.policy

    @policy.setter
    def policy(self, value: DeliveryPolicy) -> None:
        self._outcomes.policy = value

    @property
    def dry_run(self) -> bool:
        """Notifications are logged and marked sent instead of sent (read at every send)."""
        return self._dry_run()

    @property
    def channel_per_minute(self) -> int:
        """Messages a channel may receive per minute (applies live)."""
        return self._pacer.per_minute

    @channel_per_minute.setter
    def channel_per_minute(self, value: int) -> None:
        self._pacer.per_minute = value
        self._interrupt_waits()  # workers waiting for their channel's budget re-measure it now
        self._look_soon()

    def _interrupt_waits(self) -> None:
        """End the workers' waits for a limit or a pause now: each measures it again (and
        stops waiting if its map may no longer be sent, see :meth:`_work_target`)."""
        self._repace.set()
        self._repace = asyncio.Event()

    @property
    def global_pause_until(self) -> float:
        """Unix time until which every delivery waits (a global 429 or the invalid budget)."""
        return self._outcomes.pause_until

    @property
    def delivering(self) -> bool:
        """True while a target's worker has a message in hand (from its start to its end),
        unless it only waits out a rate limit: what the garbage collector's idle moments
        (:class:`~wanderer_console.gcpolicy.IdleCollector`) wait for."""
        return len(self._busy) > self._resting

    @property
    def waiting(self) -> bool:
        """True while the loop waits for work (a wake for new rows then starts their workers at
        once, see :meth:`wake`)."""
        return self._waiting

    @property
    def dead_targets(self) -> dict[TargetKey, DeadTarget]:
        """Targets Discord refused for good, as last read from the store."""
        return self._dead.snapshot()

    def wake(
        self, targets: Iterable[str] | None = None, queued: list[OutboxRow] | None = None
    ) -> None:
        """New rows are in the outbox: look now instead of at the next poll.

        With ``targets`` (the keys the new rows go to), a wake for targets whose worker is
        already running is skipped: that worker's end wakes the dispatcher anyway, and
        re-reading a rate-limited backlog on every new notification would cost more than the
        delivery itself. Otherwise, while the loop is idle, the due rows are read and their
        workers started right here (:meth:`_dispatch_now`): the engine calls this just after its
        commit, so the send starts on the loop's next turn, ahead of the ingest API's answer,
        instead of a turn later once the loop has woken. With ``queued`` (the rows the commit
        wrote for targets with nothing else pending, ``Store.take_queued``) and every target
        among them, those rows are not read back (:meth:`_dispatch_queued`).
        """
        if targets is not None:
            wanted = set(targets)
            busy = {target for _tenant, target in self._busy}
            if busy:
                # Their workers were given what was due before: their ends look again.
                self._dirty |= wanted & busy
                if wanted <= busy:
                    return
            if self._waiting and (
                (queued is not None and self._dispatch_queued(wanted, queued))
                or self._dispatch_now()
            ):
                return
        self._look_soon()

    def _look_soon(self) -> None:
        """Wake the loop for a full look (something other than a worker's clean end)."""
        self._settled = False
        self._wake.set()

    def _may_dispatch_inline(self) -> bool:
        """Workers may start in the caller's turn (not paused or stopping, the loop running,
        in-flight rows recovered, no store fault or outcome to record first)."""
        return not (
            self.paused
            or self._stop.is_set()
            or self._context is None
            or not self._recovered
            or self._journal
            or self._store.write_fault is not None
        )

    def _dispatch_now(self) -> bool:
        """Start workers for the due rows in the caller's turn of the loop; False when the
        loop has to look instead (paused, stopping, a store fault or outcome to record first,
        or a read that failed here: the loop meets it on its own terms)."""
        if not self._may_dispatch_inline():
            return False
        try:
            # The dead targets as the loop last read them (at its last look); a revived target
            # is the loop's to notice, as before.
            # In the loop's context: the caller's (an event's bound log fields, its trace) is
            # not the delivery's.
            if not self._dispatch_due(refresh_dead=False, context=self._context):
                self._settled = False  # more was due than read: the next worker's end looks
        except Exception as exc:  # the caller is the engine: never hand it delivery's error
            log.debug("inline dispatch failed; the loop looks", extra={"ctx": {"error": str(exc)}})
            return False
        return True

    def state(self, key: str) -> TargetState:
        """Delivery state of a target key (created on first use)."""
        found = self.states.get(key)
        if found is None:
            found = self.states[key] = TargetState(key)
        return found

    def retry_target(self, target_key: str) -> int:
        """Revive a dead target and re-queue its failed notifications; return how many."""
        return self.revive(target_key).requeued

    def revive(self, target_key: str) -> Revived:
        """Revive a dead target and re-queue its failed notifications; say what changed."""
        revived = self._dead.revive(target_key)
        self._look_soon()
        return revived

    def retarget(self, moves: Mapping[TargetKey, Target]) -> None:
        """A reload pointed every route of a map that used a target to another one: the
        notifications waiting for the old target go to the new one (see :meth:`_apply_moves`)
        instead of failing as no longer configured."""
        if not moves:
            return
        self._moves.update(moves)
        self._interrupt_waits()  # a worker of an old target waiting out its pause ends now
        self._look_soon()

    def _apply_moves(self, targets: Mapping[TargetKey, ResolvedTarget]) -> bool:
        """Move the waiting rows of the targets a reload moved, before a look reads them;
        False when the store refused the write (the moves are kept for the next look).

        A move waits while the old target's worker runs (it settles what it has in flight with
        the old target, then ends: its target is no longer configured). It is dropped when
        the configuration changed again meanwhile (the old key back, the new one gone), and
        when this instance does not hold the map's lease (several instances): its owner does."""
        for key in [key for key in self._moves if key not in self._busy]:
            target = self._moves[key]
            if key in targets or (key[0], target.key) not in targets:
                del self._moves[key]
                continue
            owned, fence = self._lease(key[0])
            if not owned:
                del self._moves[key]
                continue
            try:
                moved = self._store.retarget_pending(
                    key[0],
                    key[1],
                    to_kind=target.kind,
                    to_key=target.key,
                    now=self._clock.wall(),
                    fence=fence,
                )
            except StoreWriteError:
                return False
            del self._moves[key]
            if moved:
                self._said_moved(key[0], key[1], target.key, moved)
        return True

    def adopt_routes(self, tenants: Iterable[str]) -> None:
        """This engine starts working these maps (its start; several instances: their leases
        acquired) or a reload may have changed their routing: before their rows are read again,
        the routing each last ran with (recorded in the store, whichever engine ran it) is
        compared with theirs now, by the rule of a hot reload, and the backlog of a target moved
        while the engine was stopped follows it (see :meth:`_record_routes`)."""
        if self._routes is None:
            return
        before = len(self._unrecorded)
        self._unrecorded.update(tenants)
        if len(self._unrecorded) > before:
            self._look_soon()

    def _record_routes(self) -> bool:
        """Compare each map in :attr:`_unrecorded` with its recorded routing, move the waiting
        rows of the targets that moved and record the routing now, in one transaction per map
        (``Store.record_routes``); False when the store refused the write (kept for the next
        look).

        A map waits while a reload's moves of it are still to apply (:meth:`_apply_moves`: the
        routing is recorded after them) or a worker of a key to move still runs (it settles
        what it has in flight with the old target first). A map whose lease this instance does
        not hold (several instances) is left to its holder, which adopts it with the lease: the
        statements are fenced by the lease too, so two instances started with the same change
        never both move (and the second finds the routing recorded, nothing to move). No
        routing recorded yet (the first start of a build that records it) moves nothing."""
        routes_of = self._routes
        if routes_of is None or not self._unrecorded:
            return True
        waiting = {tenant for tenant, _key in self._moves}
        ready: list[tuple[str, LeaseFence | None]] = []
        for tenant in list(self._unrecorded):
            if tenant in waiting:
                continue
            owned, fence = self._lease(tenant)
            if owned:
                ready.append((tenant, fence))
            else:
                self._unrecorded.discard(tenant)
        if not ready:
            return True
        recorded = self._store.recorded_routes()
        for tenant, fence in ready:
            now = routes_of(tenant)
            if now is None:  # no longer configured: its rows fail as such, its record stays
                self._unrecorded.discard(tenant)
                continue
            keys = route_keys(now)
            was = recorded.get(tenant)
            if was == keys:
                self._unrecorded.discard(tenant)
                continue
            moves = {} if was is None else moves_between(was, now)
            if any((tenant, old) in self._busy for old in moves):
                continue
            try:
                moved = self._store.record_routes(
                    tenant,
                    keys,
                    moves={old: (target.kind, target.key) for old, target in moves.items()},
                    now=self._clock.wall(),
                    fence=fence,
                )
            except StoreWriteError:
                return False
            self._unrecorded.discard(tenant)
            for old, count in (moved or {}).items():
                if count:
                    self._said_moved(tenant, old, moves[old].key, count)
        return True

    def _said_moved(self, tenant: str, old: str, new: str, count: int) -> None:
        log.info(
            "notifications for a target no longer configured moved to the map's new target",
            extra={"ctx": {"tenant": tenant, "target": old, "to": new, "notifications": count}},
        )

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until :meth:`stop` (or cancellation, which cancels in-flight sends too)."""
        self._context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        try:
            while not self._stop.is_set():
                self._wake.clear()
                # A look when something may have become due (a wake other than a worker's
                # clean end, see _worker_done) or at the deadline (the poll, the next retry).
                if not self._settled or loop.time() >= deadline:
                    self._read_at = None
                    try:
                        self._settled = (
                            self._store_ready() and not self.paused and self._dispatch_due()
                        )
                        deadline = loop.time() + self._idle_timeout()
                    except Exception as exc:  # a read the store could not answer
                        self._settled = False
                        deadline = loop.time() + self._read_failed(exc)
                    else:
                        self._read_error = None
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that lands as the wait completes.
                    async with asyncio.timeout_at(deadline):
                        self._waiting = True
                        try:
                            await self._wake.wait()
                        finally:
                            self._waiting = False
        except asyncio.CancelledError:
            # Cancelled outright (not :meth:`stop`): in-flight sends go too; their rows stay
            # claimed and are recovered as uncertain.
            for task in self._busy.values():
                task.cancel()
            for task in list(self._busy.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._journal.write_gathered()  # confirmations read before the cancellation
            raise

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking new work; let requests in flight finish within ``grace`` seconds.

        Requests still open at the deadline are cancelled: their rows stay claimed and are
        recorded as uncertain, never as plain pending, so the next start re-sends them only in
        ways that cannot (bot) or may at most once (webhook) post twice.
        """
        self._stop.set()
        self._look_soon()
        grace = self.policy.stop_grace if grace is None else grace
        tasks = list(self._busy.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
                log.warning(
                    "requests still in flight at the stop deadline; their outcome is uncertain",
                    extra={"ctx": {"targets": len(pending), "grace_seconds": grace}},
                )
        self._recovered = False
        try:
            if not self._journal.flush():
                # Still refused (a full disk): the confirmations go to the spill, for the next
                # start; the rest is lost with the process, its rows stay claimed.
                self._keep_at_stop()
                return
            self._recover_in_flight()
        except Exception as exc:  # the store may be gone: the next start recovers instead
            log.warning(
                "in-flight rows not settled at stop; the next start does it",
                extra={"ctx": {"error": str(exc)}},
            )

    def _keep_at_stop(self) -> None:
        """Write the confirmations the store refuses into the spill (what fits); say at ERROR
        what is lost: the next start re-sends those rows as uncertain."""
        confirmations = self._journal.confirmations()
        kept = self._spill_confirmations(confirmations)
        lost = len(confirmations) - kept
        others = self._journal.others()
        if not lost and not others:
            return
        log.error(
            "outcomes not recorded at stop: the store cannot write; their notifications"
            " are re-sent as uncertain at the next start (a webhook message confirmed"
            " here may post twice)",
            extra={
                "ctx": {
                    "outcomes": lost + len(others),
                    "operations": sorted({*others, *(["mark sent"] if lost else [])}),
                    "confirmations_kept": kept,
                }
            },
        )

    def _spill_confirmations(self, confirmations: list[SentMessage]) -> int:
        """Keep ``confirmations`` in the spill for the next start; how many it holds. Those an
        earlier stop kept (the store still refusing) are not written again."""
        spill = self._spill
        if spill is None or not confirmations:
            return 0
        fresh = [m for m in confirmations if m not in spill.kept]
        already = len(confirmations) - len(fresh)
        try:
            kept = spill.keep(fresh)
        except OSError as exc:
            log.error(
                "confirmations could not be kept for the next start",
                extra={"ctx": {"file": str(spill.path), "error": f"{type(exc).__name__}: {exc}"}},
            )
            return already
        if kept:
            log.warning(
                f"confirmations kept in {SPILL_FILE} for the next start",
                extra={
                    "ctx": {
                        "file": str(spill.path),
                        "messages": kept,
                        "rows": sum(len(m.row_ids) for m in fresh[:kept]),
                    }
                },
            )
        return already + kept

    def _idle_timeout(self) -> float:
        now = self._clock.wall()
        timeout = self._poll
        if self._store.write_fault is not None or self._journal:
            return max(0.01, min(timeout, self._next_write_probe - now))
        # One index probe, whatever the backlog. Rows due when the look read the outbox are
        # with a running worker (its end wakes us) or held (a dead target): only a row not due
        # then shortens the wait, a deferred retry, or one that came due between the read and
        # now (looked at again at once). Counted from now, a row due since the read (the timer
        # fires a hair early for the wall clock) left the loop asleep for the whole poll; and
        # the earliest of every pending row, a dead target's long due among them, hid every
        # retry behind it.
        read_at = now if self._read_at is None else self._read_at
        next_due = self._store.next_due_at(after=read_at)
        if next_due is not None:
            timeout = min(timeout, next_due - now)
        return max(timeout, self._outcomes.pause_until - now, 0.01)

    def _read_failed(self, exc: Exception) -> float:
        """The outbox could not be read (PostgreSQL restarted or unreachable, a damaged SQLite
        file): said once per outage, counted each time, and read again in a second. The loop
        goes on; workers already sending finish as they would."""
        self._metrics.errors.labels(component="delivery:store_read").inc()
        reason = redact(f"{type(exc).__name__}: {exc}".strip())[:300]
        if self._read_error is None:
            log.warning(
                "cannot read the outbox; delivery waits and reads it again every second"
                " (wanderer-console db status says whether the database answers)",
                extra={"ctx": {"error": reason}},
            )
        self._read_error = reason
        return _READ_RETRY

    def _store_ready(self) -> bool:
        """Outcomes recorded and in-flight rows recovered; probes a failing store sparingly."""
        now = self._clock.wall()
        failing = self._store.write_fault is not None or bool(self._journal)
        if failing and now < self._next_write_probe:
            return False
        ready = self._journal.flush()
        fault = self._store.write_fault
        if ready and fault is not None and time.time() - fault.last >= self.fault_recheck_after:
            # Nothing of delivery's own to write, and no write has failed for a while: the
            # fault may be one a part that does not try again left (the name cache's save, an
            # alert), and nothing else writes until the next event or the hourly prune. A small
            # write says whether the store writes again. Not sooner: a small write can pass
            # where the pipeline's larger ones, tried again every few seconds, still fail.
            try:
                self._store.probe_write()
            except StoreWriteError:
                ready = False
        if ready and not self._recovered:
            try:
                self._recover_in_flight()
            except StoreWriteError:
                ready = False
        if ready and self._store.write_fault is None:
            self._write_probe_delay = 0.5
            return True
        self._next_write_probe = now + self._write_probe_delay
        self._write_probe_delay = min(_WRITE_PROBE_MAX, self._write_probe_delay * 2)
        return False

    def _apply_kept(self) -> None:
        """Record the confirmations the last stop kept in the spill (before any claim is
        recovered, which would re-send their rows as uncertain), then clear it. Only rows still
        claimed by the same send change. Raises what the store raises: the spill stays."""
        spill = self._spill
        if spill is None or not (spill.kept or spill.damaged):
            return
        messages = list(spill.kept)
        rows = self._store.mark_sent_if_claimed(messages) if messages else 0
        damaged = spill.damaged
        try:
            spill.clear()
        except OSError as exc:  # applied: reading them again changes nothing
            spill.say(
                logging.WARNING,
                "confirmations applied, but the spill could not be cleared",
                {"file": str(spill.path), "error": f"{type(exc).__name__}: {exc}"},
            )
        if messages:
            spill.say(
                logging.INFO,
                "confirmations kept at the last stop applied",
                {
                    "file": str(spill.path),
                    "messages": len(messages),
                    "rows": rows,
                    "damaged": damaged,
                },
            )

    def _recover_in_flight(self) -> None:
        self._apply_kept()
        # Alone: every claim left is this engine's. Shared: only the rows this instance claimed
        # (none at its start; its own at its stop); a map's orphans are recovered when its
        # lease is acquired (recover_orphans).
        mine = None if self._gate is None else self._gate.instance_id
        recover_in_flight(self._store, self.policy, clock=self._clock, claimed_by=mine)
        self._recovered = True

    def recover_orphans(self, tenant: str, fence: LeaseFence) -> int:
        """Recover ``tenant``'s rows claimed by anyone but ``fence``'s holder and token (an
        instance that died or lost the map's lease) as uncertain; return how many (never raises:
        the next heartbeat tries again)."""
        try:
            self._apply_kept()  # this engine's own claims of the last stop first
            found = recover_in_flight(
                self._store, self.policy, clock=self._clock, tenant=tenant, spare=fence
            )
        except StoreWriteError:
            return 0
        if found:
            self._look_soon()
        return found

    async def quiesce(self, tenant: str, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the sends in flight under ``tenant``'s lease
        to finish (the map's, and the operations messages when it carries them); the gate has
        stopped new ones (its lease is being released or was lost)."""
        owners = {tenant} if self._gate is None else set(self._gate.carried(tenant))
        tasks = [task for (owner, _target), task in self._busy.items() if owner in owners]
        if tasks:
            # A worker waiting for its channel's budget or a pause has nothing in flight: woken,
            # it sees its map gone and ends (its rows wait for the map's next owner).
            self._interrupt_waits()
            await asyncio.wait(tasks, timeout=max(0.01, timeout))
        # Their confirmations are written before the lease can go (its next owner would
        # recover the rows as uncertain).
        self._journal.write_gathered()

    def _dispatch_due(
        self, *, refresh_dead: bool = True, context: contextvars.Context | None = None
    ) -> bool:
        """Start a worker for every idle target with due rows; True when every due row of those
        targets was read (none left beyond the read's limit, and not held by a pause)."""
        now = self._clock.wall()
        scope = self._scope(now, refresh_dead=refresh_dead)
        if scope is None:
            return False
        # Left out of this read: what is due for them is read again when their worker ends.
        self._dirty = scope.busy
        self._read_at = now
        rows = self._store.due_outbox(
            now,
            limit=_FETCH,
            exclude_targets=scope.busy | scope.dead,
            held=scope.held,
            tenants=scope.tenants,
        )
        self._start_workers(rows, scope.targets, context)
        return len(rows) < _FETCH

    def _scope(self, now: float, *, refresh_dead: bool) -> _Scope | None:
        """What a look may send now (the targets, the maps in scope, what it leaves out), or
        ``None`` when it may send nothing (a pause, the stop, no map held or known, a move or
        route the store did not take yet)."""
        self._outbox_depth(now)  # first: the gauge stays true while delivery waits
        if now < self._outcomes.pause_until or self._stop.is_set():
            return None
        targets = self._targets()
        if self._moves and not self._apply_moves(targets):
            return None
        if self._unrecorded and not self._record_routes():
            return None
        tenants: Collection[str] | None = None
        if self._gate is not None:
            tenants = self._gate.tenants()
            if not tenants:
                return None  # no map's lease held: nothing of ours to send
        if tenants is None and self.maps_unknown():
            tenants = {tenant for tenant, _target in targets}
            if not tenants:
                return None  # no map known yet: nothing to read (and no empty ``IN ()``)
        if refresh_dead:
            self._dead.refresh(targets, self._lease)
        dead, held = self._dead.held(targets)
        busy = {target for _tenant, target in self._busy}
        return _Scope(targets, tenants, busy, dead, held)

    def _dispatch_queued(self, wanted: Collection[str], rows: list[OutboxRow]) -> bool:
        """Start the workers for rows the pipeline just queued (``Store.take_queued``: nothing
        else pending goes before them) without reading them back; False when a look has to
        read instead (a target of ``wanted`` the rows do not cover: an older row pending, or a
        repeat the outbox kept out; more rows than a read takes).

        The rows are what :meth:`_dispatch_due` would read for their targets, and they are
        left out the same way (busy, dead or held, a map out of scope); each is claimed before
        its send as always, so a row changed meanwhile is never sent. Rows of other targets
        that came due meanwhile are the loop's, at the deadline it set for them."""
        if len(rows) > _FETCH or not set(wanted) <= {row.target_key for row in rows}:
            return False
        if not self._may_dispatch_inline():
            return False
        try:
            scope = self._scope(self._clock.wall(), refresh_dead=False)
        except Exception as exc:  # the caller is the engine: never hand it delivery's error
            log.debug(
                "inline dispatch of queued rows failed; the loop looks",
                extra={"ctx": {"error": str(exc)}},
            )
            return False
        if scope is None:
            return False
        skip = scope.busy | scope.dead
        tenants = scope.tenants
        self._start_workers(
            [
                row
                for row in rows
                if row.target_key not in skip
                and (tenants is None or row.tenant_id in tenants)
                and (row.tenant_id, row.target_key) not in scope.held
            ],
            scope.targets,
            self._context,
        )
        return True

    def _start_workers(
        self,
        rows: list[OutboxRow],
        targets: Mapping[TargetKey, ResolvedTarget],
        context: contextvars.Context | None,
    ) -> None:
        """A worker for each idle target among ``rows`` (read in id order), given its rows."""
        groups: dict[TargetKey, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            key = (row.tenant_id, row.target_key)
            if key not in self._busy and key not in self._dead:
                groups[key].append(row)
        for key, group in groups.items():
            task = asyncio.create_task(
                self._work_target(key, group, targets.get(key)),
                name=f"deliver:{key[1]}",
                context=None if context is None else context.copy(),
            )
            self._busy[key] = task
            task.add_done_callback(functools.partial(self._worker_done, key))

    def _worker_done(self, key: TargetKey, task: asyncio.Task[bool]) -> None:
        """A worker ended: the loop looks again unless the end is clean (see below).

        A clean end changes nothing a look would find: the worker settled every row it was
        given (none released for a retry, its target not resumed), and nothing was queued for
        its target since the look that started it (:attr:`_dirty`). Without that test, each end
        of a fan-out's hundred workers cost a full look (dead targets, pending targets, due
        rows: 0.2 ms) that found nothing.
        """
        self._busy.pop(key, None)
        if task.cancelled():
            self._look_soon()
            return
        error = task.exception()
        if error is not None:
            log.error(
                "delivery worker failed; the dispatcher looks again",
                exc_info=error,
                extra={"ctx": {"target": key[1], "tenant": key[0]}},
            )
            self._look_soon()
        elif not task.result() or key[1] in self._dirty or not self._settled:
            self._look_soon()

    def _can_send(self) -> bool:
        return not (
            self.paused
            or self._stop.is_set()
            or self._journal
            or self._store.write_fault is not None
        )

    async def _work_target(
        self, key: TargetKey, rows: list[OutboxRow], resolved: ResolvedTarget | None
    ) -> bool:
        """Send ``rows`` (one target's, in order); True when every one was settled for good
        (sent, failed, or kept for the operator) and none of the target's rows became due.

        The target is resolved again before each message: a reload during a backlog (a webhook
        token rotated) is used by the next one, not found out by Discord's 401."""
        state = self.state(key[1])
        if resolved is None:
            return self._fail_unconfigured(key, rows)
        settled = True
        for batch, send_id in self._batches(rows):
            while (
                (wait := self._wait_for(key[1], state)) > 0
                and self._may_send(key[0])
                and key in self._targets()  # a reload that drops it ends the wait
            ):
                await self._sleep(wait)
            if not self._can_send():
                return False
            resolved = self._targets().get(key)
            if resolved is None:
                return False  # a reload dropped it meanwhile: the next look settles the rest
            # A failing target that answers again makes its waiting rows due (resume_target).
            settled = settled and not state.failing
            # Counted in its bucket in the turn it was found to fit (no other worker between).
            self._buckets.started(key[1], self._clock.wall())
            try:
                delivered = await self._deliver(batch, send_id, resolved, state)
            finally:
                if self._buckets.ended(key[1]):
                    self._interrupt_waits()  # a worker held for this answer measures again
            if not delivered:
                return False  # keep this target's order: the rest wait for the retry
        return settled

    def _fail_unconfigured(self, key: TargetKey, rows: list[OutboxRow]) -> bool:
        """Give up on rows whose target is no longer configured; True (settled).

        Under the map's lease (several instances), checked in the statement: an instance whose
        lease ran out meanwhile leaves them to the map's new owner, which may have claimed them
        already (the unfenced write turned its rows in flight ``failed``)."""
        owned, fence = self._lease(key[0])
        if not owned:
            return True  # not (certainly) this instance's map: its owner settles them
        error = "target no longer configured (wanderer-console outbox retry TARGET re-queues)"
        ids = [row.id for row in rows]
        failed: list[int] = []

        def fail() -> None:
            failed.append(self._store.fail_unsent(ids, error=error, fence=fence))

        self._journal.record("mark failed", fail)
        if not failed:
            return True  # kept: written once the store writes again
        if failed[0] == 0:
            log.info(
                "map lease lost before failing an unconfigured target's notifications; left to"
                " the map's owner",
                extra={"ctx": {"target": key[1], "tenant": key[0], "rows": ids}},
            )
            return True
        self._metrics.delivery_failures.labels(reason="unconfigured").inc()
        log.warning(
            "notifications for a target no longer configured failed",
            extra={"ctx": {"target": key[1], "tenant": key[0], "notifications": failed[0]}},
        )
        return True

    def _lease(self, tenant: str) -> tuple[bool, LeaseFence | None]:
        """Whether ``tenant``'s rows are this instance's to settle (an engine alone, or its
        map's lease held: another instance's configuration may differ from this one's), and
        the lease to write under (``None`` alone)."""
        if self._gate is None:
            return True, None
        fence = self._gate.fence(tenant)
        return fence is not None, fence

    def _owns(self, tenant: str) -> bool:
        """:meth:`_lease`'s verdict alone."""
        return self._lease(tenant)[0]

    def _may_send(self, tenant: str) -> bool:
        """Not stopping, and the map still this instance's to send (several instances)."""
        return not self._stop.is_set() and self._owns(tenant)

    def _wait_for(self, target_key: str, state: TargetState) -> float:
        """Seconds before the target's next message fits every limit and pause."""
        now = self._clock.wall()
        return max(
            state.paused_until - now,
            self._outcomes.pause_until - now,
            self._pacer.delay(self._outcomes.channel_of(target_key), now),
            self._buckets.delay(target_key, now),
        )

    async def _sleep(self, seconds: float) -> None:
        """Wait, ending early when stopping or when the pacing budget changes."""
        stop = asyncio.ensure_future(self._stop.wait())
        repace = asyncio.ensure_future(self._repace.wait())
        self._resting += 1
        try:
            await asyncio.wait({stop, repace}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._resting -= 1
            stop.cancel()
            repace.cancel()

    def _batches(self, rows: list[OutboxRow]) -> list[tuple[Batch, str | None]]:
        """Messages to send, in row order: rows bound to a send id go again as that message."""
        bound: dict[str, list[OutboxRow]] = {}
        free: list[OutboxRow] = []
        for row in rows:
            if row.send_id:
                bound.setdefault(row.send_id, []).append(row)
            else:
                free.append(row)
        out: list[tuple[Batch, str | None]] = []
        for send_id, group in bound.items():
            for index, batch in enumerate(pack(group)):
                out.append((batch, send_id if index == 0 else None))
        max_embeds = 1 if self._outcomes.unbatched(free) else 10
        out += [(batch, None) for batch in pack(free, max_embeds=max_embeds)]
        out.sort(key=lambda item: item[0].rows[0].id)
        return out

    async def _deliver(
        self, batch: Batch, send_id: str | None, resolved: ResolvedTarget, state: TargetState
    ) -> bool:
        again = send_id is not None
        send_id = send_id or secrets.token_hex(8)
        if self.dry_run:
            return self._log_instead(batch, send_id, again, state)
        # At most _SENDS_STARTING sends start at once, the next once a request is out: a kill
        # that notifies a hundred maps starts a hundred workers at once, and without the
        # turnstile each would claim and send in the same turn of the loop, so that no answer
        # was read (and no notification confirmed) before the last request went out; now they
        # complete in order, 32 at a time. Measured at 1,000 maps (one run each): mix p50 /
        # p90 15.5 / 67 ms against 17.0 / 98 without and 19.9 / 101 one at a time (a loop turn
        # per send slows bursts: 3.6 s to drain 500 kills against 2.0 without and 2.4 with 8).
        # 32 rather than 8 (bench.fanout at 1,000 maps, fan-out 245, alternating runs): 0.14-
        # 0.15 ms between deliveries against 0.17-0.19, the last 61-64 ms after the push
        # against 70-75 (a quarter as many claim commits and loop turns); 64 measured no lower.
        # Nothing waits on the network in here: requests in flight are not bounded by it.
        # A worker alone (the paced case: one event, one target) has nobody to take turns
        # with: its request goes out in this very step, without the turnstile's task and its
        # extra turn of the loop (issue 24: a turn later, the ingest API's answer went first).
        # Those passing the turnstile in one turn are claimed in one transaction, in the next
        # turn, which starts their requests too (:meth:`_start_all`): one commit for eight sends.
        sending: Awaitable[SendResult]
        if len(self._busy) <= 1 and not self._turnstile.locked():
            started = self._start_send(batch, send_id, again, resolved, state)
            if started is None:
                return False
            sending, fence, spans = started
        else:
            async with self._turnstile:
                running = await self._start_together(batch, send_id, again, resolved, state)
                if running is None:
                    return False
                # The request has taken its first step (its task ran before this one woke).
                sending, fence, spans = running
        try:
            result = await sending
        except BaseException as exc:
            answered = _answer_of(sending) if isinstance(exc, asyncio.CancelledError) else None
            if answered is not None:
                # Cancelled in the very turn its request's task took the answer (a stop's
                # deadline): the answer is recorded, never left to be recovered as uncertain.
                self._finish_send(batch, send_id, answered, again, fence, spans, resolved, state)
            elif spans is not None:
                spans.error(type(exc).__name__)
                spans.end()
            raise
        return self._finish_send(batch, send_id, result, again, fence, spans, resolved, state)

    def _start_send(
        self,
        batch: Batch,
        send_id: str,
        again: bool,
        resolved: ResolvedTarget,
        state: TargetState,
    ) -> _Started | None:
        """Claim the batch's rows (under the map's lease) and make its request (not started: the
        caller awaits it); ``None`` when nothing may be sent now (the rows are left as the log
        says)."""
        claim = self._claim(batch, send_id, again, state)
        if claim is None:
            return None
        fence, claimed = claim
        return self._claimed(batch, send_id, again, resolved, state, fence, claimed)

    def _claim(
        self, batch: Batch, send_id: str, again: bool, state: TargetState
    ) -> tuple[LeaseFence | None, int] | None:
        """Claim the batch's rows alone (under the map's lease): the lease and how many rows
        the claim took, or ``None`` when nothing was claimed (the log says why)."""
        held, fence = self._fence(batch, state)
        if not held:
            return None
        if not self._confirmed_first():
            return None
        ids = [row.id for row in batch.rows]
        try:
            claimed = self._store.claim(ids, send_id=send_id, fence=fence)
        except StoreWriteError:
            self._undo_claim(ids, send_id, fence, again)
            return None  # nothing sent; delivery waits for the store
        except ClusterPaused as paused:
            self._cluster_paused(paused.pause)
            return None
        return fence, claimed

    def _confirmed_first(self) -> bool:
        """Write the confirmations gathered in this turn before a claim; False when the store
        refused them (kept: nothing is sent until it writes again).

        A target sends one message at a time, so a crash should leave at most one of its
        messages unconfirmed (re-sent after the restart). A confirmation gathered to be written
        at the next turn was still unwritten when the worker claimed and sent the target's
        next message, and a crash in between left both ``sending``: both were posted again.
        Written here, each batch of confirmations still takes one commit, only earlier."""
        self._journal.write_gathered()
        return not self._journal

    def _log_instead(self, batch: Batch, send_id: str, again: bool, state: TargetState) -> bool:
        """Log the batch instead of sending it, then mark its rows sent; True to go on.

        Its rows are claimed first, exactly as a send's are: a dry run marks nothing under a
        cluster pause, nor on a map whose lease this instance does not (certainly) hold. It
        marked them sent without a claim, so a dry-run engine on a shared database used up
        the backlog a pause was holding (nothing went to Discord, and no engine sent it after
        the resume)."""
        claim = self._claim(batch, send_id, again, state)
        if claim is None:
            return False
        fence, claimed = claim
        if not self._claim_holds(batch, again, state, fence, claimed):
            return False
        for row in batch.rows:
            log.info(
                "dry run: notification not sent",
                extra={
                    "ctx": {
                        "tenant": row.tenant_id,
                        "type": row.type,
                        "target": row.target_key,
                        "correlation_id": row.correlation_id,
                        "body": orjson.loads(row.body),
                    }
                },
            )
        # Not a confirmation: nothing was posted, so the mark may change only rows this claim
        # still holds. Kept while the store refused it, it is written once the map's new
        # owner may have recovered them to send (an unconditional mark lost them).
        sent = SentMessage([row.id for row in batch.rows], self._clock.wall(), None, send_id, fence)
        self._journal.record(
            "mark sent", functools.partial(self._store.mark_sent_if_claimed, [sent]), [sent]
        )
        return True

    async def _start_together(
        self,
        batch: Batch,
        send_id: str,
        again: bool,
        resolved: ResolvedTarget,
        state: TargetState,
    ) -> _Running | None:
        """:meth:`_start_send` for a send through the turnstile: its claim is written with the
        others of this turn, and its request started, by :meth:`_start_all` in the next turn."""
        held, fence = self._fence(batch, state)
        if not held:
            return None
        loop = asyncio.get_running_loop()
        started: asyncio.Future[_Running | None] = loop.create_future()
        context = contextvars.copy_context()
        self._starting.append(
            _Starting(batch, send_id, again, resolved, state, fence, context, started)
        )
        if len(self._starting) == 1:
            loop.call_soon(self._start_all)
        try:
            return await started
        except asyncio.CancelledError:
            # Cancelled once its claim was written and its request started: the request goes
            # too, as if it had been cancelled itself (the rows stay claimed: uncertain).
            if started.done() and not started.cancelled() and started.exception() is None:
                running = started.result()
                if running is not None:
                    task, _fence, spans = running
                    task.cancel()
                    if spans is not None:
                        spans.error("CancelledError")
                        spans.end()
            raise

    def _start_all(self) -> None:
        """Write the claims of the sends that passed the turnstile in the last turn in one
        transaction, then start each claimed send's request (each in its worker's context).

        A claim is the same statement as alone (its own rows, send id and lease); only the
        commit is shared, and it comes before any of the requests, so a crash leaves each claimed
        row ``sending`` (uncertain), never sent unclaimed. A failed commit claims none of them
        and sends nothing, as a failed claim does alone. A send whose worker was cancelled while
        it waited is left out, unclaimed; so is every one when sending stopped meanwhile (a
        pause, the stop, an outcome the store refused).
        """
        starting = [one for one in self._starting if not one.started.done()]
        self._starting = []
        if not starting:
            return
        self._confirmed_first()  # a refusal is kept: _can_send says so below
        if not self._can_send():  # paused, stopping or an outcome unrecorded since they queued
            for one in starting:
                one.started.set_result(None)
            return
        try:
            counts = self._store.claim_all(
                [
                    ClaimRequest([row.id for row in one.batch.rows], one.send_id, one.fence)
                    for one in starting
                ]
            )
        except StoreWriteError:
            for one in starting:
                ids = [row.id for row in one.batch.rows]
                self._undo_claim(ids, one.send_id, one.fence, one.again)
                one.started.set_result(None)  # nothing sent; delivery waits for the store
            return
        except ClusterPaused as paused:
            for one in starting:
                one.started.set_result(None)
            self._cluster_paused(paused.pause)
            return
        except Exception as exc:  # the workers meet it, as they would their own claim's
            for one in starting:
                one.started.set_exception(exc)
            return
        loop = asyncio.get_running_loop()
        for one, claimed in zip(starting, counts, strict=True):
            try:
                started = one.context.run(
                    self._claimed,
                    one.batch,
                    one.send_id,
                    one.again,
                    one.resolved,
                    one.state,
                    one.fence,
                    claimed,
                )
                if started is None:
                    one.started.set_result(None)
                    continue
                request, fence, spans = started
                task = loop.create_task(request, context=one.context)
                one.started.set_result((task, fence, spans))
            except Exception as exc:
                one.started.set_exception(exc)

    def _cluster_paused(self, pause: ClusterPause) -> None:
        """A claim found the cluster paused: nothing was claimed; hold from now on."""
        log.info(
            "the cluster is paused; nothing claimed or sent",
            extra={"ctx": {"paused_by": pause.actor, "paused_on": pause.instance}},
        )
        if self.on_cluster_paused is not None:
            self.on_cluster_paused(pause)

    def _fence(self, batch: Batch, state: TargetState) -> tuple[bool, LeaseFence | None]:
        """The lease to claim the batch's rows under (``None`` alone); False when its map's
        lease is not (certainly) this instance's: nothing is sent, its owner does."""
        tenant = batch.rows[0].tenant_id
        held, fence = self._lease(tenant)
        if not held:
            log.info(
                "map lease not held; nothing sent, the rows are left to its owner",
                extra={"ctx": {"target": state.key, "tenant": tenant, "rows": len(batch.rows)}},
            )
            return False, None
        return True, fence

    def _claim_holds(
        self,
        batch: Batch,
        again: bool,
        state: TargetState,
        fence: LeaseFence | None,
        claimed: int,
    ) -> bool:
        """True when a claim of ``claimed`` rows took the whole batch under a lease still
        held; else its rows are put back (the log says why) and nothing may be sent."""
        ids = [row.id for row in batch.rows]
        tenant = batch.rows[0].tenant_id
        if claimed != len(ids):
            if fence is not None:
                self._unclaim(ids, fence, again)
                if claimed == 0:
                    log.info(
                        "map lease lost before a claim; nothing sent",
                        extra={"ctx": {"target": state.key, "tenant": tenant, "rows": ids}},
                    )
                    return False
            log.error(
                "outbox rows changed while being sent; skipped",
                extra={"ctx": {"target": state.key, "rows": ids, "claimed": claimed}},
            )
            return False
        if fence is not None and self._gate is not None and not self._gate.holds(fence):
            # The lease ran out while the claim was written (a stall): never send under it.
            self._unclaim(ids, fence, again)
            log.warning(
                "map lease lost after a claim; nothing sent, the rows go back to its owner",
                extra={"ctx": {"target": state.key, "tenant": tenant, "rows": ids}},
            )
            return False
        return True

    def _claimed(
        self,
        batch: Batch,
        send_id: str,
        again: bool,
        resolved: ResolvedTarget,
        state: TargetState,
        fence: LeaseFence | None,
        claimed: int,
    ) -> _Started | None:
        """After a claim of ``claimed`` rows: the send's request (not started), or ``None``
        when the claim fell short or its lease was lost meanwhile (the rows are put back)."""
        if not self._claim_holds(batch, again, state, fence, claimed):
            return None
        bot = resolved.target.kind is TargetKind.BOT_CHANNEL
        confirm = again and self._outcomes.count_resend(batch, bot, state)
        # Each traced row's event gets a span for this attempt (a 429 and its retry are two).
        spans = tracing.start_spans("discord.send", [row.trace_parent for row in batch.rows])
        raw = batch.raw  # encoded once: a property
        request = self.sender.send(
            resolved.target,
            batch.body if raw is None else raw,
            bot_token=resolved.bot_token,
            nonce=send_id if bot else None,
            timeout=self.policy.send_timeout(confirm),
        )
        return request, fence, spans

    def _finish_send(
        self,
        batch: Batch,
        send_id: str,
        result: SendResult,
        again: bool,
        fence: LeaseFence | None,
        spans: tracing.SpanHandle | None,
        resolved: ResolvedTarget,
        state: TargetState,
    ) -> bool:
        """Record a request's answer (or leave it to the map's new owner); True to go on."""
        ids = [row.id for row in batch.rows]
        tenant = batch.rows[0].tenant_id
        if spans is not None:
            spans.set("discord.target", state.key)
            spans.set("discord.outcome", result.outcome.value)
            spans.set("messaging.batch.message_count", len(batch.rows))
            spans.set("discord.resend", again)
            if result.status is not None:
                spans.set("http.response.status_code", result.status)
            if result.outcome is not Outcome.SENT:
                spans.error(result.outcome.value)
            spans.end()
        if (
            fence is not None
            and self._gate is not None
            and result.outcome is not Outcome.SENT
            and not self._gate.holds(fence)
        ):
            # The lease was lost during the request: the map's new owner settles these rows
            # (their claim is recovered as uncertain there). A confirmation is always recorded.
            log.warning(
                "map lease lost during a send; its outcome is left to the map's new owner",
                extra={
                    "ctx": {
                        "target": state.key,
                        "tenant": tenant,
                        "rows": ids,
                        "outcome": result.outcome.value,
                    }
                },
            )
            return False
        self._buckets.answered(
            state.key, result.bucket_remaining, result.bucket_reset_after, self._clock.wall()
        )
        return self._outcomes.settle(batch, result, state, resolved, fence, send_id)

    def _undo_claim(
        self, ids: list[int], send_id: str, fence: LeaseFence | None, again: bool
    ) -> None:
        """A claim reported failed may have been applied all the same (PostgreSQL: the
        connection lost during its COMMIT): its rows would stay ``sending`` under this live
        claim, never due and never recovered while it lasts. Undo it as an outcome (written
        before anything is sent again, kept while the store refuses); a no-op if it did not
        apply."""
        self._journal.record(
            "undo claim",
            functools.partial(
                self._store.undo_claim, ids, send_id=send_id, fence=fence, keep_send_id=again
            ),
        )

    def _unclaim(self, ids: list[int], fence: LeaseFence, again: bool) -> None:
        """Put rows claimed under ``fence`` back untouched (their request never went out)."""
        with contextlib.suppress(StoreWriteError):  # else the new owner recovers them
            self._store.unclaim(ids, fence=fence, keep_send_id=again)

    def _outbox_depth(self, now: float) -> dict[str, int]:
        """Pending rows per target, counted at most once a second (every 5 s for a backlog so
        large that counting it takes more than 5 ms: the count walks the whole backlog); and,
        with them, what each dead mark holds (:attr:`_held`, its map's rows only: a key two maps
        share may be dead for one of them), counted again at once when the marks changed."""
        marks = self._dead.marks
        if now - self._depth_updated >= self._depth_every or marks != self._counted_marks:
            self._depth_updated = now
            self._counted_marks = frozenset(marks)
            started = time.perf_counter()
            try:
                self._depth = self._store.outbox_depth()
                self._held = self._store.held_depth(self._counted_marks)
            except Exception as exc:
                # The database not answering (locked, the server ended the connection) is no
                # reason for the snapshot (the console, control status, the alert rules) to
                # fail: the last count stands, said in depth_error, and is taken again in a
                # second. Delivery's own read of what is due says and waits out the fault.
                if not unavailable(exc):
                    raise
                self.depth_error = redact(f"{type(exc).__name__}: {exc}".strip())[:300]
                return self._depth
            self.depth_error = None
            self._depth_every = 1.0 if time.perf_counter() - started < 0.005 else 5.0
            self._metrics.outbox_pending.set(sum(self._depth.values()))
        return self._depth

    def snapshot(self) -> dict[str, Any]:
        """Per-target delivery state for the runtime snapshot."""
        now = self._clock.wall()
        depth = self._outbox_depth(now)
        keys = set(depth) | set(self.states)
        held_for: dict[str, dict[str, int]] = {}
        for (tenant, key), count in sorted(self._held.items()):
            held_for.setdefault(key, {})[tenant] = count
        pause = max(0.0, self._outcomes.pause_until - now)
        self._metrics.delivery_paused.set(round(pause, 1))
        fault = self._store.write_fault
        return {
            "paused": self.paused,
            "global_pause_until": self._outcomes.pause_until if pause else None,
            "store_fault": None if fault is None else fault.as_json(),
            "unrecorded_outcomes": len(self._journal),
            "invalid_answers_10m": self._outcomes.invalid_answers,
            "targets": {
                key: {
                    "pending": depth.get(key, 0),
                    "sent": self.state(key).sent,
                    "messages": self.state(key).messages,
                    "sent_last_minute": sum(1 for t in self.state(key).sent_times if now - t < 60),
                    "rate_limited": self.state(key).rate_limited,
                    "uncertain": self.state(key).uncertain,
                    "last_uncertain_at": self.state(key).last_uncertain_at,
                    "disabled": self.state(key).disabled_reason,
                    "last_error": self.state(key).last_error,
                    "held_for": held_for.get(key, {}),
                }
                for key in sorted(keys)
            },
        }


def build_dispatcher(
    store: Store,
    metrics: Metrics,
    http: HttpClient,
    settings: LiveSettings,
    *,
    gate: SendGate | None = None,
    spill: ConfirmationSpill | None = None,
) -> Dispatcher:
    """The engine's dispatcher: Discord reached through ``http``; targets and switches read from
    the running settings on every look, pacing, policy and API URL re-applied on every reload;
    ``gate`` when several instances share the database; ``spill`` (in the data directory) keeps
    the confirmations a stop cannot record, for the next start."""
    first = settings.current
    # The User-Agent is the clients' (esi.user_agent: declared Restart), kept from the start.
    agent = first.esi.user_agent

    def sender(current: Settings) -> DiscordSender:
        return DiscordSender(http, api_url=current.discord.api_url, user_agent=agent)

    # Resolved once per settings object, not per dispatch: at a thousand maps, resolving every
    # route of every map on every look was half the engine's CPU (bench --only scale).
    resolved: list[tuple[Settings, dict[tuple[str, str], ResolvedTarget]]] = []

    def targets() -> dict[tuple[str, str], ResolvedTarget]:
        current = settings.current
        if not resolved or resolved[0][0] is not current:
            resolved[:] = [(current, resolved_targets(current))]
        return resolved[0][1]

    dispatcher = Dispatcher(
        store,
        sender(first),
        metrics,
        targets,
        dry_run=lambda: settings.current.console.dry_run,
        channel_per_minute=first.discord.channel_messages_per_minute,
        policy=DeliveryPolicy.from_settings(first),
        gate=gate,
        spill=spill,
        routes=lambda tenant: tenant_routes(settings.current, tenant),
    )
    # Before the first look: a target changed while the engine was stopped moves its backlog
    # as at a reload (several instances: only the maps whose lease is held, at its acquisition),
    # the operations webhook's alert messages as a map's.
    dispatcher.adopt_routes([*first.maps, OPS_TENANT])

    def follow(old: Settings, new: Settings) -> None:
        dispatcher.retarget(moved_targets(old, new))
        dispatcher.adopt_routes(changed_maps(old, new))  # recorded once their moves are applied
        if new.discord.channel_messages_per_minute != dispatcher.channel_per_minute:
            dispatcher.channel_per_minute = new.discord.channel_messages_per_minute
        dispatcher.policy = DeliveryPolicy.from_settings(new)
        dispatcher.sender = sender(new)  # discord.api_url
        dispatcher.wake()  # a changed target may revive a dead one

    settings.subscribe(follow)
    return dispatcher
