"""Fan-out cost: one kill notifying many maps, and the time between two of its deliveries.

A kill in a popular system notifies every map that watches it, one webhook request per map, sent
one after another by the engine's one event loop: the engine's CPU per delivery sets how long the
last map waits (the tail of ``bench --only scale``'s mix latency). This scenario isolates it: over
a fleet of fake maps (:class:`~wanderer_console.sim.fleet.MapFleet`, as the scale scenario) and a
real engine process, it pushes kills one at a time into the most-watched systems, each once the
last one's notifications have all arrived, and reports per kill the fan-out and the time from the
push to its first and its last delivery; over all kills, the median time between two deliveries
(``(last - first) / (fan-out - 1)``) and the median engine CPU per delivery (``/proc``, all work
of the kill included). Nothing lost or doubled, or the run fails. The engine and this process
run on CPUs of their own where two are usable, as in the scale scenario (``--no-pin``: not).

Linux only (``/proc``). Run: ``python -m wanderer_console.bench.fanout [--maps 300] [--kills 10]``
(about a minute at 300 maps). Compare two trees back to back, in the same conditions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wanderer_console.bench.pinning import Pinning, choose_pinning
from wanderer_console.bench.scale import (
    QUICK,
    delivered_within,
    engine_process,
    fleet_running,
    start_phase,
)
from wanderer_console.sim.fleet import MapFleet

__all__ = ["main", "run_fanout", "summarize"]

_ESI_LIFTED = {"esi": {"rate_per_second": 500.0, "burst": 500.0}}
"""Start-up warming at full speed: the scenario measures deliveries, not the start."""


def summarize(kills: list[dict[str, Any]]) -> dict[str, Any]:
    """The figures over ``kills`` (each: ``fan_out``, ``first_ms``, ``last_ms``,
    ``cpu_ms``)."""
    gaps = [(k["last_ms"] - k["first_ms"]) / (k["fan_out"] - 1) for k in kills if k["fan_out"] > 1]
    per_delivery = [k["cpu_ms"] / k["fan_out"] for k in kills if k["fan_out"]]
    return {
        "kills": len(kills),
        "fan_out_median": statistics.median(k["fan_out"] for k in kills) if kills else 0,
        "first_ms_median": round(statistics.median(k["first_ms"] for k in kills), 2)
        if kills
        else None,
        "ms_between_deliveries": round(statistics.median(gaps), 3) if gaps else None,
        "engine_cpu_ms_per_delivery": round(statistics.median(per_delivery), 3)
        if per_delivery
        else None,
    }


async def run_fanout(
    maps: int = 300,
    kills: int = 10,
    *,
    seed: int = 17,
    progress: Callable[[str], None] | None = None,
    full_discord: bool = False,
    pin: bool = True,
) -> dict[str, Any]:
    """Start the engine over ``maps`` fake maps, then push ``kills`` kills into the five
    most-watched systems in turn (see the module docstring)."""
    say = progress or (lambda _text: None)
    fleet = MapFleet(maps, seed=seed, full_discord=full_discord)
    per_kill: list[dict[str, Any]] = []
    problems: list[str] = []
    pinning = choose_pinning() if pin else Pinning(why_not="--no-pin")
    with pinning.bench():
        async with (
            fleet_running(fleet, http=_ESI_LIFTED, prefix="wc-bench-fanout-") as run,
            engine_process(run.config, run.data, run.log, pinning=pinning) as engine,
        ):
            start = await start_phase(fleet, engine, QUICK)
            say(f"bench: fanout: {maps} maps streaming after {start['streaming_s']} s")
            await asyncio.sleep(2.0)
            systems = fleet.most_watched(5)
            for index in range(kills):
                fleet.reset_outcome()
                cpu = engine.cpu()
                fan_out = await fleet.push_kill_in(systems[index % len(systems)])
                await delivered_within(fleet, engine, 30.0)
                cpu = engine.cpu() - cpu
                outcome = fleet.outcome()
                if outcome.lost or outcome.doubled or outcome.invalid:
                    problems.append(
                        f"kill {index}: {outcome.lost} lost, {outcome.doubled} doubled,"
                        f" {outcome.invalid} invalid"
                    )
                values = sorted(outcome.latencies_ms)
                if not values:
                    continue
                per_kill.append(
                    {
                        "fan_out": fan_out,
                        "first_ms": round(values[0], 2),
                        "last_ms": round(values[-1], 2),
                        "cpu_ms": round(cpu * 1000, 1),
                    }
                )
                say(f"bench: fanout: kill {index + 1}/{kills}: {per_kill[-1]}")
                await asyncio.sleep(0.5)
    return {
        "scenario": "fanout",
        "maps": maps,
        "pinning": pinning.describe(),
        "discord": "full fake" if full_discord else "sink",
        "per_kill": per_kill,
        **summarize(per_kill),
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result; exit 1 on a lost or doubled notification."""
    parser = argparse.ArgumentParser(
        prog="python -m wanderer_console.bench.fanout",
        description="The engine's time between two deliveries of one kill notifying many maps.",
    )
    parser.add_argument("--maps", type=int, default=300, help="fake maps (default 300)")
    parser.add_argument("--kills", type=int, default=10, help="kills pushed (default 10)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result here")
    parser.add_argument(
        "--full-discord",
        action="store_true",
        help="post to the full fake Discord instead of the webhook sink (see the scale scenario)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="no CPU of its own for the engine and this process"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(
        run_fanout(
            args.maps,
            args.kills,
            progress=lambda t: print(t, file=sys.stderr),
            full_discord=args.full_discord,
            pin=not args.no_pin,
        )
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
