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
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from wanderer_console.delivery.discord import DiscordSender, Outcome, SendResult
from wanderer_console.delivery.pacing import Batch, ChannelPacer, pack
from wanderer_console.delivery.policy import DeliveryPolicy, TargetState, fingerprint
from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.store.base import OutboxRow
from wanderer_console.store.outbox import DeadTarget
from wanderer_console.store.sqlite import SqliteStore, StoreWriteError
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["Dispatcher", "ResolvedTarget", "TargetState"]

log = logging.getLogger(__name__)

_FETCH = 500
_INVALID_WINDOW = 600.0
_INVALID_BUDGET = 1_000
"""401/403/429 answers allowed per 10 minutes: a tenth of Discord's ban line (10,000)."""
_LONG_PAUSE = 30.0
"""A global pause at least this long is logged at WARNING with its resume time."""
_WRITE_PROBE_MAX = 5.0
"""Longest wait between two attempts to write to a store that cannot write."""


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A target plus the credential needed to post to it."""

    target: Target
    bot_token: str | None = None

    @property
    def fingerprint(self) -> str:
        """Digest of address and credential (a dead target revives when it changes)."""
        return fingerprint(self.target, self.bot_token)


TargetKey = tuple[str, str]


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


class Dispatcher:
    """Works the outbox until stopped."""

    def __init__(
        self,
        store: SqliteStore,
        sender: DiscordSender,
        metrics: Metrics,
        targets: Callable[[], Mapping[TargetKey, ResolvedTarget]],
        *,
        dry_run: Callable[[], bool] = lambda: False,
        poll_interval: float = 1.0,
        channel_per_minute: int = 30,
        channel_window: float = 60.0,
        policy: DeliveryPolicy | None = None,
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self._targets = targets
        self._dry_run = dry_run
        self._poll = poll_interval
        self.policy = policy or DeliveryPolicy()
        """Retry, uncertainty and stop rules (replaced live on a config reload)."""
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._repace = asyncio.Event()
        self._global_pause_until = 0.0
        self._pacer = ChannelPacer(per_minute=channel_per_minute, window=channel_window)
        self._channels: dict[str, str] = {}
        self._unbatch: set[int] = set()
        self._busy: dict[TargetKey, asyncio.Task[None]] = {}
        self._depth_updated = 0.0
        self._depth_every = 1.0
        self._depth: dict[str, int] = {}
        self._invalid: deque[float] = deque()
        self._dead: dict[TargetKey, DeadTarget] = {}
        self._unrecorded: deque[tuple[str, Callable[[], object]]] = deque()
        self._recovered = False
        self._next_write_probe = 0.0
        self._write_probe_delay = 0.5
        self.paused = False
        self.states: dict[str, TargetState] = {}

    @property
    def channel_per_minute(self) -> int:
        """Messages a channel may receive per minute (applies live)."""
        return self._pacer.per_minute

    @channel_per_minute.setter
    def channel_per_minute(self, value: int) -> None:
        self._pacer.per_minute = value
        # Workers waiting for their channel's budget re-measure it now.
        self._repace.set()
        self._repace = asyncio.Event()
        self._wake.set()

    @property
    def global_pause_until(self) -> float:
        """Unix time until which every delivery waits (a global 429 or the invalid budget)."""
        return self._global_pause_until

    @property
    def dead_targets(self) -> dict[TargetKey, DeadTarget]:
        """Targets Discord refused for good, as last read from the store."""
        return dict(self._dead)

    def wake(self, targets: Iterable[str] | None = None) -> None:
        """New rows are in the outbox: look now instead of at the next poll.

        With ``targets`` (the keys the new rows go to), a wake for targets whose worker is
        already running is skipped: that worker's end wakes the dispatcher anyway, and
        re-reading a rate-limited backlog on every new notification would cost more than the
        delivery itself.
        """
        if targets is not None:
            busy = {target for _tenant, target in self._busy}
            if busy and set(targets) <= busy:
                return
        self._wake.set()

    def state(self, key: str) -> TargetState:
        """Delivery state of a target key (created on first use)."""
        found = self.states.get(key)
        if found is None:
            found = self.states[key] = TargetState(key)
        return found

    def retry_target(self, target_key: str) -> int:
        """Revive a dead target and re-queue its failed notifications; return how many."""
        revived = self._store.revive_target(target_key)
        self.state(target_key).disabled_reason = None
        self._wake.set()
        return revived

    # -- the loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Deliver until :meth:`stop` (or cancellation, which cancels in-flight sends too)."""
        try:
            while not self._stop.is_set():
                self._wake.clear()
                if self._store_ready() and not self.paused:
                    self._dispatch_due()
                with contextlib.suppress(TimeoutError):
                    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                    # cancellation that lands as the wait completes.
                    async with asyncio.timeout(self._idle_timeout()):
                        await self._wake.wait()
        except asyncio.CancelledError:
            # Cancelled outright (not :meth:`stop`): in-flight sends go too; their rows stay
            # claimed and are recovered as uncertain.
            for task in self._busy.values():
                task.cancel()
            for task in list(self._busy.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            raise

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking new work; let requests in flight finish within ``grace`` seconds.

        Requests still open at the deadline are cancelled: their rows stay claimed and are
        recorded as uncertain, never as plain pending, so the next start re-sends them only in
        ways that cannot (bot) or may at most once (webhook) post twice.
        """
        self._stop.set()
        self._wake.set()
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
            self._flush_unrecorded()
            self._recover_in_flight()
        except Exception as exc:  # the store may be gone: the next start recovers instead
            log.warning(
                "in-flight rows not settled at stop; the next start does it",
                extra={"ctx": {"error": str(exc)}},
            )

    def _idle_timeout(self) -> float:
        now = time.time()
        timeout = self._poll
        if self._store.write_fault is not None or self._unrecorded:
            return max(0.01, min(timeout, self._next_write_probe - now))
        busy = {target for _tenant, target in self._busy}
        busy |= {target for _tenant, target in self._dead}
        next_due = self._store.next_due_at(exclude_targets=busy)
        # Rows due now are with a running worker (its end wakes us); only a deferred retry in
        # the future shortens the wait.
        if next_due is not None and next_due > now:
            timeout = min(timeout, next_due - now)
        return max(timeout, self._global_pause_until - now, 0.01)

    def _store_ready(self) -> bool:
        """Outcomes recorded and in-flight rows recovered; probes a failing store sparingly."""
        now = time.time()
        failing = self._store.write_fault is not None or bool(self._unrecorded)
        if failing and now < self._next_write_probe:
            return False
        ready = self._flush_unrecorded()
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

    def _flush_unrecorded(self) -> bool:
        """Write outcomes the store refused earlier, oldest first; True once none is left."""
        while self._unrecorded:
            _operation, write = self._unrecorded[0]
            try:
                write()
            except StoreWriteError:
                return False
            self._unrecorded.popleft()
        return True

    def _record(self, operation: str, write: Callable[[], object]) -> None:
        """Write an outcome now, or keep it (and stop sending) until the store writes again."""
        if self._unrecorded:
            self._unrecorded.append((operation, write))
            return
        try:
            write()
        except StoreWriteError:
            self._unrecorded.append((operation, write))

    def _recover_in_flight(self) -> None:
        """Rows claimed when the engine last stopped: schedule their careful re-send."""
        found = self._store.recover_in_flight()
        self._recovered = True
        if not found:
            return
        now = time.time()
        later: dict[float, list[int]] = defaultdict(list)
        for row_id, kind, _send_id, sending_at in found:
            if kind != TargetKind.BOT_CHANNEL.value:
                later[max(now, sending_at + self.policy.uncertain_window)].append(row_id)
        for when, ids in later.items():
            self._store.schedule(ids, next_attempt_at=when)
        log.warning(
            "notifications were in flight when the engine stopped; re-sending them carefully",
            extra={
                "ctx": {
                    "notifications": len(found),
                    "webhook": sum(len(ids) for ids in later.values()),
                    "rule": "bot messages again with their nonce; webhook messages after the"
                    " uncertainty window, counted in wc_delivery_uncertain_total",
                }
            },
        )

    def _dispatch_due(self) -> None:
        now = time.time()
        self._outbox_depth(now)  # first: the gauge stays true while delivery waits
        if now < self._global_pause_until or self._stop.is_set():
            return
        targets = self._targets()
        self._refresh_dead(targets)
        busy = {target for _tenant, target in self._busy}
        excluded = busy | {target for _tenant, target in self._dead}
        rows = self._store.due_outbox(now, limit=_FETCH, exclude_targets=excluded)
        groups: dict[TargetKey, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            key = (row.tenant_id, row.target_key)
            if key not in self._busy and key not in self._dead:
                groups[key].append(row)
        for key, group in groups.items():
            task = asyncio.create_task(self._work_target(key, group, targets.get(key)))
            self._busy[key] = task
            task.add_done_callback(functools.partial(self._worker_done, key))

    def _refresh_dead(self, targets: Mapping[TargetKey, ResolvedTarget]) -> None:
        """Read the dead targets (an operator may have revived one); revive a changed one."""
        dead = {(d.tenant_id, d.target_key): d for d in self._store.dead_targets()}
        for key, target in list(dead.items()):
            resolved = targets.get(key)
            if resolved is not None and resolved.fingerprint != target.fingerprint:
                revived = self._store.revive_target(target.target_key, tenant_id=target.tenant_id)
                del dead[key]
                log.warning(
                    "target revived: its configuration changed; held notifications are sent",
                    extra={"ctx": {"target": key[1], "tenant": key[0], "failed_requeued": revived}},
                )
        for key in self._dead.keys() - dead.keys():
            self.state(key[1]).disabled_reason = None
        for key, target in dead.items():
            self.state(key[1]).disabled_reason = target.reason
        self._dead = dead
        self._metrics.targets_dead.set(len(dead))

    def _worker_done(self, key: TargetKey, _task: asyncio.Task[None]) -> None:
        self._busy.pop(key, None)
        self._wake.set()

    def _can_send(self) -> bool:
        return not (
            self.paused
            or self._stop.is_set()
            or self._unrecorded
            or self._store.write_fault is not None
        )

    async def _work_target(
        self, key: TargetKey, rows: list[OutboxRow], resolved: ResolvedTarget | None
    ) -> None:
        state = self.state(key[1])
        if resolved is None:
            error = "target no longer configured (wanderer-console outbox retry TARGET re-queues)"
            self._record(
                "mark failed",
                functools.partial(self._store.mark_failed, [r.id for r in rows], error=error),
            )
            self._metrics.delivery_failures.labels(reason="unconfigured").inc()
            log.warning(
                "notifications for a target no longer configured failed",
                extra={"ctx": {"target": key[1], "tenant": key[0], "notifications": len(rows)}},
            )
            return
        for batch, send_id in self._batches(rows):
            while (wait := self._wait_for(key[1], state)) > 0 and not self._stop.is_set():
                await self._sleep(wait)
            if not self._can_send():
                return
            if not await self._deliver(batch, send_id, resolved, state):
                return  # keep this target's order: the rest wait for the retry

    def _wait_for(self, target_key: str, state: TargetState) -> float:
        """Seconds before the target's next message fits every limit and pause."""
        now = time.time()
        return max(
            state.paused_until - now,
            self._global_pause_until - now,
            self._pacer.delay(self._channel_of(target_key), now),
        )

    async def _sleep(self, seconds: float) -> None:
        """Wait, ending early when stopping or when the pacing budget changes."""
        stop = asyncio.ensure_future(self._stop.wait())
        repace = asyncio.ensure_future(self._repace.wait())
        try:
            await asyncio.wait({stop, repace}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
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
        max_embeds = 1 if self._unbatch & {r.id for r in free} else 10
        out += [(batch, None) for batch in pack(free, max_embeds=max_embeds)]
        out.sort(key=lambda item: item[0].rows[0].id)
        return out

    def _channel_of(self, target_key: str) -> str:
        """The channel a target posts into (learned from Discord's answers for webhooks)."""
        return self._channels.get(target_key, target_key)

    async def _deliver(
        self, batch: Batch, send_id: str | None, resolved: ResolvedTarget, state: TargetState
    ) -> bool:
        ids = [row.id for row in batch.rows]
        if self._dry_run():
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
            self._record("mark sent", functools.partial(self._store.mark_sent, ids))
            return True
        again = send_id is not None
        send_id = send_id or secrets.token_hex(8)
        try:
            claimed = self._store.claim(ids, send_id=send_id)
        except StoreWriteError:
            return False  # nothing sent; delivery waits for the store
        if claimed != len(ids):
            log.error(
                "outbox rows changed while being sent; skipped",
                extra={"ctx": {"target": state.key, "rows": ids, "claimed": claimed}},
            )
            return False
        bot = resolved.target.kind is TargetKind.BOT_CHANNEL
        confirm = again and self._count_resend(batch, bot, state)
        result = await self._sender.send(
            resolved.target,
            batch.body,
            bot_token=resolved.bot_token,
            nonce=send_id if bot else None,
            timeout=self.policy.confirm_timeout if confirm else None,
        )
        return self._settle(batch, result, state, resolved)

    def _protected(self, rows: Iterable[OutboxRow], bot: bool) -> bool:
        """A re-send of these rows cannot post twice: a bot nonce Discord still remembers."""
        now = time.time()
        first_sent = min((row.sending_at or now for row in rows), default=now)
        return bot and now - first_sent <= self.policy.nonce_window

    def _count_resend(self, batch: Batch, bot: bool, state: TargetState) -> bool:
        """Count notifications sent again after an unknown outcome (protected by nonce or not);
        True when there were any (the re-send then waits longer for its answer)."""
        uncertain = [row for row in batch.rows if row.uncertain]
        if not uncertain:
            return False
        protected = self._protected(uncertain, bot)
        kind = "bot_channel" if bot else "webhook"
        resend = "nonce" if protected else "unprotected"
        self._metrics.delivery_uncertain.labels(target_kind=kind, resend=resend).inc(len(uncertain))
        state.uncertain += len(uncertain)
        log.log(
            logging.INFO if protected else logging.WARNING,
            "re-sending notifications whose first send had no known outcome",
            extra={
                "ctx": {
                    "target": state.key,
                    "notifications": len(uncertain),
                    "protection": resend,
                    "correlation_ids": [row.correlation_id for row in uncertain],
                }
            },
        )
        return True

    def _settle(
        self, batch: Batch, result: SendResult, state: TargetState, resolved: ResolvedTarget
    ) -> bool:
        now = time.time()
        first = batch.rows[0]
        ids = [row.id for row in batch.rows]
        store = self._store
        if result.outcome is Outcome.SENT:
            self._record("mark sent", functools.partial(store.mark_sent, ids, now=now))
            debug = log.isEnabledFor(logging.DEBUG)
            for row in batch.rows:
                self._metrics.notifications_delivered.labels(type=row.type).inc()
                if row.created_at:
                    self._metrics.delivery_seconds.observe(max(0.0, now - row.created_at))
                if debug:
                    log.debug("notification delivered", extra={"ctx": _row_ctx(row)})
            state.sent += len(batch.rows)
            state.messages += 1
            state.sent_times.append(now)
            del state.sent_times[:-120]
            if result.channel_id:
                self._channels[first.target_key] = f"channel:{result.channel_id}"
            self._pacer.record(self._channel_of(first.target_key), now)
            if result.bucket_remaining == 0 and result.bucket_reset_after:
                state.paused_until = now + result.bucket_reset_after
            return True
        state.last_error = f"{result.status or ''} {result.detail}".strip()
        if result.status in (401, 403, 429):
            self._count_invalid(now)
        self._metrics.delivery_failures.labels(reason=result.outcome.value).inc()
        self._log_failure(batch, result)
        release = functools.partial(store.release, ids, error=state.last_error)
        if result.outcome is Outcome.DEAD_TARGET:
            return self._hold_target(batch, result, state, resolved, release)
        if result.outcome is Outcome.REJECTED:
            if len(batch.rows) > 1:
                # Something in the batch is unacceptable: resend the rows one by one to find it.
                self._unbatch.update(ids)
                self._record(
                    "release", functools.partial(release, next_attempt_at=now, attempt=False)
                )
                return False
            self._fail(batch, f"Discord refused it: {state.last_error}", result)
            return True
        oldest = min(row.created_at or now for row in batch.rows)
        if now - oldest > self.policy.max_age:
            hours = self.policy.max_age / 3600
            self._fail(
                batch, f"expired: undelivered after {hours:g} h ({state.last_error})", result
            )
            return True
        if result.outcome is Outcome.RATE_LIMITED:
            state.rate_limited += 1
            state.paused_until = now + result.retry_after
            if result.global_limit:
                self._pause_all(now + result.retry_after, "Discord global rate limit")
            # A 429 is not the message's fault: it does not count as an attempt.
            self._record(
                "release",
                functools.partial(
                    release,
                    next_attempt_at=now + result.retry_after,
                    attempt=False,
                    keep_send_id=True,
                ),
            )
            return False
        if result.outcome is Outcome.UNCERTAIN:
            bot = resolved.target.kind is TargetKind.BOT_CHANNEL
            if any(row.uncertain for row in batch.rows) and not self._protected(batch.rows, bot):
                # Already re-sent once without a nonce to protect it: a third post is worse
                # than a probably delivered one. Kept for the operator (outbox list).
                error = f"sent twice without an answer; probably delivered ({state.last_error})"
                self._record(
                    "mark uncertain", functools.partial(store.mark_unconfirmed, ids, error=error)
                )
                log.error(
                    "notification not re-sent again: two sends had no known outcome",
                    extra={"ctx": {"target": first.target_key, "outbox_ids": ids}},
                )
                return True
            # A bot message goes again with its nonce; a webhook message waits until the lost
            # request cannot still be on its way.
            delay = self.policy.backoff(first.attempts) if bot else self.policy.uncertain_window
            self._record(
                "release",
                functools.partial(
                    release, next_attempt_at=now + delay, keep_send_id=True, uncertain=True
                ),
            )
            return False
        # Transient: wait and try again. An open breaker sent nothing: not an attempt.
        if result.attempted:
            delay = self.policy.backoff(first.attempts)
        else:
            delay = max(result.retry_after, self.policy.backoff_base)
        self._record(
            "release",
            functools.partial(
                release, next_attempt_at=now + delay, attempt=result.attempted, keep_send_id=True
            ),
        )
        return False

    def _hold_target(
        self,
        batch: Batch,
        result: SendResult,
        state: TargetState,
        resolved: ResolvedTarget,
        release: Callable[..., None],
    ) -> bool:
        """Discord refused the target for good: hold it and its notifications, say how to fix."""
        first = batch.rows[0]
        reason = state.last_error or "refused"
        state.disabled_reason = reason
        self._metrics.targets_disabled.inc()
        self._record(
            "dead target",
            functools.partial(
                self._store.set_dead_target,
                first.tenant_id,
                first.target_key,
                reason=reason,
                fingerprint=resolved.fingerprint,
                now=time.time(),
            ),
        )
        self._record(
            "release", functools.partial(release, next_attempt_at=time.time(), keep_send_id=True)
        )
        self._dead[(first.tenant_id, first.target_key)] = DeadTarget(
            first.tenant_id, first.target_key, reason, resolved.fingerprint, time.time()
        )
        log.error(
            "discord refused a target; its notifications wait until its configuration changes"
            " or an operator runs `wanderer-console outbox retry TARGET`",
            extra={
                "ctx": {
                    "target": first.target_key,
                    "tenant": first.tenant_id,
                    "status": result.status,
                    "detail": result.detail,
                    "correlation_ids": [row.correlation_id for row in batch.rows],
                }
            },
        )
        return False

    def _fail(self, batch: Batch, error: str, result: SendResult) -> None:
        """Give up on a batch for good, keeping the reason on each row."""
        ids = [row.id for row in batch.rows]
        self._record("mark failed", functools.partial(self._store.mark_failed, ids, error=error))
        log.error(
            "notification failed for good",
            extra={
                "ctx": {
                    "target": batch.rows[0].target_key,
                    "status": result.status,
                    "reason": error,
                    "attempts": batch.rows[0].attempts + 1,
                    "correlation_ids": [row.correlation_id for row in batch.rows],
                }
            },
        )

    def _log_failure(self, batch: Batch, result: SendResult) -> None:
        # A 429 is routine pacing (debug); anything else is a failure worth a warning. One line
        # per notification, so its correlation id leads from ingest to here.
        level = logging.DEBUG if result.outcome is Outcome.RATE_LIMITED else logging.WARNING
        if not log.isEnabledFor(level):
            return
        for row in batch.rows:
            log.log(
                level,
                "notification delivery failed",
                extra={
                    "ctx": {
                        **_row_ctx(row),
                        "outcome": result.outcome.value,
                        "status": result.status,
                        "detail": result.detail,
                        "attempts": row.attempts + 1,
                    }
                },
            )

    def _pause_all(self, until: float, reason: str) -> None:
        """Hold every delivery until ``until``; a long pause is worth a warning with its end."""
        if until <= self._global_pause_until:
            return
        now = time.time()
        level = logging.WARNING if until - now >= _LONG_PAUSE else logging.INFO
        log.log(
            level,
            "all delivery paused",
            extra={
                "ctx": {
                    "reason": reason,
                    "resume_at": _iso(until),
                    "resume_in_seconds": round(until - now, 1),
                }
            },
        )
        self._global_pause_until = until

    def _outbox_depth(self, now: float) -> dict[str, int]:
        """Pending rows per target, counted at most once a second (every 5 s for a backlog so
        large that counting it takes more than 5 ms: the count walks the whole backlog)."""
        if now - self._depth_updated >= self._depth_every:
            self._depth_updated = now
            started = time.perf_counter()
            self._depth = self._store.outbox_depth()
            self._depth_every = 1.0 if time.perf_counter() - started < 0.005 else 5.0
            self._metrics.outbox_pending.set(sum(self._depth.values()))
        return self._depth

    def _count_invalid(self, now: float) -> None:
        """Track answers Discord counts toward its IP ban; pause everything near the budget."""
        self._invalid.append(now)
        while self._invalid and now - self._invalid[0] > _INVALID_WINDOW:
            self._invalid.popleft()
        if len(self._invalid) >= _INVALID_BUDGET:
            until = self._invalid[0] + _INVALID_WINDOW
            if until > self._global_pause_until:
                log.error(
                    "too many 401/403/429 answers from Discord; all delivery paused",
                    extra={"ctx": {"count": len(self._invalid), "window_seconds": _INVALID_WINDOW}},
                )
            self._pause_all(until, "401/403/429 budget")

    def snapshot(self) -> dict[str, Any]:
        """Per-target delivery state for the runtime snapshot."""
        now = time.time()
        depth = self._outbox_depth(now)
        keys = set(depth) | set(self.states)
        pause = max(0.0, self._global_pause_until - now)
        self._metrics.delivery_paused.set(round(pause, 1))
        fault = self._store.write_fault
        return {
            "paused": self.paused,
            "global_pause_until": self._global_pause_until if pause else None,
            "store_fault": None if fault is None else fault.as_json(),
            "unrecorded_outcomes": len(self._unrecorded),
            "invalid_answers_10m": len(self._invalid),
            "targets": {
                key: {
                    "pending": depth.get(key, 0),
                    "sent": self.state(key).sent,
                    "messages": self.state(key).messages,
                    "sent_last_minute": sum(1 for t in self.state(key).sent_times if now - t < 60),
                    "rate_limited": self.state(key).rate_limited,
                    "uncertain": self.state(key).uncertain,
                    "disabled": self.state(key).disabled_reason,
                    "last_error": self.state(key).last_error,
                }
                for key in sorted(keys)
            },
        }


def _row_ctx(row: OutboxRow) -> dict[str, Any]:
    """Log context naming one outbox row and the event behind it."""
    return {
        "tenant": row.tenant_id,
        "type": row.type,
        "target": row.target_key,
        "dedup_key": row.dedup_key,
        "outbox_id": row.id,
        "correlation_id": row.correlation_id,
    }
