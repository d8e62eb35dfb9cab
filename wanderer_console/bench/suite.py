"""``wanderer-console bench``: every benchmark scenario against the simulator, in one run.

Scenarios (each reuses its module's ``run_*`` function; see those modules for the method):

- ``ingest``: killmails per second through WebSocket → store → rules, and the ratio to the
  ceiling measured in the same run (:mod:`~wanderer_console.bench.ingest`);
- ``latency``: end-to-end p50/p95/p99 from killstream to fake Discord at 50, 200 and 1,000
  events per second (:mod:`~wanderer_console.bench.latency`);
- ``delivery``: share of the Discord-limit ceiling a burst reaches (``--quick`` divides both
  windows by 10; the share is comparable, the per-second figure is not)
  (:mod:`~wanderer_console.bench.delivery`);
- ``cache``: enrichment cache hit latency and hit ratio on a replay
  (:mod:`~wanderer_console.bench.cache_bench`);
- ``memory``: RSS after 1,000,000 killmails through the real pipeline (100,000 with
  ``--quick``), bounded in time (:mod:`~wanderer_console.bench.memory`);
- ``startup``: launch to ready headless (a subprocess) and to the first dashboard frame with the
  UI (:mod:`~wanderer_console.bench.startup`);
- ``attach``: a real ``--no-ui`` engine process at 1,000 kills/s, its CPU share with no console
  and with three consoles attached to its control socket (alternating rounds, medians), and the
  time from ``wanderer-console attach`` starting to its first live frame drawn
  (:mod:`~wanderer_console.bench.attach`);
- ``peer`` (only with ``--only peer``): the console against Prometheus Alertmanager on the same
  job (events over HTTP, one webhook call per event to a sink), both as real processes in
  alternating rounds: latency, CPU per delivery, a burst, a 503 burst, the sink down, memory,
  and the console/Alertmanager ratio of each, judged against issue 24's budget; skipped (and
  why) without ``prometheus-alertmanager`` on the PATH (:mod:`~wanderer_console.bench.peer`);
- ``postgresql`` (only with a PostgreSQL database: ``--database URL``, else
  ``$WANDERER_CONSOLE_TEST_PG``): the ingest and delivery scenarios on SQLite and on PostgreSQL
  side by side in a scratch schema (dropped afterwards), and the PostgreSQL/SQLite ratio of each
  (:mod:`~wanderer_console.bench.pg_store`); and a burst over four maps delivered by one engine
  process, then by two sharing the database (:mod:`~wanderer_console.bench.pg_cluster`);
- ``scale`` (only with ``--only scale``): one engine process serving 1 and 100 maps
  (``--quick``; the full run adds 1,000), each with its own SSE stream, over a fleet of fake
  maps with overlapping tracking: time to every map streaming (cold and warm), RSS, idle and
  loaded CPU, notification latency under kills at 20/s and map events at 5/s and a burst, REST
  and ESI calls per map at start, judged against issue 17's budget
  (:mod:`~wanderer_console.bench.scale`);
- ``tracing``: the pipeline's hot path per kill with tracing off (as shipped) and on at 10 %
  sampling, each next to a baseline without the tracing seam measured in the same rounds, and
  the ratios (:mod:`~wanderer_console.bench.tracing_cost`);
- ``soak`` (only with ``--soak MINUTES``): RSS growth at a steady rate.

The result is one JSON document on stdout (also written to ``--json PATH``): the machine, the
raw result of every scenario, and ``figures``, a flat map of the numbers that matter. With
``--compare OLD.json`` every figure is compared with the same figure in the old document, knowing
which direction is worse (throughput, ratios and hit ratios: lower is worse; latency, memory,
time and CPU shares: higher is worse); a change of more than 10 % for the worse is a regression
and the exit status is 1. A lost kill or notification also makes the exit status 1. A table
goes to stderr.

Only the standard library is imported at module level, so registering the sub-command costs the
CLI nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from wanderer_console.command import EXIT_USAGE, Command, refuse_json

__all__ = [
    "COMMAND",
    "FULL",
    "QUICK",
    "SCENARIOS",
    "TOLERANCE",
    "Sizes",
    "compare",
    "direction_of",
    "figures_of",
    "run",
    "run_suite",
]

TOLERANCE = 0.10
"""A figure more than this share worse than the old one is a regression."""

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does."""

    ingest_killmails: int
    ingest_rounds: int
    latency_rates: tuple[float, ...]
    latency_seconds: float
    delivery_notifications: int
    delivery_window_scale: float
    """Divides Discord's windows (10 in quick mode: the same ratios, ten times faster)."""
    cache_quick: bool
    memory_killmails: int
    memory_time_limit: float
    startup_tui: bool = True
    attach_seconds: float | None = None
    """Each CPU window of the ``attach`` scenario; ``None`` leaves the scenario out."""
    attach_pairs: int = 3
    """Rounds of each kind (none attached, three attached), alternating."""
    attach_probe_runs: int = 3
    """Attach-time runs (the median is the figure)."""
    peer_rounds: int | None = None
    """Load rounds of each router in the ``peer`` scenario; ``None`` leaves it out."""
    peer_fault_rounds: int = 3
    """Fault rounds of each router (503 burst, sink down)."""
    peer_paced_seconds: float = 10.0
    """Each paced load of the ``peer`` scenario (50/s, 200/s)."""
    scale_maps: tuple[int, ...] = (1, 100)
    """Map counts of the ``scale`` scenario, each run in turn."""
    scale_seconds: float = 10.0
    """The ``scale`` scenario's idle and mix windows."""
    scale_burst: int = 200
    """Kills in the ``scale`` scenario's burst."""
    tracing_kills: int = 256
    """Kills per mode and round of the ``tracing`` scenario."""
    tracing_rounds: int = 80
    """Rounds of the ``tracing`` scenario (each runs the three modes)."""
    soak_minutes: float | None = None
    soak_rate: float = 100.0
    postgresql_rounds: int | None = None
    """Ingest rounds per backend of the ``postgresql`` scenario; ``None`` leaves it out (it
    also needs a database: ``--database`` or ``$WANDERER_CONSOLE_TEST_PG``)."""
    postgresql_killmails: int = 12_000
    """Kills per backend of the ``postgresql`` scenario's ingest, over its rounds."""
    postgresql_unlimited_notifications: int = 2_000
    """The ``postgresql`` scenario's burst with Discord's limits lifted."""
    postgresql_two_instance_kills: int | None = None
    """The ``postgresql`` scenario's two-instance burst (kills over four maps); ``None`` leaves
    the two-instance run out."""


