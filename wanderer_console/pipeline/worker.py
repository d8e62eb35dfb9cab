"""The pipeline's loop: take what the sources queued, decide it, write it in one transaction.

Under load one transaction serves hundreds of events; when idle a batch is a single event. A
batch the store refuses (disk full, read-only) is kept by the engine and written again once the
store writes: the queue fills meanwhile and pauses the sources, so nothing read is lost.
"""

from __future__ import annotations

import asyncio
import contextlib

from wanderer_console.ingest.items import Item
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.queue import BoundedPriorityQueue
from wanderer_console.store.sqlite import StoreWriteError

__all__ = ["PipelineWorker"]


class PipelineWorker:
    """Drains ``queue`` into ``engine`` until cancelled."""

    def __init__(
        self, queue: BoundedPriorityQueue[Item], engine: Engine, *, batch: int = 256
    ) -> None:
        self._queue = queue
        self._engine = engine
        self.batch = batch
        """Most events committed in one transaction."""

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

    def stream_seen(self, at: float) -> None:
        """Move the killstream watermark to ``at`` when nothing read is still unwritten.

        Kills still queued are not stored yet, so the watermark waits until none do (the
        backfill overlap covers the batch being written). A store that cannot write keeps the
        older watermark: the next backfill reaches further back, nothing is skipped.
        """
        if self._queue.empty():
            with contextlib.suppress(StoreWriteError):
                self._engine.mark_stream_seen(at)

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
