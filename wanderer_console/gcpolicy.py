"""The garbage collector's policy for a long-running console process.

CPython's full (generation 2) collection walks every tracked object. Once the console has
started, most of those are the modules, the pydantic schemas and the Textual widget tree: they
live as long as the process, yet each full collection walked them again and stopped the event
loop for 100-200 ms (measured under 1,000 kills/s by ``bench/ui_latency.py``), long enough to
delay a key press past the console's 100 ms target. :func:`freeze_startup_objects` moves what
exists after start-up into the collector's permanent generation, the same approach large
Python services take after their start-up; later collections then walk only what came after.
Nothing is leaked: frozen objects still die when their reference count drops to zero, and only
reference cycles among them would wait (``gc.unfreeze`` returns them).

It also raises the youngest generation's threshold from CPython's 700 to
:data:`YOUNG_THRESHOLD`. A kill's objects (the validated model, its attackers, the queue entry)
live until the pipeline's batch is written, a few hundred kills later; with a threshold of 700
a young collection ran every dozen or so kills and walked objects about to die anyway, about
1.6 µs of every kill's 60-odd on the ingest path (``bench/ingest.py``), and promoted them into
older generations to be walked again. With 10,000 most are freed by their reference counts
before any collection sees them; a young collection walks at most that many objects (about a
millisecond).

What start-up leaves is not all that lives long: a hosted console loads its maps, their tracked
pilots and systems and the name cache *after* it starts (at a thousand maps, some 200,000
objects), and every full collection walked them again: 170-260 ms with the event loop stopped,
every 20 to 40 seconds under the scale benchmark's mix (``bench --only scale``), each one a
stall in every notification then in flight. :class:`SurvivorFreezer` freezes the survivors of a
slow collection of the older generations (they have just proven long-lived; a slow middle
collection is a load arriving, 70-90 ms each while a thousand maps load, and its survivors
would be the next full collection's work), so the next collections walk only what came after;
every :data:`REFRESH_SECONDS` it unfreezes, collects everything once and
freezes again, so reference cycles among objects that died after being frozen are reclaimed.

Last, *when* a collection runs. CPython starts one at whichever allocation crosses the youngest
generation's threshold, and a kill notifying a few hundred maps allocates past it: the collection
ran in the middle of the fan-out, and every map still waiting for its message waited for it too
(under the scale benchmark's mix at 1,000 maps, the pipeline's turn for a kill notifying 229
maps took 56.6 ms instead of about 16, the collector's share included, and the mix's p99 was
98-108 ms; ``bench --only scale``). :class:`IdleCollector` moves the young and middle
collections (and the full ones they lead to) to moments when the engine has nothing in hand:
the threshold CPython checks is raised to :data:`BUSY_THRESHOLD`, a backstop that only a long
busy stretch reaches, and every :data:`IDLE_CHECK_SECONDS` the collector runs, as CPython would
have, the generation that is due once the engine is idle (no item in the pipeline, no delivery
under way), or once it has waited :data:`MOST_DEFERRED_SECONDS` (a burst or a long backlog still
has collections, at most one each half second: fewer, larger ones). The choice of generation is
CPython's own, its check of how much of the oldest generation is new included: on CPython 3.11
the collector lowers the threshold back for one allocation, and CPython collects then and there.
The work is about the same (young objects have more time to die by their reference counts); it
only stops landing in a notification's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "BUSY_THRESHOLD",
    "IDLE_CHECK_SECONDS",
    "MOST_DEFERRED_SECONDS",
    "REFRESH_SECONDS",
    "SLOW_FULL_COLLECTION",
    "YOUNG_THRESHOLD",
    "IdleCollector",
    "SurvivorFreezer",
    "freeze_startup_objects",
    "frozen_survivors",
    "raise_young_threshold",
]

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000
"""Allocations (net of frees) between two collections of the youngest generation."""

SLOW_FULL_COLLECTION = 0.02
"""A collection of the middle or oldest generation that held the process this long (seconds)
has its survivors frozen."""

REFRESH_SECONDS = 6 * 3600.0
"""How often every frozen object is walked once more (cycles among the dead reclaimed)."""

BUSY_THRESHOLD = 100_000
"""The youngest generation's threshold while :class:`IdleCollector` runs: CPython collects on
its own only past this (a busy stretch longer than the collector's checks can wait)."""

IDLE_CHECK_SECONDS = 0.025
"""How often :class:`IdleCollector` looks whether a collection is due and the engine idle."""

MOST_DEFERRED_SECONDS = 0.5
"""A due collection waits for an idle moment at most this long."""


_SYNCHRONOUS = sys.version_info < (3, 12)
"""CPython collects in the allocation that crosses the threshold (3.12 defers it to the
interpreter's next check, where a threshold lifted again would cancel it)."""


def raise_young_threshold() -> None:
    """The youngest generation's threshold to :data:`YOUNG_THRESHOLD` at least (0, the
    collector turned off, stays 0)."""
    young, older, oldest = gc.get_threshold()
    if young:
        gc.set_threshold(max(young, YOUNG_THRESHOLD), older, oldest)


def freeze_startup_objects() -> int:
    """Collect once, freeze every surviving object and raise the youngest generation's
    threshold to :data:`YOUNG_THRESHOLD`; returns how many objects were frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    raise_young_threshold()
    frozen = gc.get_freeze_count()
    log.debug(
        "start-up objects frozen for the garbage collector",
        extra={"ctx": {"objects": frozen, "ms": round((time.perf_counter() - started) * 1000)}},
    )
    return frozen


class SurvivorFreezer:
    """Freezes the survivors of every slow collection of the older generations (see the
    module's docstring).

    The collector's callback only measures (it may run in any thread, in the middle of any
    code): the freeze itself is scheduled on ``loop``, between two of its callbacks.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        slow: float = SLOW_FULL_COLLECTION,
        refresh_every: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._loop = loop
        self._slow = slow
        self._refresh_every = refresh_every
        self._clock = clock
        self._started = 0.0
        self._scheduled = False
        self.freezes = 0
        """Slow collections whose survivors were frozen."""
        self.slowest = 0.0
        """The slowest collection of the older generations seen, in seconds."""

    def install(self) -> None:
        """Start watching the older generations' collections (until :meth:`uninstall`)."""
        if self._watch not in gc.callbacks:
            gc.callbacks.append(self._watch)

    def uninstall(self) -> None:
        """Stop watching (safe twice)."""
        if self._watch in gc.callbacks:
            gc.callbacks.remove(self._watch)

    def _watch(self, phase: str, info: dict[str, Any]) -> None:
        if info.get("generation", 0) < 1:
            return
        if phase == "start":
            self._started = self._clock()
            return
        took = self._clock() - self._started
        self.slowest = max(self.slowest, took)
        if took >= self._slow and not self._scheduled and not self._loop.is_closed():
            self._scheduled = True
            self._loop.call_soon_threadsafe(self._freeze, took)

    def _freeze(self, took: float) -> None:
        self._scheduled = False
        gc.freeze()
        self.freezes += 1
        log.debug(
            "a slow collection's survivors frozen",
            # Not gc.get_freeze_count(): it walks every frozen object (60 ms at 1,000 maps).
            extra={"ctx": {"ms": round(took * 1000)}},
        )

    def refresh(self) -> int:
        """Unfreeze, collect everything once, freeze the survivors; returns what was collected."""
        gc.unfreeze()
        collected = gc.collect()
        gc.freeze()
        return collected

    async def run(self) -> None:
        """Refresh every ``refresh_every`` seconds, until cancelled (a supervised task)."""
        self.install()
        try:
            while True:
                await asyncio.sleep(self._refresh_every)
                started = self._clock()
                collected = self.refresh()
                log.debug(
                    "frozen objects walked once more",
                    extra={
                        "ctx": {
                            "collected": collected,
                            "ms": round((self._clock() - started) * 1000),
                        }
                    },
                )
        finally:
            self.uninstall()


class IdleCollector:
    """Runs the collections CPython would run, once the engine is idle (see the module's
    docstring).

    ``busy`` says whether the engine has work in hand (called every ``every`` seconds, so
    cheap). A collection is due past ``young`` allocations (net of frees); CPython's own check
    is lifted to ``backstop`` while :meth:`run` runs. A collector turned off (``gc.disable()``
    or a threshold of 0) stays off. One at a time: each gives back the thresholds it found.
    """

    def __init__(
        self,
        busy: Callable[[], bool],
        *,
        young: int = YOUNG_THRESHOLD,
        every: float = IDLE_CHECK_SECONDS,
        backstop: int = BUSY_THRESHOLD,
        most_deferred: float = MOST_DEFERRED_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._busy = busy
        self._young = young
        self._every = every
        self._backstop = backstop
        self._most_deferred = most_deferred
        self._clock = clock
        self._thresholds: tuple[int, int, int] | None = None
        self._due_since: float | None = None
        self._started: int | None = None
        self.collections = [0, 0, 0]
        """Collections this collector ran, by generation."""
        self.overdue = 0
        """Of those, run while the engine was busy (due for :data:`MOST_DEFERRED_SECONDS`)."""

    def install(self) -> None:
        """Lift CPython's own check to the backstop (until :meth:`uninstall`)."""
        if self._thresholds is None:
            young, middle, oldest = gc.get_threshold()
            self._thresholds = (young, middle, oldest)
            if young:
                gc.set_threshold(max(young, self._backstop), middle, oldest)
            gc.callbacks.append(self._note)

    def uninstall(self) -> None:
        """Give CPython its thresholds back (safe twice)."""
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
            with contextlib.suppress(ValueError):
                gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = info.get("generation", 0)

    def due(self) -> int | None:
        """The oldest generation whose count passed its threshold once the youngest's passed
        ``young``, ``None`` when no collection is due. (CPython may collect a younger one
        instead of the oldest: see :meth:`check`.)"""
        if self._thresholds is None or not gc.isenabled():
            return None
        young, middle, oldest = self._thresholds
        allocated, young_runs, middle_runs = gc.get_count()
        if not young or allocated <= self._young:
            return None
        if middle_runs > oldest:
            return 2
        return 1 if young_runs > middle else 0

    def check(self) -> int | None:
        """Run the collection that is due if the engine is idle (or it has waited its longest);
        returns the generation collected."""
        generation = self.due()
        if generation is None:
            self._due_since = None
            return None
        now = self._clock()
        if self._due_since is None:
            self._due_since = now
        overdue = now - self._due_since >= self._most_deferred
        if not overdue and self._busy():
            return None
        self._due_since = None
        generation = self._collect(generation)
        self.collections[generation] += 1
        self.overdue += overdue
        return generation

    def _collect(self, due: int) -> int:
        """Collect as CPython would now; returns the generation collected."""
        if _SYNCHRONOUS and self._thresholds is not None:
            _young, middle, oldest = self._thresholds
            lifted = gc.get_threshold()[0]
            self._started = None
            gc.set_threshold(self._young, middle, oldest)
            try:
                # One tracked allocation past the threshold: CPython collects in it, choosing
                # the generation itself (a list would come from its free list, untracked).
                _ = types.SimpleNamespace()
            finally:
                gc.set_threshold(lifted, middle, oldest)
            if self._started is not None:
                return self._started
        # Elsewhere (3.12 and later), or if CPython did not collect: the generation due, the
        # oldest one's check of how much is new left out (the freezer keeps it small).
        gc.collect(due)
        return due

    async def run(self) -> None:
        """Check every ``every`` seconds until cancelled; the thresholds are given back on the
        way out (also if ``busy`` fails: logged, and CPython collects as it would alone)."""
        self.install()
        try:
            while True:
                await asyncio.sleep(self._every)
                self.check()
        except Exception:
            # CPython's own cadence is back (below): collections never stop, they only land
            # where they did before.
            log.exception("the idle collector stopped; collections run when CPython starts them")
        finally:
            self.uninstall()


@contextlib.contextmanager
def frozen_survivors(loop: asyncio.AbstractEventLoop) -> Iterator[SurvivorFreezer]:
    """The engine's policy for a process that is not the engine (a benchmark's fake services,
    whose own pauses would count as the engine's latency): what exists now is frozen, then the
    survivors of every slow collection of the older generations; all undone on exit."""
    thresholds = gc.get_threshold()
    freeze_startup_objects()
    freezer = SurvivorFreezer(loop)
    freezer.install()
    try:
        yield freezer
    finally:
        freezer.uninstall()
        gc.unfreeze()
        gc.set_threshold(*thresholds)