QUICK = Sizes(
    ingest_killmails=16_000,
    ingest_rounds=8,
    latency_rates=(50, 200, 1000),
    latency_seconds=1.0,
    delivery_notifications=500,
    delivery_window_scale=10.0,
    cache_quick=True,
    memory_killmails=100_000,
    memory_time_limit=45.0,
    attach_seconds=3.0,
    attach_pairs=2,
    attach_probe_runs=1,
    peer_rounds=2,
    peer_fault_rounds=1,
    peer_paced_seconds=3.0,
    postgresql_rounds=6,
    postgresql_killmails=12_000,
    postgresql_unlimited_notifications=2_000,
    postgresql_two_instance_kills=1_000,
    tracing_kills=256,
    tracing_rounds=24,
)
FULL = Sizes(
    ingest_killmails=60_000,
    ingest_rounds=15,
    latency_rates=(50, 200, 1000),
    latency_seconds=5.0,
    delivery_notifications=500,
    delivery_window_scale=1.0,
    cache_quick=False,
    memory_killmails=1_000_000,
    memory_time_limit=300.0,
    attach_seconds=10.0,
    attach_pairs=3,
    attach_probe_runs=3,
    peer_rounds=5,
    peer_fault_rounds=3,
    peer_paced_seconds=10.0,
    scale_maps=(1, 100, 1000),
    scale_seconds=30.0,
    scale_burst=500,
    postgresql_rounds=10,
    postgresql_killmails=40_000,
    postgresql_unlimited_notifications=5_000,
    postgresql_two_instance_kills=4_000,
)


