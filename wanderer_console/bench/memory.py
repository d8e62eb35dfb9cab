"""Memory: resident set size after a large number of killmails, and its growth over a soak.

``run_memory_bench`` pushes ``count`` killmails (in tracked systems, unique ids) over the fake
killstream's real loopback socket into a real :class:`Runtime`, as pre-encoded frames in chunks
(at most two chunks in flight, so the figure is the engine's memory, not a backlog of frames),
and reads the process's RSS before the engine starts, once it is ready and after the last kill is
stored. Kill notifications are switched off, as in the ingest benchmark, so the outbox does not
grow; the SQLite file grows on disk, its page cache counts in the RSS. A time limit bounds the
run: when it is reached the result says how many kills were pushed and ``complete`` is false.

``run_soak`` runs the whole path (kills delivered to the fake Discord, whose limits are lifted) at
a steady rate for some minutes and samples the RSS; the growth and its slope per hour are the
figures. The fake Discord's record of received messages is cleared at every sample, so the
simulator's own bookkeeping stays out of the figure.

The simulator runs in the same process, so its memory is part of every reading; the baseline is
read before the simulator starts and the growth figures are differences.

Run: ``python -m wanderer_console.bench.memory [--quick] [--count N] [--soak MINUTES]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

from wanderer_console.bench.harness import console_over_simulator, numbered_frames
from wanderer_console.config.model import Settings
from wanderer_console.sim.simulator import Simulator

__all__ = ["main", "rss_mb", "run_memory_bench", "run_soak"]

_FIRST_ID = 900_000_000
"""Killmail ids used by this benchmark (above anything the generator hands out)."""


def rss_mb(pid: int | None = None) -> float:
    """Resident set size of ``pid`` (default: this process) in MiB, from ``/proc``.

    Falls back to the peak RSS from ``getrusage`` where ``/proc`` is missing (not Linux).
    """
    path = Path(f"/proc/{pid or 'self'}/status")
    try:
        for line in path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _settled_rss() -> float:
    gc.collect()
    return rss_mb()


def _templates(sim: Simulator, count: int) -> list[dict[str, Any]]:
    tracked = sorted(sim.tracked_system_ids)
    return [
        sim.generator.make_killmail(
            system_id=tracked[i % len(tracked)], exclude_character_ids=sim.tracked_character_ids
        )
        for i in range(count)
    ]


async def run_memory_bench(
    count: int = 1_000_000, *, time_limit: float = 300.0, chunk: int = 5_000, seed: int = 11
) -> dict[str, Any]:
    """Push ``count`` kills through the real pipeline and report the RSS before and after."""
    baseline = _settled_rss()
    peak = baseline
    started = time.perf_counter()

    def kills_off(settings: Settings) -> None:
        settings.notifications.kill = False  # the rules run; no delivery is queued

    async with console_over_simulator(
        seed=seed, configure=kills_off, prefix="wc-bench-mem-"
    ) as rig:
        sim, runtime = rig.sim, rig.runtime
        templates = _templates(sim, min(count, 500))
        ready = _settled_rss()
        store = runtime.store
        first = store.event_count()
        written = store.events_written  # polled below: a COUNT(*) over a million rows is slow
        pushed = 0
        push_started = time.perf_counter()
        deadline = push_started + time_limit
        while pushed < count and time.perf_counter() < deadline:
            size = min(chunk, count - pushed)
            frames = numbered_frames(templates, _FIRST_ID + pushed, size)
            await sim.killstream.broadcast_raw(frames)
            pushed += size
            del frames
            # Keep at most two chunks in flight: measure the engine, not a backlog.
            while store.events_written - written < pushed - 2 * chunk:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.005)
            peak = max(peak, rss_mb())
        while store.events_written - written < pushed:
            if time.perf_counter() > deadline + 30:
                break
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - push_started
        stored = store.event_count() - first
        after = _settled_rss()
        peak = max(peak, after)
    growth = after - ready
    return {
        "scenario": "memory",
        "killmails_target": count,
        "killmails": pushed,
        "stored": stored,
        "complete": stored >= count,
        "time_limit_s": time_limit,
        "seconds": round(elapsed, 3),
        "killmails_per_second": round(stored / elapsed, 1) if elapsed else 0.0,
        "rss_baseline_mb": round(baseline, 1),
        "rss_ready_mb": round(ready, 1),
        "rss_after_mb": round(after, 1),
        "rss_peak_mb": round(peak, 1),
        "rss_growth_mb": round(growth, 1),
        "bytes_per_killmail": round(growth * 1024 * 1024 / stored, 1) if stored else None,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }


def _slope_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, mb)`` samples, in MiB per hour."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mean_t = sum(t for t, _ in samples) / n
    mean_m = sum(m for _, m in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    if not var:
        return 0.0
    cov = sum((t - mean_t) * (m - mean_m) for t, m in samples)
    return cov / var * 3600.0


async def run_soak(
    minutes: float, *, rate: float = 100.0, sample_every: float = 10.0, seed: int = 13
) -> dict[str, Any]:
    """Run kills end to end at ``rate`` per second for ``minutes``; sample the RSS."""
    seconds = minutes * 60.0
    sample_every = min(sample_every, max(seconds / 4, 0.25))
    samples: list[tuple[float, float]] = []
    async with console_over_simulator(
        seed=seed, unlimited_discord=True, prefix="wc-bench-soak-"
    ) as rig:
        sim, runtime = rig.sim, rig.runtime
        templates = _templates(sim, 500)
        pushed = 0
        delivered = 0
        start = time.perf_counter()
        next_sample = start
        while True:
            now = time.perf_counter()
            if now >= next_sample:
                delivered += len(sim.discord.received)
                sim.discord.received.clear()
                samples.append((now - start, _settled_rss()))
                next_sample += sample_every
            if now - start >= seconds:
                break
            due = int((now - start) * rate) - pushed
            if due > 0:
                frames = numbered_frames(templates, _FIRST_ID + pushed, due)
                await sim.killstream.broadcast_raw(frames)
                pushed += due
            await asyncio.sleep(0.01)
        await runtime.drain(timeout=10.0)
        delivered += len(sim.discord.received)
        backlog = sum(runtime.store.outbox_depth().values())
    first, last = samples[0][1], samples[-1][1]
    return {
        "scenario": "soak",
        "minutes": minutes,
        "events_per_second": rate,
        "killmails": pushed,
        "messages_delivered": delivered,
        "outbox_backlog": backlog,
        "samples": len(samples),
        "rss_start_mb": round(first, 1),
        "rss_end_mb": round(last, 1),
        "rss_max_mb": round(max(m for _, m in samples), 1),
        "rss_growth_mb": round(last - first, 1),
        "growth_mb_per_hour": round(_slope_per_hour(samples), 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result (and write it with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.memory")
    parser.add_argument("--quick", action="store_true", help="100,000 kills instead of 1,000,000")
    parser.add_argument("--count", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=300.0, metavar="SECONDS")
    parser.add_argument("--soak", type=float, default=None, metavar="MINUTES")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    if args.soak:
        result = asyncio.run(run_soak(args.soak))
    else:
        count = args.count or (100_000 if args.quick else 1_000_000)
        result = asyncio.run(run_memory_bench(count, time_limit=args.time_limit))
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
