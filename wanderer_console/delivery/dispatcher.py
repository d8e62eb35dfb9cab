"""The outbox dispatcher: every pending notification is delivered once Discord confirms it.

Due rows are read from the durable outbox and handed to one worker per target, so a target that
waits on a rate limit never holds up another. A worker packs queued rows into messages of up to
10 embeds, paces its channel, and marks rows sent only after Discord's confirmation, so a crash
re-sends at most the message in flight, never one that was confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from wanderer_console.delivery.discord import DiscordSender, Outcome, SendResult
from wanderer_console.delivery.pacing import Batch, ChannelPacer, pack
from wanderer_console.domain.notification import Target
from wanderer_console.store.base import OutboxRow
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["Dispatcher", "ResolvedTarget", "TargetState"]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 12  # about an hour of backoff before a transient failure is given up
_FETCH = 500
_INVALID_WINDOW = 600.0
_INVALID_BUDGET = 1_000
"""401/403/429 answers allowed per 10 minutes: a tenth of Discord's ban line (10,000)."""


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A target plus the credential needed to post to it."""

    target: Target
    bot_token: str | None = None


@dataclass(slots=True)
class TargetState:
    """Live delivery state of one target (shown in the snapshot)."""

    key: str
    sent: int = 0
    """Notifications confirmed."""
    messages: int = 0
    """Discord messages confirmed (a message carries up to 10 notifications)."""
    rate_limited: int = 0
    disabled_reason: str | None = None
    paused_until: float = 0.0
    last_error: str | None = None
    sent_times: list[float] = field(default_factory=list)


TargetKey = tuple[str, str]


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
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self._targets = targets
        self._dry_run = dry_run
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._global_pause_until = 0.0
        self._pacer = ChannelPacer(per_minute=channel_per_minute, window=channel_window)
        self._channels: dict[str, str] = {}
        self._unbatch: set[int] = set()
        self._busy: dict[TargetKey, asyncio.Task[None]] = {}
        self._depth_updated = 0.0
        self._depth_every = 1.0
        self._depth: dict[str, int] = {}
        self._invalid: deque[float] = deque()
        self.paused = False
        self.states: dict[str, TargetState] = {}

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

    async def run(self) -> None:
        """Deliver forever; returns only when cancelled (in-flight sends are cancelled too)."""
        try:
            while True:
                self._wake.clear()
                if not self.paused:
                    self._dispatch_due()
                timeout = self._poll
                next_due = self._store.next_due_at()
                now = time.time()
                # Rows due now are with a running worker (its end wakes us); only a deferred
                # retry in the future shortens the wait.
                if next_due is not None and next_due > now:
                    timeout = min(timeout, next_due - now)
                timeout = max(timeout, self._global_pause_until - now, 0.01)
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that lands as the wait completes, and the loop would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        finally:
            for task in self._busy.values():
                task.cancel()
            for task in list(self._busy.values()):
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _dispatch_due(self) -> None:
        now = time.time()
        if now < self._global_pause_until:
            return
        self._outbox_depth(now)
        busy = {target for _tenant, target in self._busy}
        rows = self._store.due_outbox(now, limit=_FETCH, exclude_targets=busy)
        groups: dict[TargetKey, list[OutboxRow]] = defaultdict(list)
        for row in rows:
            key = (row.tenant_id, row.target_key)
            if key not in self._busy:
                groups[key].append(row)
        if not groups:
            return
        targets = self._targets()
        for key, group in groups.items():
            task = asyncio.create_task(self._work_target(key, group, targets.get(key)))
            self._busy[key] = task
            task.add_done_callback(functools.partial(self._worker_done, key))

    def _worker_done(self, key: TargetKey, _task: asyncio.Task[None]) -> None:
        self._busy.pop(key, None)
        self._wake.set()

    async def _work_target(
        self, key: TargetKey, rows: list[OutboxRow], resolved: ResolvedTarget | None
    ) -> None:
        state = self.state(key[1])
        if resolved is None or state.disabled_reason is not None:
            reason = "unconfigured" if resolved is None else "disabled"
            error = (
                "target no longer configured"
                if resolved is None
                else f"target disabled: {state.disabled_reason}"
            )
            for row in rows:
                self._store.mark_failed(row.id, error=error)
                self._metrics.delivery_failures.labels(reason=reason).inc()
            return
        max_embeds = 1 if self._unbatch & {r.id for r in rows} else 10
        for batch in pack(rows, max_embeds=max_embeds):
            now = time.time()
            wait = max(
                state.paused_until - now,
                self._global_pause_until - now,
                self._pacer.delay(self._channel_of(key[1]), now),
            )
            if wait > 0:
                await asyncio.sleep(wait)
            if self.paused:
                return
            if not await self._deliver(batch, resolved, state):
                return  # keep this target's order: the rest wait for the retry

    def _channel_of(self, target_key: str) -> str:
        """The channel a target posts into (learned from Discord's answers for webhooks)."""
        return self._channels.get(target_key, target_key)

    async def _deliver(self, batch: Batch, resolved: ResolvedTarget, state: TargetState) -> bool:
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
                self._store.mark_sent(row.id)
            return True
        result = await self._sender.send(resolved.target, batch.body, bot_token=resolved.bot_token)
        return self._settle(batch, result, state)

    def _settle(self, batch: Batch, result: SendResult, state: TargetState) -> bool:
        now = time.time()
        first = batch.rows[0]
        if result.outcome is Outcome.SENT:
            debug = log.isEnabledFor(logging.DEBUG)
            for row in batch.rows:
                self._store.mark_sent(row.id, now=now)
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
        # A 429 is routine pacing (debug); anything else is a failure worth a warning. One line
        # per notification, so its correlation id leads from ingest to here.
        level = logging.DEBUG if result.outcome is Outcome.RATE_LIMITED else logging.WARNING
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
        if result.outcome is Outcome.RATE_LIMITED:
            state.rate_limited += 1
            state.paused_until = now + result.retry_after
            if result.global_limit:
                self._global_pause_until = now + result.retry_after
            # A 429 is not the message's fault: it does not count as an attempt.
            for row in batch.rows:
                self._store.defer(row.id, next_attempt_at=now + result.retry_after)
            return False
        if result.outcome is Outcome.DEAD_TARGET:
            state.disabled_reason = state.last_error or "refused"
            self._metrics.targets_disabled.inc()
            for row in batch.rows:
                self._store.mark_failed(row.id, error=state.last_error)
            log.error(
                "discord target disabled; fix the configuration and reload",
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
        if result.outcome is Outcome.REJECTED and len(batch.rows) > 1:
            # Something in the batch is unacceptable: resend the rows one by one to find it.
            self._unbatch.update(row.id for row in batch.rows)
            return False
        if result.outcome is Outcome.REJECTED or first.attempts + 1 >= _MAX_ATTEMPTS:
            for row in batch.rows:
                self._store.mark_failed(row.id, error=state.last_error)
            log.error(
                "notification dropped after a permanent error",
                extra={
                    "ctx": {
                        "target": first.target_key,
                        "status": result.status,
                        "detail": result.detail,
                        "attempts": first.attempts + 1,
                        "correlation_ids": [row.correlation_id for row in batch.rows],
                    }
                },
            )
            return True
        delay = min(300.0, 2.0 ** min(first.attempts, 8))
        for row in batch.rows:
            self._store.mark_retry(row.id, next_attempt_at=now + delay, error=state.last_error)
        return False

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
                    extra={
                        "ctx": {
                            "count": len(self._invalid),
                            "window_seconds": _INVALID_WINDOW,
                            "resume_in_seconds": round(until - now, 1),
                        }
                    },
                )
            self._global_pause_until = max(self._global_pause_until, until)

    def snapshot(self) -> dict[str, Any]:
        """Per-target delivery state for the runtime snapshot."""
        now = time.time()
        depth = self._outbox_depth(now)
        keys = set(depth) | set(self.states)
        return {
            "paused": self.paused,
            "invalid_answers_10m": len(self._invalid),
            "targets": {
                key: {
                    "pending": depth.get(key, 0),
                    "sent": self.state(key).sent,
                    "messages": self.state(key).messages,
                    "sent_last_minute": sum(1 for t in self.state(key).sent_times if now - t < 60),
                    "rate_limited": self.state(key).rate_limited,
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
