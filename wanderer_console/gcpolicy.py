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
"""

from __future__ import annotations

import gc
import logging
import time

__all__ = ["YOUNG_THRESHOLD", "freeze_startup_objects"]

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 10_000
"""Allocations (net of frees) between two collections of the youngest generation."""


def freeze_startup_objects() -> int:
    """Collect once, freeze every surviving object and raise the youngest generation's
    threshold to :data:`YOUNG_THRESHOLD`; returns how many objects were frozen."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    young, older, oldest = gc.get_threshold()
    gc.set_threshold(max(young, YOUNG_THRESHOLD), older, oldest)
    frozen = gc.get_freeze_count()
    log.debug(
        "start-up objects frozen for the garbage collector",
        extra={"ctx": {"objects": frozen, "ms": round((time.perf_counter() - started) * 1000)}},
    )
    return frozen
