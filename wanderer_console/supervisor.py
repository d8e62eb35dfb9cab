"""The runtime's background tasks: started by name, restarted after a crash, stopped together.

Every long-running part of the console (sources, pipeline, dispatcher, maintenance) runs as a
supervised task: an exception is logged and counted (``wc_errors_total{component=<task>}``) and
the task starts again after a backoff (1 s doubling to 60 s; reset once a run lasted a minute).
A task that fails while the supervisor is stopping is not restarted: it would run against
clients and a store being closed. The clock and the backoff are injected (tests pass a
:class:`~wanderer_console.domain.clock.FrozenClock` and never wait out a backoff).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.ingest.backoff import Backoff
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["TaskSupervisor"]

log = logging.getLogger(__name__)

_HEALTHY_RUN = 60.0
"""A run longer than this (seconds) resets the backoff."""


def _restart_backoff() -> Backoff:
    """1 s doubling to 60 s (with jitter)."""
    return Backoff(1.0, 60.0)


class TaskSupervisor:
    """Named, restarted-on-failure tasks; :meth:`stop` cancels them all, bounded in time."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Clock | None = None,
        backoff: Callable[[], Backoff] = _restart_backoff,
    ) -> None:
        self._metrics = metrics
        self._clock = clock or SystemClock()
        self._backoff = backoff
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False

    def __bool__(self) -> bool:
        """True while any task is running (the runtime has started and not stopped)."""
        return bool(self._tasks)

    def spawn(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run ``factory()`` as the task ``name``, restarting it whenever it raises."""
        self._tasks[name] = asyncio.create_task(self._supervise(name, factory), name=name)

    async def _supervise(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        backoff = self._backoff()
        while True:
            started = self._clock.monotonic()
            try:
                await factory()
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self._metrics.errors.labels(component=name).inc()
                if self._stopping:
                    # Failing while being cancelled (an error raised on the way out): stop,
                    # never restart a task against clients and a store being closed.
                    log.exception("task failed while stopping", extra={"ctx": {"task": name}})
                    return
                log.exception("task failed; restarting", extra={"ctx": {"task": name}})
            if self._clock.monotonic() - started > _HEALTHY_RUN:
                backoff.reset()
            await self._clock.sleep(backoff.next_delay())

    async def cancel(self, name: str, timeout: float = 5.0) -> bool:
        """Cancel the task ``name`` (a map whose lease this instance lost) and wait for it, at
        most ``timeout`` seconds; False when no such task runs."""
        task = self._tasks.pop(name, None)
        if task is None:
            return False
        task.cancel()
        await asyncio.wait([task], timeout=timeout)
        return True

    def stopping(self) -> None:
        """From now on a failing task ends instead of restarting (the runtime is stopping)."""
        self._stopping = True

    async def stop(self, timeout: float = 10.0, *, keep: tuple[str, ...] = ()) -> None:
        """Cancel every task (but those named in ``keep``) and wait for them, at most
        ``timeout`` seconds; log what did not end cleanly (an error on the way out, or no end
        in time)."""
        self._stopping = True
        tasks = [task for name, task in self._tasks.items() if name not in keep]
        self._tasks = {name: task for name, task in self._tasks.items() if name in keep}
        for task in tasks:
            task.cancel()
        # Bounded: a task that ignores its cancellation must not hang the shutdown.
        if not tasks:
            return
        done, stuck = await asyncio.wait(tasks, timeout=timeout)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error(
                    "task ended with an error during shutdown",
                    extra={"ctx": {"task": task.get_name(), "error": repr(task.exception())}},
                )
        for task in stuck:
            log.error("task did not stop in time", extra={"ctx": {"task": task.get_name()}})
