"""The outbox dispatcher: every pending notification is delivered once Discord confirms it.

Rows are read from the durable outbox, grouped per target and sent target by target in
parallel, each target in order. A row is marked sent only after Discord's confirmation, so a
crash re-sends at most the message in flight, never one that was confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from wanderer_console.delivery.discord import DiscordSender, Outcome, SendResult
from wanderer_console.domain.notification import Target
from wanderer_console.store.base import OutboxRow
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["Dispatcher", "ResolvedTarget", "TargetState"]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS = 12  # about an hour of backoff before a transient failure is given up


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
    rate_limited: int = 0
    disabled_reason: str | None = None
    paused_until: float = 0.0
    last_error: str | None = None
    sent_times: list[float] = field(default_factory=list)


class Dispatcher:
    """Works the outbox until stopped."""

    def __init__(
        self,
        store: SqliteStore,
        sender: DiscordSender,
        metrics: Metrics,
        targets: Callable[[], Mapping[tuple[str, str], ResolvedTarget]],
        *,
        dry_run: Callable[[], bool] = lambda: False,
        poll_interval: float = 1.0,
    ) -> None:
        self._store = store
        self._sender = sender
        self._metrics = metrics
        self._targets = targets
        self._dry_run = dry_run
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._global_pause_until = 0.0
        self.paused = False
        self.states: dict[str, TargetState] = {}

    def wake(self) -> None:
        """New rows are in the outbox: look now instead of at the next poll."""
        self._wake.set()

    def state(self, key: str) -> TargetState:
        """Delivery state of a target key (created on first use)."""
        found = self.states.get(key)
        if found is None:
            found = self.states[key] = TargetState(key)
        return found

    async def run(self) -> None:
        """Deliver forever; returns only when cancelled."""
        while True:
            worked = 0 if self.paused else await self.drain_once()
            if worked:
                continue
            self._wake.clear()
            timeout = self._poll
            next_due = self._store.next_due_at()
            if next_due is not None:
                timeout = max(0.01, min(timeout, next_due - time.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def drain_once(self, limit: int = 200) -> int:
        """Send every row due now (up to ``limit``); return how many were handled."""
        now = time.time()
        if now < self._global_pause_until:
            await asyncio.sleep(self._global_pause_until - now)
            now = time.time()
        rows = self._store.due_outbox(now, limit=limit)
        self._metrics.outbox_pending.set(sum(self._store.outbox_depth().values()))
        if not rows:
            return 0
        groups: dict[tuple[str, str], list[OutboxRow]] = defaultdict(list)
        for row in rows:
            groups[(row.tenant_id, row.target_key)].append(row)
        targets = self._targets()
        await asyncio.gather(
            *(self._work_target(key, group, targets.get(key)) for key, group in groups.items())
        )
        return len(rows)

    async def _work_target(
        self, key: tuple[str, str], rows: list[OutboxRow], resolved: ResolvedTarget | None
    ) -> None:
        state = self.state(key[1])
        for row in rows:
            if resolved is None:
                self._store.mark_failed(row.id, error="target no longer configured")
                self._metrics.delivery_failures.labels(reason="unconfigured").inc()
                continue
            if state.disabled_reason is not None:
                self._store.mark_failed(row.id, error=f"target disabled: {state.disabled_reason}")
                self._metrics.delivery_failures.labels(reason="disabled").inc()
                continue
            wait = state.paused_until - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not await self._deliver(row, resolved, state):
                return  # keep this target's order: the rest wait for the retry

    async def _deliver(self, row: OutboxRow, resolved: ResolvedTarget, state: TargetState) -> bool:
        body: dict[str, Any] = orjson.loads(row.body)
        if self._dry_run():
            log.info(
                "dry run: notification not sent",
                extra={
                    "ctx": {
                        "tenant": row.tenant_id,
                        "type": row.type,
                        "target": row.target_key,
                        "body": body,
                    }
                },
            )
            self._store.mark_sent(row.id)
            return True
        result = await self._sender.send(resolved.target, body, bot_token=resolved.bot_token)
        return self._settle(row, result, state)

    def _settle(self, row: OutboxRow, result: SendResult, state: TargetState) -> bool:
        now = time.time()
        if result.outcome is Outcome.SENT:
            self._store.mark_sent(row.id, now=now)
            self._metrics.notifications_delivered.labels(type=row.type).inc()
            state.sent += 1
            state.sent_times.append(now)
            del state.sent_times[:-120]
            if result.bucket_remaining == 0 and result.bucket_reset_after:
                state.paused_until = now + result.bucket_reset_after
            return True
        state.last_error = f"{result.status or ''} {result.detail}".strip()
        self._metrics.delivery_failures.labels(reason=result.outcome.value).inc()
        if result.outcome is Outcome.RATE_LIMITED:
            state.rate_limited += 1
            state.paused_until = now + result.retry_after
            if result.global_limit:
                self._global_pause_until = now + result.retry_after
            self._store.mark_retry(
                row.id, next_attempt_at=now + result.retry_after, error=state.last_error
            )
            return False
        if result.outcome is Outcome.DEAD_TARGET:
            state.disabled_reason = state.last_error or "refused"
            self._store.mark_failed(row.id, error=state.last_error)
            log.error(
                "discord target disabled; fix the configuration and reload",
                extra={
                    "ctx": {
                        "target": row.target_key,
                        "tenant": row.tenant_id,
                        "status": result.status,
                        "detail": result.detail,
                    }
                },
            )
            return False
        if result.outcome is Outcome.REJECTED or row.attempts + 1 >= _MAX_ATTEMPTS:
            self._store.mark_failed(row.id, error=state.last_error)
            log.error(
                "notification dropped after a permanent error",
                extra={
                    "ctx": {
                        "target": row.target_key,
                        "status": result.status,
                        "detail": result.detail,
                        "attempts": row.attempts + 1,
                    }
                },
            )
            return True
        delay = min(300.0, 2.0 ** min(row.attempts, 8))
        self._store.mark_retry(row.id, next_attempt_at=now + delay, error=state.last_error)
        return False

    def snapshot(self) -> dict[str, Any]:
        """Per-target delivery state for the runtime snapshot."""
        now = time.time()
        depth = self._store.outbox_depth()
        keys = set(depth) | set(self.states)
        return {
            "paused": self.paused,
            "targets": {
                key: {
                    "pending": depth.get(key, 0),
                    "sent": self.state(key).sent,
                    "sent_last_minute": sum(1 for t in self.state(key).sent_times if now - t < 60),
                    "rate_limited": self.state(key).rate_limited,
                    "disabled": self.state(key).disabled_reason,
                    "last_error": self.state(key).last_error,
                }
                for key in sorted(keys)
            },
        }
