"""What each Discord answer does: to the outbox rows, to their target, to every delivery.

:class:`Outcomes` applies :mod:`~wanderer_console.delivery.policy` to one send's result: a
confirmation marks the rows sent and feeds the channel's pacing; a 429 pauses the target (or all
delivery, when global); 401/403/404 hold the target as dead; 400 fails the notification with
Discord's reason; a transient failure waits with capped backoff until the maximum age; an unknown
outcome is re-sent only as the same message. Every write goes through the
:class:`OutcomeJournal`, which keeps what the store refused and writes it first once it can, so
a store that cannot write never turns an answer into a repeat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from wanderer_console.delivery.discord import Outcome, SendResult
from wanderer_console.delivery.pacing import Batch, ChannelPacer
from wanderer_console.delivery.policy import DeliveryPolicy, ResolvedTarget, TargetState
from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.domain.notification import TargetKind
from wanderer_console.store.base import LeaseFence, OutboxRow, SentMessage, Store
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["OutcomeJournal", "Outcomes", "TargetKey", "row_ctx"]

log = logging.getLogger("wanderer_console.delivery.dispatcher")

TargetKey = tuple[str, str]

_INVALID_WINDOW = 600.0
_INVALID_BUDGET = 1_000
"""401/403/429 answers allowed per 10 minutes: a tenth of Discord's ban line (10,000)."""
_LONG_PAUSE = 30.0
"""A global pause at least this long is logged at WARNING with its resume time."""
_PROBE_SLACK = 0.01
"""Shortest wait for an open breaker's next probe (its clock and ours are read apart)."""

_NOTHING_POSTED = frozenset({Outcome.RATE_LIMITED, Outcome.RETRY, Outcome.DEAD_TARGET})
"""Answers after which a re-send bound to the same message carries the same risk of a double
post as before (Discord posted nothing): its unknown outcome is not counted again."""

_T = TypeVar("_T")


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def _aged_from(row: OutboxRow) -> float:
    """When a row's maximum age started: an operator's retry restarts it (``aged_from``), so a
    notification re-queued after a long outage is not failed as expired at its first 5xx."""
    return row.aged_from or row.created_at


def row_ctx(row: OutboxRow) -> dict[str, Any]:
    """Log context naming one outbox row and the event behind it."""
    return {
        "tenant": row.tenant_id,
        "type": row.type,
        "target": row.target_key,
        "dedup_key": row.dedup_key,
        "outbox_id": row.id,
        "correlation_id": row.correlation_id,
    }


class DeadTargetsLike(Protocol):
    """Where a refused target is held (:class:`~wanderer_console.delivery.targets.DeadTargets`)."""

    def hold(self, row: OutboxRow, reason: str, resolved: ResolvedTarget) -> None:
        """Keep ``row``'s target dead until it changes."""