async def _ingest(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.ingest import run_ingest_bench

    return await run_ingest_bench(sizes.ingest_killmails, rounds=sizes.ingest_rounds)


async def _latency(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.latency import run_latency_bench

    return await run_latency_bench(sizes.latency_rates, seconds=sizes.latency_seconds)


async def _delivery(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.delivery import run_delivery_bench

    scale = sizes.delivery_window_scale
    result = await run_delivery_bench(
        sizes.delivery_notifications, webhook_window=2.0 / scale, channel_window=60.0 / scale
    )
    result["window_scale"] = scale
    return result


async def _cache(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.cache_bench import run as run_cache_bench

    return await run_cache_bench(quick=sizes.cache_quick)


async def _memory(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.memory import run_memory_bench

    return await run_memory_bench(sizes.memory_killmails, time_limit=sizes.memory_time_limit)


async def _startup(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.startup import run_startup_bench

    return await run_startup_bench(tui=sizes.startup_tui)


async def _attach(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.attach import run_attach

    assert sizes.attach_seconds is not None
    return await run_attach(
        seconds=sizes.attach_seconds, pairs=sizes.attach_pairs, probe_runs=sizes.attach_probe_runs
    )


async def _peer(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.peer import FULL as PEER
    from wanderer_console.bench.peer import run_peer

    assert sizes.peer_rounds is not None
    peer = replace(
        PEER,
        rounds=sizes.peer_rounds,
        fault_rounds=sizes.peer_fault_rounds,
        paced_seconds=sizes.peer_paced_seconds,
    )
    return await run_peer(peer, progress=lambda text: print(text, file=sys.stderr, flush=True))


_database: str | None = None
"""``bench --database URL`` (for the ``postgresql`` scenario; never printed unmasked)."""


def _postgresql_url() -> Any:
    from wanderer_console.bench.pg_store import bench_url

    return bench_url(_database)


async def _postgresql(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.pg_store import PgSizes, run_pg_bench

    url = _postgresql_url()
    if url is None:
        return {"skipped": "no PostgreSQL database: pass --database URL"}
    assert sizes.postgresql_rounds is not None
    pg = PgSizes(
        ingest_killmails=sizes.postgresql_killmails,
        ingest_rounds=sizes.postgresql_rounds,
        delivery_notifications=sizes.delivery_notifications,
        delivery_window_scale=sizes.delivery_window_scale,
        unlimited_notifications=sizes.postgresql_unlimited_notifications,
        unlimited_rounds=min(3, sizes.postgresql_rounds),
        two_instance_kills=sizes.postgresql_two_instance_kills,
    )
    return await run_pg_bench(url, pg, progress=lambda text: print(text, file=sys.stderr))


async def _scale(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.scale import ScaleSizes, run_scale

    scale = ScaleSizes(
        maps=sizes.scale_maps,
        idle_seconds=sizes.scale_seconds,
        mix_seconds=sizes.scale_seconds,
        burst_kills=sizes.scale_burst,
    )
    return await run_scale(scale, progress=lambda text: print(text, file=sys.stderr, flush=True))


async def _tracing(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.tracing_cost import run_tracing_bench

    return await run_tracing_bench(sizes.tracing_kills, rounds=sizes.tracing_rounds)


async def _soak(sizes: Sizes) -> dict[str, Any]:
    from wanderer_console.bench.memory import run_soak

    assert sizes.soak_minutes is not None
    return await run_soak(sizes.soak_minutes, rate=sizes.soak_rate)


SCENARIOS: dict[str, Callable[[Sizes], Awaitable[dict[str, Any]]]] = {
    "memory": _memory,
    "soak": _soak,
    "ingest": _ingest,
    "latency": _latency,
    "delivery": _delivery,
    "cache": _cache,
    "tracing": _tracing,
    "startup": _startup,
    "attach": _attach,
    "peer": _peer,
    "scale": _scale,
    "postgresql": _postgresql,
}
"""Every scenario, in the order the suite runs them (``soak`` only with ``--soak``, ``attach``
only with sizes that give it a window, ``peer`` only when named in ``--only``: it needs
Alertmanager installed and takes minutes; ``postgresql`` only with sizes that give it rounds and
a database to run on; ``scale`` only when named: it takes minutes, the full run with a thousand
maps longer).

The memory scenarios come first: the allocator keeps the heap other scenarios freed, and a
reading taken after them would hide growth inside that high-water mark."""


# -- figures ---------------------------------------------------------------------------------------

_HIGHER_SUFFIXES = (
    "_per_second",
    "ratio_to_ceiling",
    "share_of_ceiling",
    "hit_ratio",
    "pg_sqlite_ratio",
    "two_to_one_ratio",
)
_LOWER_SUFFIXES = ("_ms", "_us", "_s", "_mb", "bytes_per_killmail", "_mb_per_hour", "cpu_share")


def direction_of(figure: str) -> Direction | None:
    """Which way is better for ``figure``: ``higher`` (throughput, ratios) or ``lower``.

    Known by the figure's name: throughput (``*_per_second``), ratios and shares of a ceiling
    are better higher; latency (``*_ms``, ``*_us``), time (``*_s``), memory (``*_mb``, bytes)
    and CPU (``*_cpu_share``, of one core) are better lower. None for a name that says neither
    (such a figure is not compared), and for a peer's own figures (``peer.alertmanager.*``:
    the reference the console is measured against, not the console).
    """
    if figure.startswith("peer.alertmanager."):
        return None
    name = figure.rsplit(".", 1)[-1]
    if name.endswith(_HIGHER_SUFFIXES):
        return "higher"
    if name.endswith(_LOWER_SUFFIXES):
        return "lower"
    return None


def _put(out: dict[str, float], key: str, value: Any) -> None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        out[key] = float(value)


def figures_of(scenarios: Mapping[str, Any]) -> dict[str, float]:
    """The flat figures (``scenario.name``) of the scenarios' raw results."""
    out: dict[str, float] = {}
    ingest = scenarios.get("ingest")
    if ingest:
        _put(out, "ingest.killmails_per_second", ingest.get("killmails_per_second"))
        _put(out, "ingest.ratio_to_ceiling", ingest.get("ratio_to_ceiling"))
    latency = scenarios.get("latency")
    if latency:
        for row in latency.get("rates", []):
            rate = f"{row['events_per_second']:g}"
            for key in ("p50_ms", "p95_ms", "p99_ms"):
                _put(out, f"latency.at_{rate}_per_s.{key}", row.get(key))
    delivery = scenarios.get("delivery")
    if delivery:
        _put(out, "delivery.share_of_ceiling", delivery.get("share_of_ceiling"))
        _put(out, "delivery.delivered_per_second", delivery.get("delivered_per_second"))
    cache = scenarios.get("cache")
    if cache:
        _put(out, "cache.hit_ratio", cache.get("hit_ratio"))
        _put(out, "cache.critical_hit_ratio", cache.get("critical_hit_ratio"))
        hits = cache.get("hit_latency_us") or {}
        _put(out, "cache.hit_median_us", hits.get("median"))
        _put(out, "cache.hit_p99_us", hits.get("p99"))
    memory = scenarios.get("memory")
    if memory:
        for key in ("rss_after_mb", "rss_growth_mb", "bytes_per_killmail"):
            _put(out, f"memory.{key}", memory.get(key))
        _put(out, "memory.killmails_per_second", memory.get("killmails_per_second"))
    startup = scenarios.get("startup")
    if startup:
        for mode in ("headless", "tui"):
            for key, value in (startup.get(mode) or {}).items():
                if key.endswith("_s") and key != "import_s":
                    _put(out, f"startup.{mode}.{key}", value)
    attach = scenarios.get("attach")
    if attach:
        _put(out, "attach.attach_s", attach.get("attach_s"))
        _put(out, "attach.connect_first_frame_s", attach.get("connect_first_frame_s"))
        consoles = (attach.get("cpu") or {}).get("consoles", 3)
        _put(out, "attach.engine_0_consoles_cpu_share", attach.get("engine_cpu_share_none"))
        _put(
            out,
            f"attach.engine_{consoles}_consoles_cpu_share",
            attach.get("engine_cpu_share_attached"),
        )
        # The difference of two medians, a few hundredths of a core: reported, not compared
        # (its relative change is mostly noise); the two shares it comes from are compared.
        _put(out, "attach.consoles_added_cpu", attach.get("consoles_added_cpu_share"))
        _put(out, "attach.idle_consoles_added_cpu", attach.get("idle_consoles_added_cpu_share"))
    peer = scenarios.get("peer")
    if peer:
        for key, value in (peer.get("figures") or {}).items():
            _put(out, f"peer.{key}", value)
    pg = scenarios.get("postgresql")
    if pg and not pg.get("skipped"):
        for part, keys in (
            ("ingest", ("sqlite_killmails_per_second", "postgresql_killmails_per_second")),
            ("delivery", ("sqlite_share_of_ceiling", "postgresql_share_of_ceiling")),
            (
                "delivery_unlimited",
                ("sqlite_delivered_per_second", "postgresql_delivered_per_second"),
            ),
        ):
            result = pg.get(part) or {}
            for key in (*keys, "pg_sqlite_ratio"):
                _put(out, f"postgresql.{part}.{key}", result.get(key))
        cluster = pg.get("two_instances") or {}
        for key in (
            "one_instance_kills_per_second",
            "two_instances_kills_per_second",
            "two_to_one_ratio",
        ):
            _put(out, f"postgresql.two_instances.{key}", cluster.get(key))
    scale = scenarios.get("scale")
    if scale:
        for key, value in (scale.get("figures") or {}).items():
            _put(out, f"scale.{key}", value)
    traced = scenarios.get("tracing")
    if traced:
        for mode, value in (traced.get("per_kill_us") or {}).items():
            _put(out, f"tracing.{mode}_per_kill_us", value)
        # Ratios to the same round's baseline: reported, not compared (no direction).
        for mode, value in (traced.get("to_baseline_ratio") or {}).items():
            _put(out, f"tracing.{mode}_to_baseline", value)
    soak = scenarios.get("soak")
    if soak:
        for key in ("rss_growth_mb", "growth_mb_per_hour", "rss_max_mb"):
            _put(out, f"soak.{key}", soak.get(key))
    return out


def _doc_figures(doc: Mapping[str, Any]) -> dict[str, float]:
    figures = doc.get("figures")
    if isinstance(figures, Mapping):
        out: dict[str, float] = {}
        for key, value in figures.items():
            _put(out, str(key), value)
        return out
    return figures_of(doc.get("scenarios") or {})


def compare(
    old: Mapping[str, Any], new: Mapping[str, Any], *, tolerance: float = TOLERANCE
) -> list[dict[str, Any]]:
    """Every figure present in both documents, with its change and whether it regressed.

    ``change`` is the relative change for the better (positive) or the worse (negative);
    ``regressed`` is true when it is worse by more than ``tolerance``. A figure whose old value
    is 0 is compared only when it is better lower (any increase from 0 is a regression).
    """
    before, after = _doc_figures(old), _doc_figures(new)
    rows: list[dict[str, Any]] = []
    for figure in sorted(before.keys() & after.keys()):
        direction = direction_of(figure)
        if direction is None:
            continue
        was, now = before[figure], after[figure]
        if was == 0:
            if direction == "higher":
                continue
            change = 0.0 if now == 0 else -1.0
            regressed = now > 0
        else:
            relative = (now - was) / abs(was)
            change = relative if direction == "higher" else -relative
            regressed = change < -tolerance
        rows.append(
            {
                "figure": figure,
                "old": was,
                "new": now,
                "better": direction,
                "change": round(change, 4),
                "regressed": regressed,
            }
        )
    return rows


def problems_of(scenarios: Mapping[str, Any]) -> list[str]:
    """Failures (not regressions): lost kills or notifications, 429s, a start-up that failed."""
    out: list[str] = []
    for name in ("ingest", "delivery"):
        result = scenarios.get(name) or {}
        if result.get("lost"):
            out.append(f"{name}: {result['lost']} lost")
    if (scenarios.get("delivery") or {}).get("rejected_429"):
        out.append(f"delivery: {scenarios['delivery']['rejected_429']} requests got a 429")
    for row in (scenarios.get("latency") or {}).get("rates", []):
        if row.get("lost"):
            out.append(f"latency at {row['events_per_second']:g}/s: {row['lost']} lost")
    memory = scenarios.get("memory") or {}
    if memory and memory.get("stored", 0) < memory.get("killmails", 0):
        out.append(f"memory: {memory['killmails'] - memory['stored']} kills not stored")
    attach = scenarios.get("attach") or {}
    if attach.get("lost"):
        out.append(f"attach: {attach['lost']} kills not delivered")
    pg = scenarios.get("postgresql") or {}
    if pg.get("lost"):
        out.append(f"postgresql: {pg['lost']} kills or notifications lost")
    if pg.get("doubled"):
        out.append(f"postgresql: {pg['doubled']} kills delivered twice (or not asked for)")
    if pg.get("rejected_429"):
        out.append(f"postgresql: {pg['rejected_429']} requests got a 429")
    peer = scenarios.get("peer") or {}
    for key, what in (
        ("lost", "events lost"),
        ("doubled", "events delivered twice"),
        ("refused_posts", "events refused"),
    ):
        if peer.get(key):
            out.append(f"peer: {peer[key]} {what}")
    out += list((scenarios.get("scale") or {}).get("problems") or [])
    headless = (scenarios.get("startup") or {}).get("headless") or {}
    out += [f"startup (headless): {problem}" for problem in headless.get("problems", [])]
    return out


BUDGET: Final[tuple[tuple[str, Direction, float], ...]] = (
    ("ingest.killmails_per_second", "higher", 5_000.0),
    ("ingest.ratio_to_ceiling", "higher", 0.5),
    ("latency.at_200_per_s.p50_ms", "lower", 5.0),
    ("latency.at_200_per_s.p99_ms", "lower", 25.0),
    ("delivery.share_of_ceiling", "higher", 0.9),
)
"""The performance budget (issue 8 and the delivery work): figure, which way is better, limit.
Lost events are failures of their own (:func:`problems_of`). A scenario may judge a budget of its
own and return its lines as ``budget`` (``peer``: issue 24's ratios to Alertmanager); the run
lists them after these."""


def budget_of(figures: Mapping[str, float]) -> list[dict[str, Any]]:
    """Each budget line this run measured: its limit, the value and whether it was met."""
    out: list[dict[str, Any]] = []
    for figure, better, limit in BUDGET:
        value = figures.get(figure)
        if value is None:
            continue  # scenario not run (``--only``)
        met = value >= limit if better == "higher" else value <= limit
        rule = f"{'>=' if better == 'higher' else '<='} {limit:g}"
        out.append({"figure": figure, "rule": rule, "value": value, "met": met})
    return out


# -- running ---------------------------------------------------------------------------------------


@dataclass
class SuiteRun:
    """What :func:`run_suite` measured."""

    scenarios: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


async def _run_all(
    names: Iterable[str], sizes: Sizes, progress: Callable[[str], None] | None
) -> SuiteRun:
    out = SuiteRun()
    for name in names:
        if progress is not None:
            progress(f"bench: {name} ...")
        # Each scenario starts from a settled process and machine: without the last one's
        # garbage (the collector would walk it in this one's time) and with the gigabytes the
        # memory run wrote flushed to disk (else the kernel throttles this run's writes while
        # it writes them back: end-to-end latency at 1,000/s went from 7 ms to 240 ms).
        gc.collect()
        os.sync()
        started = time.perf_counter()
        out.scenarios[name] = await SCENARIOS[name](sizes)
        out.seconds[name] = round(time.perf_counter() - started, 2)
        if progress is not None:
            progress(f"bench: {name} done in {out.seconds[name]:.1f} s")
    return out


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "machine": platform.machine(),
    }


def run_suite(
    sizes: Sizes,
    *,
    only: Iterable[str] | None = None,
    quick: bool = False,
    progress: Callable[[str], None] | None = None,
    database: str | None = None,
) -> dict[str, Any]:
    """Run the scenarios (all but ``soak`` unless ``sizes.soak_minutes``) in one event loop.

    ``database`` is the PostgreSQL database of the ``postgresql`` scenario (else
    ``$WANDERER_CONSOLE_TEST_PG``). Returns the result document (without a comparison).
    """
    global _database
    from wanderer_console import __version__

    _database = database

    names = [
        name
        for name in SCENARIOS
        if (only is None or name in set(only))
        and (name != "soak" or sizes.soak_minutes)
        and (name != "attach" or sizes.attach_seconds)
        and (name != "peer" or (only is not None and sizes.peer_rounds))
        and (name != "scale" or (only is not None and sizes.scale_maps))
        and (name != "postgresql" or (sizes.postgresql_rounds and _postgresql_url() is not None))
    ]
    started = time.perf_counter()
    measured = asyncio.run(_run_all(names, sizes, progress))
    figures = figures_of(measured.scenarios)
    return {
        "suite": "wanderer-console bench",
        "version": __version__,
        "quick": quick,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": _machine(),
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(sizes).items()},
        "elapsed_s": round(time.perf_counter() - started, 2),
        "scenario_seconds": measured.seconds,
        "figures": figures,
        "budget": budget_of(figures)
        + [line for result in measured.scenarios.values() for line in result.get("budget", [])],
        "problems": problems_of(measured.scenarios),
        "scenarios": measured.scenarios,
    }


def format_figures(doc: Mapping[str, Any]) -> str:
    """A plain table of the figures (and the comparison, if any) for a terminal."""
    rows = doc.get("compare") or []
    by_figure = {row["figure"]: row for row in rows}
    lines = []
    for figure, value in sorted(doc.get("figures", {}).items()):
        line = f"  {figure:<44} {value:>12g}"
        row = by_figure.get(figure)
        if row is not None:
            flag = "  REGRESSED" if row["regressed"] else ""
            line += f"   was {row['old']:g} ({row['change'] * 100:+.1f} %){flag}"
        lines.append(line)
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` command's options."""
    parser.add_argument(
        "--quick", action="store_true", help="smaller runs (under 2 minutes on 2 cores)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result here")
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="OLD.json",
        help="flag figures more than 10 %% worse than this earlier result; exit 1 if any",
    )
    parser.add_argument(
        "--soak",
        type=float,
        metavar="MINUTES",
        help="also run a soak of this many minutes and report memory growth",
    )
    parser.add_argument(
        "--only",
        metavar="LIST",
        help=f"comma-separated scenarios to run (of: {', '.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="also run ingest and delivery on this PostgreSQL database next to SQLite (in a"
        " scratch schema, dropped afterwards; default: $WANDERER_CONSOLE_TEST_PG)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the ``bench`` sub-command: 0 when nothing regressed or failed, else 1 (2: usage)."""
    old: Mapping[str, Any] | None = None
    if args.compare is not None:
        try:
            old = json.loads(args.compare.read_text())
        except (OSError, ValueError) as exc:
            return refuse_json("bench", f"cannot read {args.compare}: {exc}", EXIT_USAGE)
    only = None
    if args.only:
        only = [name.strip() for name in args.only.split(",") if name.strip()]
        unknown = sorted(set(only) - set(SCENARIOS))
        if unknown:
            return refuse_json("bench", f"unknown scenario(s): {', '.join(unknown)}", EXIT_USAGE)
    sizes = QUICK if args.quick else FULL
    if args.soak:
        sizes = replace(sizes, soak_minutes=args.soak)
        if only is not None and "soak" not in only:
            only.append("soak")

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    database = getattr(args, "database", None)
    if database and not database.lower().startswith(("postgresql://", "postgres://")):
        return refuse_json("bench", "--database must be a postgresql:// URL", EXIT_USAGE)
    doc = run_suite(sizes, only=only, quick=bool(args.quick), progress=progress, database=database)
    regressions: list[dict[str, Any]] = []
    if old is not None:
        doc["compare"] = compare(old, doc)
        doc["compared_with"] = str(args.compare)
        regressions = [row for row in doc["compare"] if row["regressed"]]
        doc["regressions"] = [row["figure"] for row in regressions]
        if bool(old.get("quick")) != bool(args.quick):
            progress("bench: note: comparing a quick run with a full one (sizes differ)")
    text = json.dumps(doc, indent=2, sort_keys=True)
    print(text, flush=True)
    if args.json is not None:
        args.json.write_text(text + "\n")
    progress(f"bench: {len(doc['figures'])} figures in {doc['elapsed_s']:.1f} s")
    progress(format_figures(doc))
    for line in doc["budget"]:
        verdict = "met" if line["met"] else "NOT MET"
        progress(f"bench: budget {line['figure']} {line['rule']}: {verdict} ({line['value']:g})")
    for problem in doc["problems"]:
        progress(f"bench: FAILED: {problem}")
    for row in regressions:
        progress(
            f"bench: REGRESSED: {row['figure']} {row['old']:g} -> {row['new']:g} "
            f"({row['change'] * 100:+.1f} %, {row['better']} is better)"
        )
    return 1 if regressions or doc["problems"] else 0


COMMAND = Command(
    "bench",
    help="run the benchmark suite against the simulator (JSON)",
    description="Run every benchmark scenario against the built-in simulator in one "
    "process and print one JSON document; --compare flags figures more than 10 % worse.",
    add_arguments=add_arguments,
    run=run,
    answers_json=True,
)
