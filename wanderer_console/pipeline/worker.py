"""The pipeline's loop: take what the sources queued, decide it, write it in one transaction.

Under load one transaction serves hundreds of events; when idle a batch is a single event. A
batch the store refuses (disk full, read-only) is kept by the engine and written again once the
store writes: the queue fills meanwhile and pauses the sources, so nothing read is lost.

The killstream watermark (the next run's resume point) is saved here, at the queue's
checkpoints: once every item queued before it has been decided and written, busy or idle; so
is the resume point of a map stream that connected with no cursor (:meth:`connected`), and the
point until which a map stream was heard caught up (:meth:`heard`).
"""

from __future__ import annotations

import asyncio
import contextlib

from wanderer_console.domain.checkpoints import PendingMarks
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.map_sse import heard_stream
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import BoundedPriorityQueue
from wanderer_console.pipeline.startup import ulid_at
from wanderer_console.store.sqlite import StoreWriteError

__all__ = ["PipelineWorker"]

_WATERMARKS_MAX = 1_000
"""Watermarks waiting for their checkpoint (one every few seconds); past this the oldest are
forgotten, so the saved one is a little older than it could be, never ahead of a kill."""

_POINTS_MAX = 16
"""One map stream's connected (or heard) points waiting for their checkpoint (one per connect
without a cursor, one every few minutes heard); past this the oldest are forgotten (the newest
is the one saved)."""


class PipelineWorker:
    """Drains ``queue`` into ``engine`` until cancelled."""

    def __init__(
        self, queue: BoundedPriorityQueue[Item], engine: Engine, *, batch: int = 256
    ) -> None:
        self._queue = queue
        self._engine = engine
        self.batch = batch
        """Most events committed in one transaction."""
        self._watermarks: PendingMarks[float] = PendingMarks(_WATERMARKS_MAX)
        """Watermarks offered and not yet saved, each with its queue mark."""
        self._points: dict[str, PendingMarks[str]] = {}
        """Map streams' resume points offered and not yet saved, by stream."""

    async def run(self) -> None:
        """Work the queue forever (a supervised task)."""
        queue = self._queue
        while True:
            batch = [await queue.get()]
            batch += queue.take_nowait(self.batch - 1)
            try:
                await self._engine.process_batch(batch)
            except StoreWriteError:
                await self._retry_writes()
            finally:
                queue.task_done(len(batch))
            if self._watermarks:
                self._save_watermark()
            if self._points:
                self._save_points()

    def stream_seen(self, at: float) -> None:
        """Move the killstream watermark to ``at`` once every item queued so far is written.

        Kills queued (or being decided) are not stored yet, so ``at`` waits for the queue's
        checkpoint taken now, not for an empty queue: under steady load the queue is never
        empty, and a watermark saved only then would not move for hours (a crash would replay
        them, or lose kills older than the source keeps). A store that cannot write keeps the
        older watermark: the next backfill reaches further back, nothing is skipped.

        While a source waits for room in a full queue, the item it holds is in no checkpoint
        yet: ``at`` is dropped (the next offer, a few seconds later, is taken instead).
        """
        if self._queue.paused_sources():
            self._save_watermark()
            return
        self._watermarks.offer(at, self._queue.mark())
        self._save_watermark()

    def connected(self, tenant: str, connected_id: str) -> None:
        """A map stream connected with no cursor (none stored, no backfill asked): keep the
        point of its ``connected`` frame (:meth:`Engine.connected_point`) as its cursor, so a
        restart resumes from there instead of from "now" while the map sends no event.

        Saved once every item queued so far is written, as the watermark is: an event of the
        map's previous stream still waiting in the queue is older than the point, and a crash
        before it is written must not resume past it. The store keeps the greatest cursor, so
        a later event's cursor is never moved back by it, nor it by an older event."""
        value = self._engine.connected_point(tenant, connected_id)
        if value is None:
            return
        pending = self._points.setdefault(f"sse:{tenant}", PendingMarks(_POINTS_MAX))
        pending.offer(value, self._queue.mark())
        self._save_points()

    def heard(self, tenant: str, at: float) -> None:
        """A map stream was heard caught up at ``at`` (wall time): keep it beside the stream's
        cursor (:func:`~wanderer_console.ingest.map_sse.heard_stream`, as a ULID of that time)
        for the next start's gap judgment. Never the cursor itself: a resume still starts
        from the last event written.

        Saved once every item queued so far is written, as a connected point is: an event the
        stream read before ``at`` and still waiting in the queue would be lost to a crash, and
        the point must not say it was received."""
        pending = self._points.setdefault(heard_stream(tenant), PendingMarks(_POINTS_MAX))
        pending.offer(ulid_at(at), self._queue.mark())
        self._save_points()

    def _save_points(self) -> None:
        """Save each stream's newest point (connected, heard) whose checkpoint has passed; one
        the store refuses (a full disk) waits for the next batch."""
        for stream, pending in list(self._points.items()):
            done = pending.settled(self._queue.passed)
            if done is not None:
                try:
                    self._engine.set_cursor(stream, done[0])
                except StoreWriteError:
                    pending.keep(done)
                    continue
            if not pending:
                del self._points[stream]

    def _save_watermark(self) -> None:
        """Save the newest watermark whose checkpoint has passed."""
        done = self._watermarks.settled(self._queue.passed)
        if done is not None:
            with contextlib.suppress(StoreWriteError):
                self._engine.mark_stream_seen(done[0])

    async def _retry_writes(self) -> None:
        """Write the kept batch once the store writes again (probing at most every 5 s)."""
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                self._engine.flush_writes()
            except StoreWriteError:
                delay = min(5.0, delay * 2)
                continue
            return