class OutcomeJournal:
    """Outcome writes in order; those the store refused are kept and written first later.

    Confirmations read in one turn of the loop are gathered (:meth:`record_soon`) and written
    together at the next turn, or before any other outcome, whichever comes first: one commit
    for the answers of a fan-out read together. Until then their rows stay claimed, so a crash
    meanwhile leaves them uncertain, exactly as a crash between an answer and its write does.
    """

    def __init__(self) -> None:
        self._waiting: deque[tuple[str, Callable[[], object], tuple[object, ...]]] = deque()
        self._gathered: tuple[str, Callable[[list[Any]], object], list[Any]] | None = None

    def __len__(self) -> int:
        """Outcomes the store refused (gathered ones not yet written are not counted)."""
        return len(self._waiting)

    def record(
        self, operation: str, write: Callable[[], object], items: Iterable[object] = ()
    ) -> None:
        """Write an outcome now, or keep it (and stop sending) until the store writes again.
        ``items``: what it writes, for :meth:`confirmations` to find once it is kept."""
        self._write_gathered()  # what was gathered before goes first
        if self._waiting:
            self._waiting.append((operation, write, tuple(items)))
            return
        try:
            write()
        except StoreWriteError:
            self._waiting.append((operation, write, tuple(items)))

    def record_soon(
        self, operation: str, item: _T, write_all: Callable[[list[_T]], object]
    ) -> None:
        """Gather ``item`` with the others of ``operation`` recorded in this turn of the loop:
        ``write_all`` writes them at once, at the next turn (or before the next other outcome,
        or at :meth:`flush`), through :meth:`record` (kept if the store refuses it)."""
        if self._gathered is not None and self._gathered[0] != operation:
            self._write_gathered()
        if self._gathered is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait a turn on: written now
                self.record(operation, functools.partial(write_all, [item]), [item])
                return
            self._gathered = (operation, write_all, [])
            loop.call_soon(self.write_gathered)
        self._gathered[2].append(item)

    def _write_gathered(self) -> None:
        if self._gathered is None:
            return
        operation, write_all, items = self._gathered
        self._gathered = None
        self.record(operation, functools.partial(write_all, items), items)

    def write_gathered(self) -> None:
        """Write the gathered outcomes now (the next turn; a map's lease about to go; the loop
        ending): refused, they are kept; any other error is logged, never raised."""
        try:
            self._write_gathered()
        except Exception as exc:  # never the loop's to log: this is what it means
            log.error(
                "outcomes not recorded: their notifications stay in flight and are re-sent as"
                " uncertain after a restart",
                exc_info=exc,
            )

    def operations(self) -> list[str]:
        """The kinds of outcome the store refused and that wait here (``mark sent``, …)."""
        return sorted({operation for operation, _write, _items in self._waiting})

    def confirmations(self) -> list[SentMessage]:
        """The confirmed messages among the outcomes the store refused, oldest first (what a
        stop keeps on disk, :mod:`~wanderer_console.delivery.spill`)."""
        return [
            item
            for _op, _write, items in self._waiting
            for item in items
            if isinstance(item, SentMessage)
        ]

    def others(self) -> list[str]:
        """The kinds of the refused outcomes other than confirmations, one per outcome."""
        return [
            operation
            for operation, _write, items in self._waiting
            if not any(isinstance(item, SentMessage) for item in items)
        ]

    def flush(self) -> bool:
        """Write outcomes the store refused earlier (and those gathered), oldest first; True
        once none is left."""
        self._write_gathered()
        while self._waiting:
            _operation, write, _items = self._waiting[0]
            try:
                write()
            except StoreWriteError:
                return False
            self._waiting.popleft()
        return True


@dataclass(frozen=True, slots=True)
class _Answer:
    """One send's result with what its handler needs."""

    batch: Batch
    result: SendResult
    state: TargetState
    resolved: ResolvedTarget
    now: float
    fence: LeaseFence | None
    """The lease the rows were claimed under (several instances): outcomes other than a
    confirmation change them only while that claim still holds them."""
    send_id: str | None
    """The send id the rows were claimed under (``None``: unknown to the caller)."""

    @property
    def ids(self) -> list[int]:
        return [row.id for row in self.batch.rows]


