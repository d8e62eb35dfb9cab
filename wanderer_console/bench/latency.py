"""End-to-end latency: from the fake killstream sending a kill to the fake Discord receiving it.

Kills in tracked systems are pushed at a fixed rate over the real loopback socket; the fake
Discord (with its rate limits lifted, so the figure is the console's own latency) records when
each notification arrives. Every kill must arrive: a lost one fails the run.

Run: ``python -m wanderer_console.bench.latency [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from wanderer_console.bench.harness import console_over_simulator

__all__ = ["main", "percentile", "run_latency_bench"]


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (0–1) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def _one_rate(rate: float, seconds: float, seed: int) -> dict[str, Any]:
    # Discord's limits are the fake's business here: measure the console's own latency.
    async with console_over_simulator(seed=seed, unlimited_discord=True) as rig:
        sim = rig.sim
        tracked = sorted(sim.tracked_system_ids)
        count = int(rate * seconds)
        kills = [
            sim.generator.make_killmail(
                system_id=tracked[i % len(tracked)],
                exclude_character_ids=sim.tracked_character_ids,
            )
            for i in range(count)
        ]
        sent_at: dict[int, float] = {}
        interval = 1.0 / rate
        start = time.perf_counter()
        for i, km in enumerate(kills):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[km["killmail_id"]] = time.time()
            await sim.killstream.push_kill(km)
        # Below the asked rate when the console's socket pushed back (the fake waits to send,
        # and that wait is not in the latencies): say so next to them.
        sending = time.perf_counter() - start
        for _ in range(3000):  # at most 30 s for the last notification
            if len(sim.discord.embeds) >= count:
                break
            await asyncio.sleep(0.01)
        latencies = []
        for message in sim.discord.received:
            for embed in message.body.get("embeds") or []:
                footer = str((embed.get("footer") or {}).get("text", ""))
                if footer.startswith("Killmail ID: "):
                    kill_id = int(footer.removeprefix("Killmail ID: ").split()[0])
                    if kill_id in sent_at:
                        latencies.append((message.at - sent_at.pop(kill_id)) * 1000)
    return {
        "events_per_second": rate,
        "sent_per_second": round(count / sending, 1) if sending > 0 else None,
        "kills": count,
        "delivered": len(latencies),
        "lost": count - len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "mean_ms": round(statistics.fmean(latencies), 2) if latencies else None,
    }


async def run_latency_bench(
    rates: tuple[float, ...] = (50, 200, 1000), seconds: float = 5.0, seed: int = 9
) -> dict[str, Any]:
    """Latency figures at each rate, run one after the other."""
    results = [await _one_rate(rate, seconds, seed) for rate in rates]
    return {"scenario": "end_to_end_latency", "seconds_per_rate": seconds, "rates": results}


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result (and write it with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.latency")
    parser.add_argument("--quick", action="store_true", help="1 s per rate instead of 5 s")
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    result = asyncio.run(run_latency_bench(seconds=1.0 if args.quick else 5.0))
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if all(r["lost"] == 0 for r in result["rates"]) else 1


if __name__ == "__main__":
    sys.exit(main())
