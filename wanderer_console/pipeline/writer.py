"""The engine's write side: recent event ids, the batch of decided events, one commit per batch.

The engine decides; this module remembers what was decided (a window of recent event ids, so a
repeat is dropped before the rules run again), keeps the decided events of a batch with their
notifications and stream cursors, and writes them in one transaction when the batch ends. The
metrics of what was written (received, duplicates, queued notifications, refusals) are updated
once per label per batch, not once per event: that ran for nearly every kill on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter as TallyCounter
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from wanderer_console.domain.notification import Notification
from wanderer_console.store.base import OutboxRow, PendingWrite, Store, StoredEvent
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.context import current_request_id
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["EventWriter", "OnQueued", "settle"]

log = logging.getLogger(__name__)

EventKey = tuple[str, str]
"""``(tenant_id, event_id)``: an event's identity in the log."""
OnQueued = Callable[[set[str], list[OutboxRow] | None], None]
"""Told after a commit that queued notifications: their target keys, and the rows the store
says nothing else pending goes before (``Store.take_queued``; ``None``: not known)."""


class EventWriter:
    """Dedup window, pending batch and batched commit for the engine."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        *,
        on_queued: OnQueued = lambda _targets, _rows: None,
        window: int = 50_000,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._on_queued = on_queued
        self._window = window
        self._recent: OrderedDict[EventKey, None] = OrderedDict()
        self._unwritten: dict[EventKey, list[asyncio.Future[bool]]] = {}
        """Ingest API events decided and not yet written, each with the callers of its repeats
        (:meth:`duplicate`), who are answered once it is written."""
        self._pending: list[PendingWrite] = []
        self._cursors: dict[str, str] = {}
        """Stream cursors of duplicates, written once the pending events are (see
        :meth:`advance`)."""
        self._batching = False
        self._refusals: TallyCounter[str] = TallyCounter()
        self._refusal_children: dict[str, Any] = {}

    # -- dedup -----------------------------------------------------------------------------------

    def seen(self, key: EventKey) -> bool:
        """True when the event was recorded recently (and keep it recent)."""
        if key in self._recent:
            self._recent.move_to_end(key)
            return True
        return False

    def remember(self, key: EventKey) -> None:
        """Note an event as recorded; the oldest falls out past the window."""
        self._recent[key] = None
        if len(self._recent) > self._window:
            self._recent.popitem(last=False)

    def duplicate(self, key: EventKey, done: asyncio.Future[bool] | None) -> None:
        """Answer the caller of a repeat of ``key``: "duplicate" once the first copy is written.

        A first copy still waiting for its write (in this batch, or kept after a write failed)
        is not stored yet: the repeat's caller shares its outcome, so it is never told
        "duplicate" for an event a failed write or a crash then loses.
        """
        followers = self._unwritten.get(key)
        if followers is not None and done is not None and not done.done():
            followers.append(done)
        else:
            settle(done, False)

    def forget(self, tenant: str) -> None:
        """Forget the recent events of ``tenant`` (the store stays the authority on them)."""
        self._recent = OrderedDict((key, None) for key in self._recent if key[0] != tenant)

    # -- refusals --------------------------------------------------------------------------------

    def refused(self, reason: str) -> None:
        """Count a refused notification (``wc_notifications_filtered{reason}``); inside a batch
        the count is added when the batch is written."""
        self._refusals[reason] += 1
        if not self._batching:
            self._count_refusals()

    def _count_refusals(self) -> None:
        for reason, count in self._refusals.items():
            child = self._refusal_children.get(reason)
            if child is None:
                child = self._refusal_children[reason] = (
                    self._metrics.notifications_filtered.labels(reason=reason)
                )
            child.inc(count)
        self._refusals.clear()

    # -- writes ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Everything recorded inside the block commits together when it ends."""
        self._batching = True
        try:
            yield
        finally:
            self._batching = False
            self.flush()

    def record(
        self,
        event: StoredEvent,
        notifications: list[Notification],
        cursor: tuple[str, str] | None = None,
        done: asyncio.Future[bool] | None = None,
        *,
        checked: bool = False,
    ) -> bool:
        """Queue an event's write (or write it now, outside a batch); False for a duplicate.

        ``checked`` says the caller has just found the event unseen, with no await since. A
        duplicate still advances its stream ``cursor``; ``done`` is settled either way.
        """
        key = (event.tenant_id, event.event_id)
        if not checked and self.seen(key):
            if cursor is not None:
                self.advance(cursor)
            self._metrics.events_duplicate.labels(source=event.source).inc()
            self.duplicate(key, done)
            return False
        self.remember(key)
        if done is not None:
            self._unwritten[key] = []
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "event decided",
                extra={
                    "ctx": {
                        "event_id": event.event_id,
                        "type": event.type,
                        "notifications": [n.dedup_key for n in notifications],
                    }
                },
            )
        self._pending.append(
            PendingWrite(
                event,
                notifications,
                cursor,
                done,
                current_request_id(),
                tracing.current_traceparent(),
            )
        )
        if not self._batching:
            return self.flush()
        return True

    def advance(self, cursor: tuple[str, str]) -> None:
        """Move a stream's resume cursor for a duplicate (an event already recorded): now when
        nothing waits to be written, else right after what waits is. A cursor committed ahead
        of a pending event (the same event brought first by the map's webhook, or the stream's
        earlier events in this batch) would, after a crash, resume the stream past them.

        A cursor the store refuses now (a full disk) is dropped, as in
        :meth:`_advance_cursors`: the stream resumes a little earlier and the event log absorbs
        the repeat; the store reports its own fault. The event is a duplicate, not a failure."""
        if not self._pending:
            with contextlib.suppress(StoreWriteError):
                self._store.set_cursor(*cursor)
            return
        stream, value = cursor
        self._cursors[stream] = max(value, self._cursors.get(stream, value))

    @property
    def pending(self) -> int:
        """Events decided and not yet written (kept across a failed write)."""
        return len(self._pending)

    def flush(self) -> bool:
        """Write the pending events in one transaction; True when the last one was new.

        When the store cannot write, the events stay pending and :class:`StoreWriteError`
        propagates; a later flush writes them.
        """
        self._count_refusals()
        writes, self._pending = self._pending, []
        if not writes:
            self._advance_cursors()
            return False
        spans = tracing.start_spans("outbox.write", [write.trace_parent for write in writes])
        if spans is not None:
            # Each event's rows carry its outbox.write span: delivery continues the trace.
            writes = [
                write._replace(trace_parent=parent)
                for write, parent in zip(writes, spans.traceparents, strict=True)
            ]
            spans.set("db.operation.batch.size", len(writes))
        try:
            inserted = self._store.record_events(writes)
            rows = self._store.take_queued()
        except StoreWriteError as exc:
            # Keep the batch: it is written with the next flush, once the store writes again.
            # Callers waiting on it (ingest API requests) are told now, and their retry is
            # recognised as a duplicate if the kept write lands first.
            self._pending = writes + self._pending
            if spans is not None:
                spans.error(f"store write failed: {exc.cause}")
            for write in writes:
                failed = RuntimeError(f"store write failed: {exc.cause}")
                settle(write.done, failed)
                # Still kept: a later repeat waits on the next attempt.
                for follower in self._unwritten.get(_key(write), ()):
                    settle(follower, failed)
                if _key(write) in self._unwritten:
                    self._unwritten[_key(write)] = []
            raise
        except BaseException as exc:
            for write in writes:
                failed = RuntimeError(f"store write failed: {type(exc).__name__}")
                settle(write.done, failed)
                for follower in self._unwritten.pop(_key(write), ()):
                    settle(follower, failed)
            raise
        finally:
            if spans is not None:
                spans.end()
        self._advance_cursors()
        received: TallyCounter[str] = TallyCounter()
        duplicates: TallyCounter[str] = TallyCounter()
        queued: TallyCounter[str] = TallyCounter()
        targets: set[str] = set()
        for write, new in zip(writes, inserted, strict=True):
            if new:
                received[write.event.source] += 1
                if write.notifications:
                    queued.update(n.type.value for n in write.notifications)
                    targets.update(n.target.key for n in write.notifications)
            else:
                duplicates[write.event.source] += 1
        # Delivery first: the dispatcher may start the sends right here, so they go out on the
        # loop's next turn ahead of the ingest API's answers to the callers settled below.
        try:
            if targets:
                self._on_queued(targets, rows)
        finally:
            for write, new in zip(writes, inserted, strict=True):
                settle(write.done, new)
                for follower in self._unwritten.pop(_key(write), ()):
                    settle(follower, False)
        # One metric update per label per batch, not per event.
        for source, count in received.items():
            self._metrics.events_received.labels(source=source).inc(count)
        for source, count in duplicates.items():
            self._metrics.events_duplicate.labels(source=source).inc(count)
        for kind, count in queued.items():
            self._metrics.notifications_queued.labels(type=kind).inc(count)
        return inserted[-1]

    def _advance_cursors(self) -> None:
        """Write the duplicates' cursors held back by :meth:`advance` (the events before them
        are written). One the store refuses is dropped: the stream then resumes a little
        earlier, and the event log absorbs what it sends again."""
        cursors, self._cursors = self._cursors, {}
        for stream, value in cursors.items():
            with contextlib.suppress(StoreWriteError):
                self._store.set_cursor(stream, value)


def _key(write: PendingWrite) -> EventKey:
    return (write.event.tenant_id, write.event.event_id)


def settle(done: asyncio.Future[bool] | None, outcome: bool | BaseException) -> None:
    """Settle an ingest caller's future once (its event was stored, refused, or failed)."""
    if done is None or done.done():
        return
    if isinstance(outcome, BaseException):
        done.set_exception(outcome)
    else:
        done.set_result(outcome)
