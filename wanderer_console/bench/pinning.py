"""The benchmark's own services on one CPU, the process under test on another.

On a machine of two CPUs, a bench whose fake services (the map fleet, the killstream, the
Discord sink) and the engine under test float over both CPUs measures the scheduler as much as
the engine: a post over loopback wakes the fake Discord's thread, Linux tends to run the woken
thread where its waker runs, and the engine waits its turn on its own CPU. In the 1,000-map
scale run the engine's thread was runnable but not running for 8.4 ms of the 40 ms of its
largest fan-out (``/proc/<pid>/task/<tid>/schedstat``), where a deployment's Discord is on
another machine. Pinned, that wait was nil. The peer comparison has pinned the same way since
it was written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Pinning", "choose_pinning"]


@dataclass(frozen=True)
class Pinning:
    """Which CPU this process (the bench's own services) and the process under test (the
    "router") run on; ``why_not`` when nothing is pinned."""

    bench_cpu: int | None = None
    router_cpu: int | None = None
    taskset: str | None = None
    why_not: str = ""

    def prefix(self) -> list[str]:
        """The argv prefix that pins a router (empty when not pinned)."""
        if self.taskset is None or self.router_cpu is None:
            return []
        return [self.taskset, "-c", str(self.router_cpu)]

    @contextlib.contextmanager
    def bench(self) -> Iterator[None]:
        """Pin this process's thread to its CPU for the block."""
        if self.bench_cpu is None:
            yield
            return
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.bench_cpu})
        try:
            yield
        finally:
            os.sched_setaffinity(0, before)

    def describe(self) -> dict[str, Any]:
        """For a result's JSON."""
        return {
            "bench_cpu": self.bench_cpu,
            "engine_cpu": self.router_cpu,
            "why_not": self.why_not or None,
        }


def choose_pinning(cpus: Sequence[int] | None = None, taskset: str | None = None) -> Pinning:
    """The bench on the first usable CPU, the router on the last (with ``taskset`` and two
    CPUs or more), else nothing pinned and why."""
    usable = sorted(os.sched_getaffinity(0) if cpus is None else cpus)
    tool = taskset if taskset is not None else shutil.which("taskset")
    if not tool:
        return Pinning(why_not="taskset is not on the PATH")
    if len(usable) < 2:
        return Pinning(why_not=f"{len(usable)} usable CPU")
    return Pinning(usable[0], usable[-1], tool)