class Outcomes:
    """Settles each send's result (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        policy: DeliveryPolicy,
        pacer: ChannelPacer,
        dead: DeadTargetsLike,
        journal: OutcomeJournal,
        *,
        clock: Clock | None = None,
        instance: str | None = None,
    ) -> None:
        self._clock = clock or SystemClock()
        self._instance = instance
        """This instance's id on a shared database (``None`` alone): the ``sent_by`` of the
        send times its own clock stamped."""
        self._store = store
        self._metrics = metrics
        self.policy = policy
        self._pacer = pacer
        self._dead = dead
        self._journal = journal
        self._channels: dict[str, str] = {}
        self._delivered: dict[str, Any] = {}
        """``wc_notifications_delivered_total``'s child per notification type, looked up once
        (``labels()`` per delivered row: sorted names, a tuple and a lock, each time)."""
        self._unbatch: set[int] = set()
        self._invalid: deque[float] = deque()
        self._resends_counted: dict[int, int] = {}
        """Per outbox row re-sent after an unknown outcome, its ``uncertain`` count when that
        re-send was counted: a 429 or a 5xx answer to the re-send posted nothing, so the next
        one is the same risk, not a new one (forgotten at a restart, which counts again)."""
        self.pause_until = 0.0
        """Unix time until which every delivery waits (a global 429 or the invalid budget)."""

    @property
    def invalid_answers(self) -> int:
        """401/403/429 answers within the last 10 minutes."""
        return len(self._invalid)

    def unbatched(self, rows: Iterable[OutboxRow]) -> bool:
        """True when one of ``rows`` was in a batch Discord refused (send them one by one)."""
        return bool(self._unbatch & {row.id for row in rows})

    def channel_of(self, target_key: str) -> str:
        """The channel a target posts into (learned from Discord's answers for webhooks)."""
        return self._channels.get(target_key, target_key)

    def protected(self, rows: Iterable[OutboxRow], bot: bool) -> bool:
        """A re-send of these rows cannot post twice: a bot nonce Discord still remembers.

        Only a first send this instance stamped is judged (``sending_at`` is the stamping
        instance's wall clock): a message another instance sent first (this one took its map
        over) has a nonce of unknown age here, so it is not counted as protected."""
        rows = list(rows)
        if any(row.send_id and row.sending_at and row.sent_by != self._instance for row in rows):
            return False
        now = self._clock.wall()
        first_sent = min((row.sending_at or now for row in rows), default=now)
        return bot and now - first_sent <= self.policy.nonce_window

    def count_resend(self, batch: Batch, bot: bool, state: TargetState) -> bool:
        """Count notifications sent again after an unknown outcome (protected by nonce or not),
        once per unknown outcome: a re-send answered 429 or 5xx posted nothing, and the re-send
        after it is not counted again. True when there were any uncertain rows, counted now or
        before (the re-send then waits longer for its answer)."""
        uncertain = [row for row in batch.rows if row.uncertain]
        if not uncertain:
            return False
        fresh = [row for row in uncertain if self._resends_counted.get(row.id) != row.uncertain]
        if not fresh:
            return True
        for row in fresh:
            self._resends_counted[row.id] = row.uncertain
        uncertain = fresh
        protected = self.protected(uncertain, bot)
        kind = "bot_channel" if bot else "webhook"
        resend = "nonce" if protected else "unprotected"
        self._metrics.delivery_uncertain.labels(target_kind=kind, resend=resend).inc(len(uncertain))
        state.uncertain += len(uncertain)
        state.last_uncertain_at = self._clock.wall()
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

    def settle(
        self,
        batch: Batch,
        result: SendResult,
        state: TargetState,
        resolved: ResolvedTarget,
        fence: LeaseFence | None = None,
        send_id: str | None = None,
    ) -> bool:
        """Record what Discord's answer means; True when the target may send its next batch.

        ``fence``: the lease the rows were claimed under. An outcome the store refuses is
        written later; if the map went to another instance meanwhile, that one has recovered the
        rows (and maybe sent them): the late write then leaves them alone. A confirmation is
        always written."""
        answer = _Answer(batch, result, state, resolved, self._clock.wall(), fence, send_id)
        if result.outcome not in _NOTHING_POSTED:
            # Settled, or a new unknown outcome (its re-send a new risk): counted afresh.
            for row in batch.rows:
                self._resends_counted.pop(row.id, None)
        if result.outcome is Outcome.SENT:
            return self._sent(answer)
        state.last_error = f"{result.status or ''} {result.detail}".strip()
        if result.status in (401, 403, 429):
            self.count_invalid(answer.now)
        self._metrics.delivery_failures.labels(reason=result.outcome.value).inc()
        self._log_failure(batch, result)
        if result.outcome is Outcome.DEAD_TARGET:
            return self._dead_target(answer)
        if result.outcome is Outcome.REJECTED:
            return self._rejected(answer)
        # Transient from here on: it waits and goes again, until the maximum age.
        oldest = min(_aged_from(row) or answer.now for row in batch.rows)
        if answer.now - oldest > self.policy.max_age:
            self._expire(answer)
            return True
        handler = {
            Outcome.RATE_LIMITED: self._rate_limited,
            Outcome.UNCERTAIN: self._uncertain,
        }.get(result.outcome, self._retry)
        return handler(answer)

    def _expire(self, answer: _Answer) -> None:
        """Give up on a batch past its maximum age after a transient answer.

        Not "undelivered" where Discord may have posted it: this send had no known outcome,
        or an earlier one of the row did (``uncertain``) and this answer, a 429 or a 5xx that
        posted nothing now, says nothing of that one. A failed row goes again at an
        operator's ``outbox retry``, so those are kept as probably delivered instead."""
        state, hours = answer.state, self.policy.max_age / 3600
        if answer.result.outcome is Outcome.UNCERTAIN:
            unanswered = list(answer.batch.rows)
        else:
            unanswered = [row for row in answer.batch.rows if row.uncertain]
        if unanswered:
            ids = [row.id for row in unanswered]
            which = "last" if answer.result.outcome is Outcome.UNCERTAIN else "an earlier"
            error = f"expired after {hours:g} h, {which} send unanswered; probably delivered"
            self._journal.record(
                "mark uncertain",
                functools.partial(
                    self._store.mark_unconfirmed,
                    ids,
                    error=f"{error} ({state.last_error})",
                    fence=answer.fence,
                ),
            )
            log.error(
                "notification past its maximum age not sent again: a send of it had no known"
                " outcome",
                extra={
                    "ctx": {"target": unanswered[0].target_key, "outbox_ids": ids, "send": which}
                },
            )
        rest = [row for row in answer.batch.rows if row not in unanswered]
        if rest:
            batch = dataclasses.replace(answer.batch, rows=tuple(rest))
            self._fail(
                dataclasses.replace(answer, batch=batch),
                f"expired: undelivered after {hours:g} h ({state.last_error})",
            )

    def _release(
        self, answer: _Answer, delay: float, rows: list[OutboxRow] | None = None, **how: bool
    ) -> None:
        """Put the batch's rows (or ``rows`` of it) back to pending, due in ``delay`` s."""
        self._journal.record(
            "release",
            functools.partial(
                self._store.release,
                answer.ids if rows is None else [row.id for row in rows],
                error=answer.state.last_error,
                next_attempt_at=answer.now + delay,
                fence=answer.fence,
                **how,
            ),
        )

    def _sent(self, answer: _Answer) -> bool:
        """Discord confirmed the message: the rows are done; the channel's budget is spent."""
        batch, result, state, now = answer.batch, answer.result, answer.state, answer.now
        first = batch.rows[0]
        self._journal.record_soon(
            "mark sent",
            SentMessage(answer.ids, now, result.message_id, answer.send_id, answer.fence),
            self._store.mark_sent_all,
        )
        debug = log.isEnabledFor(logging.DEBUG)
        for row in batch.rows:
            counter = self._delivered.get(row.type)
            if counter is None:
                counter = self._metrics.notifications_delivered.labels(type=row.type)
                if len(self._delivered) < 64:  # the types are a handful; never unbounded
                    self._delivered[row.type] = counter
            counter.inc()
            if row.created_at:
                self._metrics.delivery_seconds.observe(max(0.0, now - row.created_at))
            if debug:
                log.debug("notification delivered", extra={"ctx": row_ctx(row)})
        state.sent += len(batch.rows)
        state.messages += 1
        state.last_error = None  # the trouble is over: the console no longer shows it as now
        state.sent_times.append(now)
        del state.sent_times[:-120]
        if state.failing:
            # The sink answers again: what waits out a backoff goes now, at the target's pace,
            # instead of sleeping out delays scheduled while it was down.
            state.failing = False
            self._journal.record(
                "resume target",
                functools.partial(self._store.resume_target, first.target_key, now=now),
            )
            log.info(
                "target answers again; its waiting notifications go now",
                extra={"ctx": {"target": first.target_key, "tenant": first.tenant_id}},
            )
        if result.channel_id:
            self._channels[first.target_key] = f"channel:{result.channel_id}"
        self._pacer.record(self.channel_of(first.target_key), now)
        if result.bucket_remaining == 0 and result.bucket_reset_after:
            state.paused_until = now + result.bucket_reset_after
        return True

    def _dead_target(self, answer: _Answer) -> bool:
        """401/403/404: the target is held, its rows wait for a fix."""
        batch, result, state = answer.batch, answer.result, answer.state
        first = batch.rows[0]
        self._dead.hold(first, state.last_error or "refused", answer.resolved)
        self._release(answer, 0.0, keep_send_id=True)
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

    def _rejected(self, answer: _Answer) -> bool:
        """400: a batch is split to find the message Discord refuses; that one fails."""
        if len(answer.batch.rows) > 1:
            self._unbatch.update(answer.ids)
            self._release(answer, 0.0, attempt=False)
            return False
        self._fail(answer, f"Discord refused it: {answer.state.last_error}")
        return True

    def _rate_limited(self, answer: _Answer) -> bool:
        """429: the target (or everything, when global) waits; not the message's attempt."""
        result, state = answer.result, answer.state
        state.rate_limited += 1
        state.paused_until = answer.now + result.retry_after
        if result.global_limit:
            self.pause_all(answer.now + result.retry_after, "Discord global rate limit")
        self._release(answer, result.retry_after, attempt=False, keep_send_id=True)
        return False

    def _uncertain(self, answer: _Answer) -> bool:
        """No answer after sending: the same message again, only where it cannot post twice."""
        batch = answer.batch
        bot = answer.resolved.target.kind is TargetKind.BOT_CHANNEL
        # Judged per notification: a message may carry one whose earlier send had no known
        # outcome beside ones sent for the first time (the rows of a message Discord refused,
        # split to find the bad one, then packed anew after a restart forgot the split), and
        # those still get their one re-send.
        twice = [] if self.protected(batch.rows, bot) else [r for r in batch.rows if r.uncertain]
        if twice:
            # Already re-sent once without a nonce to protect it: a third post is worse than a
            # probably delivered one. Kept for the operator (outbox list).
            ids = [row.id for row in twice]
            error = f"sent twice without an answer; probably delivered ({answer.state.last_error})"
            self._journal.record(
                "mark uncertain",
                functools.partial(
                    self._store.mark_unconfirmed, ids, error=error, fence=answer.fence
                ),
            )
            log.error(
                "notification not re-sent again: two sends had no known outcome",
                extra={"ctx": {"target": twice[0].target_key, "outbox_ids": ids}},
            )
        once = [row for row in batch.rows if row.id not in {r.id for r in twice}]
        if not once:
            return True
        # A bot message goes again with its nonce; a webhook message waits until the lost
        # request cannot still be on its way.
        delay = self.policy.backoff(once[0].attempts) if bot else self.policy.uncertain_window
        self._release(answer, delay, rows=once, keep_send_id=True, uncertain=True)
        return False

    def _retry(self, answer: _Answer) -> bool:
        """5xx, a refused connection, an open breaker (which sent nothing: not an attempt)."""
        result = answer.result
        answer.state.failing = True
        if result.attempted:
            delay = self.policy.backoff(answer.batch.rows[0].attempts)
            # The target's later messages stay due and bring this one back first (due_outbox
            # keeps a target's order): its next try waits a moment, not the whole backoff.
            answer.state.paused_until = max(
                answer.state.paused_until, answer.now + min(delay, self.policy.retry_pause)
            )
        else:
            # The breaker says when it lets the next probe through (0: a probe is in flight,
            # its verdict unknown): the target waits for that moment, so its next message is
            # the probe, and its other rows wait with it instead of each being claimed and
            # refused in turn.
            delay = (
                max(result.retry_after, _PROBE_SLACK)
                if result.retry_after > 0
                else self.policy.backoff_base
            )
            answer.state.paused_until = max(answer.state.paused_until, answer.now + delay)
        self._release(answer, delay, attempt=result.attempted, keep_send_id=True)
        return False

    def _fail(self, answer: _Answer, error: str) -> None:
        """Give up on a batch for good, keeping the reason on each row."""
        batch, result = answer.batch, answer.result
        self._journal.record(
            "mark failed",
            functools.partial(self._store.mark_failed, answer.ids, error=error, fence=answer.fence),
        )
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
                        **row_ctx(row),
                        "outcome": result.outcome.value,
                        "status": result.status,
                        "detail": result.detail,
                        "attempts": row.attempts + 1,
                    }
                },
            )

    def pause_all(self, until: float, reason: str) -> None:
        """Hold every delivery until ``until``; a long pause is worth a warning with its end."""
        if until <= self.pause_until:
            return
        now = self._clock.wall()
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
        self.pause_until = until

    def count_invalid(self, now: float) -> None:
        """Track answers Discord counts toward its IP ban; pause everything near the budget."""
        self._invalid.append(now)
        while self._invalid and now - self._invalid[0] > _INVALID_WINDOW:
            self._invalid.popleft()
        if len(self._invalid) >= _INVALID_BUDGET:
            until = self._invalid[0] + _INVALID_WINDOW
            if until > self.pause_until:
                log.error(
                    "too many 401/403/429 answers from Discord; all delivery paused",
                    extra={"ctx": {"count": len(self._invalid), "window_seconds": _INVALID_WINDOW}},
                )
            self.pause_all(until, "401/403/429 budget")
