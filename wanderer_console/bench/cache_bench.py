"""Enrichment cache benchmark: hit latency and hit ratio on a replay of simulated traffic.

Starts a fake ESI on loopback, replays killmail-shaped lookups whose pilots and systems follow a
zipf-like popularity (a few pilots appear in most kills, like real fleets), and prints one JSON
object: hit ratio over the replay and the latency of the lookups that were hits, both measured
in the same run. ``--quick`` is a few thousand lookups for CI.

    python -m wanderer_console.bench.cache_bench [--quick] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Sequence
from typing import Any

import orjson

from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.http.client import HttpClient
from wanderer_console.sim.esi import FakeEsi
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.server import AppServer

__all__ = ["main", "run"]

_USER_AGENT = "WandererConsole-bench/0.1.0 (bench@localhost; +https://localhost/bench)"


def _zipf_weights(count: int, exponent: float) -> list[float]:
    return [1.0 / (rank**exponent) for rank in range(1, count + 1)]


def _quantile_us(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1e6, 3)


_TRACKED_CHARACTERS = 150
_TRACKED_SYSTEMS = 40
_TRACKED_SHARE = 0.35
"""Share of kills that involve a tracked pilot, and (separately) of kills in a tracked system:
a map's notifications are about its own pilots and systems."""


async def run(*, quick: bool = False, seed: int = 1, warm: bool = True) -> dict[str, Any]:
    """Run the replay and return the result object.

    Critical data (the names a map's notifications need: its tracked pilots, its tracked
    systems, ship types) is measured apart; with ``warm`` it is loaded before the replay, as
    the engine does when a map loads.
    """
    kills = 600 if quick else 15_000
    gen = DataGenerator(seed, systems=200 if quick else 800, characters=400 if quick else 3000)
    rng = random.Random(seed)
    characters = list(gen.characters)
    rng.shuffle(characters)
    systems = list(gen.systems)
    rng.shuffle(systems)
    ship_types = list(gen.ship_types)
    char_weights = _zipf_weights(len(characters), 1.1)
    system_weights = _zipf_weights(len(systems), 1.0)

    fake = FakeEsi(gen)
    server = AppServer(fake.app)
    await server.start()
    http = HttpClient("esi", timeout=10.0)
    esi = EsiClient(http, server.url, _USER_AGENT)
    maxsize = {"name": len(characters) // 4, "system": len(systems) // 4}
    cache = CacheFacade(
        esi, maxsize={**dict.fromkeys(("corporation", "alliance"), 1000), **maxsize}
    )
    tracked_chars = set(rng.sample(characters, min(_TRACKED_CHARACTERS, len(characters))))
    tracked_systems = set(rng.sample(systems, min(_TRACKED_SYSTEMS, len(systems))))
    critical = {"name": tracked_chars, "system": tracked_systems}
    hit_latency: list[float] = []
    miss_latency: list[float] = []
    critical_hits = critical_lookups = 0
    lookups = 0
    started = time.perf_counter()
    try:
        if warm:
            cache.pin("name", tracked_chars)
            cache.pin("system", tracked_systems)
            await cache.warm(sorted(tracked_chars), sorted(tracked_systems), type_ids=ship_types)
        warmed_requests = fake.requests
        ordered_chars, ordered_systems = sorted(tracked_chars), sorted(tracked_systems)
        for _ in range(kills):
            pilots = rng.choices(characters, char_weights, k=rng.randint(2, 6))
            if rng.random() < _TRACKED_SHARE:
                pilots.append(rng.choice(ordered_chars))
            system = (
                rng.choice(ordered_systems)
                if rng.random() < _TRACKED_SHARE
                else rng.choices(systems, system_weights)[0]
            )
            plan: list[tuple[str, int]] = [("system", system)]
            plan.append(("type", rng.choice(ship_types)))
            for pilot in pilots:
                plan.append(("name", pilot))  # the engine shows a pilot's name (bulk names)
                char = gen.characters[pilot]
                plan.append(("corporation", char.corporation_id))
                if char.alliance_id is not None:
                    plan.append(("alliance", char.alliance_id))
            for ns, entity_id in plan:
                cached = cache.peek(ns, entity_id) is not None
                t0 = time.perf_counter()
                if ns == "name":
                    await cache.names([entity_id])
                else:
                    await getattr(cache, f"get_{ns}")(entity_id)
                elapsed = time.perf_counter() - t0
                lookups += 1
                if cached:
                    hit_latency.append(elapsed)
                else:
                    miss_latency.append(elapsed)
                if ns == "type" or entity_id in critical.get(ns, ()):
                    critical_lookups += 1
                    critical_hits += cached
    finally:
        await http.aclose()
        await server.stop()
    stats = cache.stats()
    return {
        "benchmark": "enrich.cache",
        "quick": quick,
        "seed": seed,
        "kills": kills,
        "lookups": lookups,
        "hit_ratio": round(len(hit_latency) / lookups, 4) if lookups else 0.0,
        "critical_hit_ratio": (
            round(critical_hits / critical_lookups, 4) if critical_lookups else 0.0
        ),
        "critical_lookups": critical_lookups,
        "warmed": warm,
        "warm_requests": warmed_requests,
        "hit_latency_us": {
            "median": _quantile_us(hit_latency, 0.5),
            "p99": _quantile_us(hit_latency, 0.99),
        },
        "miss_latency_us": {
            "median": _quantile_us(miss_latency, 0.5),
            "p99": _quantile_us(miss_latency, 0.99),
        },
        "esi_requests": fake.requests,
        "evictions": sum(ns["evictions"] for ns in stats["namespaces"].values()),
        "namespaces": {ns: v["hit_ratio"] for ns, v in stats["namespaces"].items() if v["hits"]},
        "elapsed_s": round(time.perf_counter() - started, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point: print the result as one JSON line."""
    parser = argparse.ArgumentParser(prog="cache_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run for CI")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--no-warm", action="store_true", help="do not load the critical data before the replay"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(run(quick=args.quick, seed=args.seed, warm=not args.no_warm))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
