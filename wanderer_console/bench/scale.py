"""Scale in maps: one engine serving 1, 100 or 1,000 maps, measured (issue 17).

For each map count the simulator (:class:`~wanderer_console.sim.fleet.MapFleet`, in this
process) serves that many maps from one fake Wanderer host, each with its own SSE stream, 20–60
tracked systems and 5–50 tracked pilots overlapping between maps, each posting to its own
webhook of one fake Discord (limits lifted on both sides); one fake killstream, one fake ESI.
The engine is a real process (``python -m wanderer_console --no-ui``) over a config naming
every map, so its RSS and CPU (``/proc``) are its own. In order:

1. **Cold start** (a fresh data directory): seconds from spawning the engine to every map
   streaming (an SSE response open at the host for each map); then, once it has settled (ESI
   quiet, killstream joined), the REST calls each map cost at the host (loads, static info,
   character refreshes) and the ESI calls (name warming), per map, and the RSS.
2. **Idle**: the engine's CPU share of one core over a window with nothing happening but SSE
   keepalives (the fake sends one every 30 s per stream, as the real server does) and killstream
   heartbeats.
3. **Mix**: kills at 20/s and map events at 5/s over all maps (``MapFleet.run_mix``); the CPU
   share over the window and, per notification (a kill notifies each map that tracks its system
   or one of its pilots, on that map's webhook), the latency from the kill's push to the fake
   Discord's receipt (the kernel's receive time of the post: the sink's loop, shared with the
   fleet, may read it later; ``sink_read_delay_*`` says how much): p50/p99, lost, doubled.
4. **Burst**: kills of the same mix pushed back to back; the same figures and the time until the
   last one arrived.
5. **Warm start**: the engine stopped (SIGTERM) and started again on the same data directory (its
   name cache and stream cursors kept): seconds to every map streaming, REST and ESI calls per
   map, the RSS once settled.

Where two CPUs are usable (and ``taskset`` is installed), this process's thread runs on the
first and the engine on the last (:mod:`~wanderer_console.bench.pinning`; ``--no-pin`` leaves both
to the scheduler, which ran the fake Discord's woken thread on the engine's CPU: a fifth of the
largest fan-out's time at 1,000 maps was the engine waiting its turn). ``pinning`` in the result
says which.

The fake services take the engine's garbage-collector policy (:mod:`~wanderer_console.gcpolicy`)
and, while the mix and the burst are measured, no collection at all (as ``timeit`` does): their
own pauses, not the engine's, would otherwise land in the latencies.

A run that cannot get every map streaming within its time limit says how many did and goes on.
``growth`` relates each map count's figures to the smallest count's: the extra RSS and idle CPU
per added map. The budget (issue 17) is judged on the 100- and 1,000-map runs; lost or doubled
notifications are failures.

Linux only (``/proc``). Run: ``python -m wanderer_console.bench.scale [--quick] [--maps 1,100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wanderer_console.bench.attach import proc_cpu_seconds
from wanderer_console.bench.latency import percentile
from wanderer_console.bench.memory import rss_mb
from wanderer_console.bench.pinning import Pinning, choose_pinning
from wanderer_console.bench.startup import _clean_env
from wanderer_console.gcpolicy import frozen_survivors
from wanderer_console.sim.fleet import MapFleet

__all__ = [
    "BUDGET",
    "FULL",
    "QUICK",
    "EngineProcess",
    "ScaleSizes",
    "delivered_within",
    "engine_process",
    "fleet_running",
    "main",
    "run_scale",
    "start_phase",
]

KILL_RATE: Final = 20.0
"""Kills per second over all maps under the mix."""
EVENT_RATE: Final = 5.0
"""Map events per second over all maps under the mix."""
BUDGET: Final[tuple[tuple[int, str, str, float], ...]] = (
    (1000, "streaming_warm_s", "lower", 60.0),
    (1000, "rss_mb", "lower", 400.0),
    (1000, "idle_cpu_share", "lower", 0.05),
    (1000, "mix_p50_ms", "lower", 10.0),
    (1000, "mix_p99_ms", "lower", 50.0),
    (100, "rss_mb", "lower", 150.0),
    (100, "mix_p99_ms", "lower", 25.0),
)
"""Issue 17's budget: map count, figure, which way is better, limit."""


@dataclass(frozen=True)
class ScaleSizes:
    """How much each run does."""

    maps: tuple[int, ...]
    idle_seconds: float
    mix_seconds: float
    burst_kills: int


QUICK = ScaleSizes(maps=(1, 100), idle_seconds=10.0, mix_seconds=10.0, burst_kills=200)
FULL = ScaleSizes(maps=(1, 100, 1000), idle_seconds=30.0, mix_seconds=30.0, burst_kills=500)


def streaming_timeout(maps: int) -> float:
    """How long a start may take before the run gives up waiting for every map."""
    return 90.0 + 0.5 * maps


def settle_timeout(maps: int) -> float:
    """How long the run waits, after every map streams, for the start's work (name warming
    above all: tens of ESI calls per map) to end before it measures the idle engine."""
    return 60.0 + 0.6 * maps


def vm_kb(pid: int, key: str) -> float | None:
    """A ``/proc/PID/status`` figure in KiB (``VmRSS``, ``VmHWM``), None when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


@dataclass
class EngineProcess:
    """A ``wanderer-console --no-ui`` process under measurement (:func:`engine_process`)."""

    proc: asyncio.subprocess.Process
    log: Path
    spawned: float

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu(self) -> float:
        return proc_cpu_seconds(self.proc.pid)

    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def alive(self) -> None:
        if self.proc.returncode is not None:
            raise RuntimeError(f"the engine exited ({self.proc.returncode}): {self.tail()}")


LIFT_HTTP_POOL: Final = """\
import runpy, sys
import httpx
_init = httpx.AsyncHTTPTransport.__init__
def _unbounded(self, *args, **kwargs):
    expiry = getattr(kwargs.get("limits"), "keepalive_expiry", 5.0)
    kwargs["limits"] = httpx.Limits(
        max_connections=None, max_keepalive_connections=100, keepalive_expiry=expiry
    )
    _init(self, *args, **kwargs)
httpx.AsyncHTTPTransport.__init__ = _unbounded
sys.argv[0] = "wanderer_console"
runpy.run_module("wanderer_console", run_name="__main__", alter_sys=True)
"""
"""The engine with its HTTP clients' connection pools unbounded (httpx's default holds 100
connections per client, and every map stream holds one of the map client's): what the engine
would measure with that limit lifted in ``http/``, for ``--lift-http-pool``."""


@asynccontextmanager
async def engine_process(
    config: Path,
    data: Path,
    log: Path,
    *,
    lift_pool: bool = False,
    pinning: Pinning | None = None,
) -> AsyncIterator[EngineProcess]:
    """The engine on ``config`` and ``data`` as a process of its own, its output appended to
    ``log``; stopped (SIGTERM, then killed) on leaving. ``lift_pool``: the HTTP pool unbounded;
    ``pinning``: the engine on its CPU (see :mod:`~wanderer_console.bench.pinning`)."""
    entry = ["-c", LIFT_HTTP_POOL] if lift_pool else ["-m", "wanderer_console"]
    prefix = [] if pinning is None else pinning.prefix()
    with log.open("ab") as out:
        spawned = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *prefix,
            sys.executable,
            *entry,
            "--no-ui",
            "--config",
            str(config),
            "--data-dir",
            str(data),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=_clean_env(),
        )
    engine = EngineProcess(proc, log, spawned)
    try:
        yield engine
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _wait(
    check: Callable[[], bool], timeout: float, engine: EngineProcess, every: float = 0.05
) -> bool:
    deadline = time.perf_counter() + timeout
    while not check():
        engine.alive()
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(every)
    return True


async def start_phase(fleet: MapFleet, engine: EngineProcess, sizes: ScaleSizes) -> dict[str, Any]:
    """From spawn to every map streaming, then settled: times, calls per map, RSS."""
    n = len(fleet.maps)
    host = fleet.host
    streamed = await _wait(lambda: host.streaming() >= n, streaming_timeout(n), engine)
    streaming_s = time.perf_counter() - engine.spawned
    # Settled: the killstream joined, ESI and the map host quiet for two seconds.
    await _wait(lambda: fleet.killstream.joined_clients >= 1, settle_timeout(n), engine)
    quiet_since, last = time.perf_counter(), (-1, -1)
    deadline = time.perf_counter() + settle_timeout(n)
    while time.perf_counter() - quiet_since < 2.0 and time.perf_counter() < deadline:
        engine.alive()
        now = (fleet.esi.requests, host.rest_calls.total())
        if now != last:
            quiet_since, last = time.perf_counter(), now
        await asyncio.sleep(0.1)
    settled_s = time.perf_counter() - engine.spawned
    rest = host.rest_calls
    per_map = [rest[m.slug] for m in fleet.maps]
    return {
        "all_streaming": streamed,
        "streaming_maps": host.streaming(),
        "streaming_s": round(streaming_s, 2) if streamed else None,
        "settled_s": round(settled_s, 2),
        "rest_calls": rest.total(),
        "rest_calls_per_map": round(rest.total() / n, 2),
        "rest_calls_per_map_max": max(per_map),
        "static_info_calls": rest["common"],
        "rest_in_flight_peak": host.in_flight_peak,
        "stream_connects_per_map": round(host.stream_connects().total() / n, 2),
        "esi_calls": fleet.esi.requests,
        "esi_calls_per_map": round(fleet.esi.requests / n, 2),
        "esi_calls_by_route": _routes(fleet.esi.hits),
        "killstream_rest_calls": len(fleet.killstream_rest.requests),
        "killstream_sockets": fleet.killstream.joined_clients,
        "rss_mb": round(engine.rss_mb(), 1),
    }


def _routes(hits: Counter[str]) -> dict[str, int]:
    """ESI requests by route (``/characters``, ``/universe/names`` ...)."""
    out: Counter[str] = Counter()
    for path, count in hits.items():
        out["/".join(p for p in path.split("/") if not p.isdigit())] += count
    return dict(out)


def _reset_counters(fleet: MapFleet) -> None:
    fleet.host.rest_calls.clear()
    fleet.host.in_flight_peak = 0
    for fake in fleet.host.maps.values():
        fake.connect_log.clear()
    fleet.esi.hits.clear()
    fleet.killstream_rest.requests.clear()


async def _cpu_window(engine: EngineProcess, seconds: float) -> float:
    wall0, cpu0 = time.perf_counter(), engine.cpu()
    await asyncio.sleep(seconds)
    return (engine.cpu() - cpu0) / (time.perf_counter() - wall0)


async def delivered_within(fleet: MapFleet, engine: EngineProcess, timeout: float) -> float:
    """Seconds until every expected notification arrived (or the timeout passed)."""
    started = time.perf_counter()
    await _wait(lambda: fleet.pending() == 0, timeout, engine, every=0.25)
    return time.perf_counter() - started


def _largest(largest: tuple[int, float | None, float | None] | None) -> dict[str, Any]:
    maps, first, last = largest or (0, None, None)
    return {
        "largest_kill_maps": maps,
        "largest_kill_first_ms": None if first is None else round(first, 2),
        "largest_kill_last_ms": None if last is None else round(last, 2),
    }


def _latency(fleet: MapFleet) -> dict[str, Any]:
    outcome = fleet.outcome()
    values = outcome.latencies_ms
    fan_outs = [float(n) for n in fleet.fan_outs()]
    delays = fleet.sink_delays_ms()
    return {
        "kills": outcome.kills,
        "notifications": outcome.expected,
        "notifications_per_kill": round(outcome.expected / outcome.kills, 2)
        if outcome.kills
        else 0,
        "delivered": outcome.delivered,
        # Posts Discord would have refused (the sink checks them after the run).
        "invalid": outcome.invalid,
        "lost": outcome.lost,
        "doubled": outcome.doubled,
        "unexpected": outcome.unexpected,
        # The maps notified by the kill behind the median and the 99th-percentile notification
        # (all of a kill's notifications are due at once: the tail is the biggest fan-outs').
        "fan_out_p50": round(percentile(fan_outs, 0.50)),
        "fan_out_p99": round(percentile(fan_outs, 0.99)),
        "fan_out_max": round(max(fan_outs)) if fan_outs else 0,
        # The kill notifying the most maps, its first and last delivery: the engine's fan-out in
        # the mix's conditions.
        **_largest(outcome.largest),
        "p50_ms": round(percentile(values, 0.50), 2),
        "p99_ms": round(percentile(values, 0.99), 2),
        "max_ms": round(max(values), 2) if values else None,
        "mean_ms": round(statistics.fmean(values), 2) if values else None,
        # How long after arriving the bench's own loop read the posts (not in the latencies,
        # stamped at arrival: see WebhookSink): what a stamp at the read would have added.
        "sink_read_delay_p99_ms": round(percentile(delays, 0.99), 2) if delays else None,
        "sink_read_delay_max_ms": round(max(delays), 2) if delays else None,
    }


@dataclass(frozen=True, slots=True)
class FleetRun:
    """Where an engine over a running fleet keeps its files."""

    config: Path
    """The engine's config naming every map (owner-only, as the engine requires)."""
    data: Path
    """Its data directory (fresh; kept across the engines of one run: a warm start)."""
    log: Path
    """Its output."""


@asynccontextmanager
async def fleet_running(
    fleet: MapFleet, *, http: dict[str, dict[str, float]] | None, prefix: str
) -> AsyncIterator[FleetRun]:
    """``fleet`` serving, a temporary directory with the engine's config and a fresh data
    directory, and this process under the engine's garbage-collector policy: the fake services'
    own collector pauses (a thousand maps of fake data) would count as the engine's latency."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp)
        run = FleetRun(root / "engine.toml", root / "data", root / "engine.log")
        run.data.mkdir()
        async with fleet:
            with frozen_survivors(asyncio.get_running_loop()):
                run.config.write_text(fleet.config_text(http=http))
                run.config.chmod(0o600)
                yield run


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """This process's garbage collector off while a load is measured, as ``timeit`` does: the
    fake services' own pauses (a full collection over a thousand maps of fake data took up to
    300 ms) would count as the engine's latency. Collected once the window ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect()


async def run_maps(
    maps: int,
    sizes: ScaleSizes,
    *,
    seed: int = 17,
    http: dict[str, dict[str, float]] | None = None,
    lift_pool: bool = False,
    progress: Callable[[str], None] | None = None,
    keep_log: Path | None = None,
    full_discord: bool = False,
    pinning: Pinning | None = None,
) -> dict[str, Any]:
    """Every phase for one map count (see the module docstring); ``keep_log``: copy the
    engine's output there; ``full_discord``: the full fake Discord instead of the webhook sink
    (see :class:`~wanderer_console.sim.webhook_sink.WebhookSink`); ``pinning``: the engine on
    its CPU (this process's thread is the caller's to pin)."""

    def say(text: str) -> None:
        if progress is not None:
            progress(f"bench: scale {maps} maps: {text}")

    fleet = MapFleet(maps, seed=seed, full_discord=full_discord)
    result: dict[str, Any] = {
        "maps": maps,
        "discord": "full fake" if full_discord else "sink",
        "unique_systems": fleet.unique_systems(),
        "unique_pilots": fleet.unique_pilots(),
        "http": http or None,
        "http_pool_lifted": lift_pool,
    }
    async with fleet_running(fleet, http=http, prefix="wc-bench-scale-") as run:
        say("cold start")
        async with engine_process(
            run.config, run.data, run.log, lift_pool=lift_pool, pinning=pinning
        ) as engine:
            result["cold"] = await start_phase(fleet, engine, sizes)
            say(f"cold start: {result['cold']}")
            result["rss_mb"] = result["cold"]["rss_mb"]
            result["idle_cpu_share"] = round(await _cpu_window(engine, sizes.idle_seconds), 4)
            say(f"idle CPU {result['idle_cpu_share']}")
            fleet.reset_outcome()
            cpu0, wall0 = engine.cpu(), time.perf_counter()
            with _collector_paused():
                mix = await fleet.run_mix(
                    sizes.mix_seconds, kill_rate=KILL_RATE, event_rate=EVENT_RATE
                )
                result["mix_cpu_share"] = round(
                    (engine.cpu() - cpu0) / (time.perf_counter() - wall0), 4
                )
                drain = await delivered_within(fleet, engine, 30.0)
            result["mix"] = {
                "seconds": round(mix.seconds, 2),
                "kills_per_second": mix.kills_per_second,
                "events_per_second": mix.events_per_second,
                "events": dict(mix.events),
                "drain_s": round(drain, 2),
                **_latency(fleet),
            }
            say(f"mix: {result['mix']}")
            fleet.reset_outcome()
            with _collector_paused():
                pushing = await fleet.burst(sizes.burst_kills)
                drain = await delivered_within(fleet, engine, 60.0)
            result["burst"] = {
                "push_s": round(pushing, 3),
                "drain_s": round(drain, 2),
                **_latency(fleet),
            }
            say(f"burst: {result['burst']}")
            result["rss_after_mb"] = round(engine.rss_mb(), 1)
            peak = vm_kb(engine.pid, "VmHWM")
            result["rss_peak_mb"] = None if peak is None else round(peak / 1024, 1)
        _reset_counters(fleet)
        say("warm start")
        async with engine_process(
            run.config, run.data, run.log, lift_pool=lift_pool, pinning=pinning
        ) as engine:
            result["warm"] = await start_phase(fleet, engine, sizes)
            say(f"warm start: {result['warm']}")
        if keep_log is not None:
            shutil.copyfile(run.log, keep_log)
    return result


def _growth(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run against the smallest: RSS and idle CPU per added map."""
    if len(runs) < 2:
        return []
    base = runs[0]
    out = []
    for run in runs[1:]:
        added = run["maps"] - base["maps"]
        if added <= 0:
            continue
        out.append(
            {
                "from_maps": base["maps"],
                "to_maps": run["maps"],
                "rss_per_added_map_kb": round((run["rss_mb"] - base["rss_mb"]) * 1024 / added, 1),
                "idle_cpu_per_added_map": round(
                    (run["idle_cpu_share"] - base["idle_cpu_share"]) / added, 6
                ),
                "mix_cpu_per_added_map": round(
                    (run["mix_cpu_share"] - base["mix_cpu_share"]) / added, 6
                ),
            }
        )
    return out


def figures(runs: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The flat figures of the runs (``maps_100.rss_mb`` ...), for the suite."""
    out: dict[str, float] = {}

    def put(key: str, value: Any) -> None:
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)

    for run in runs:
        prefix = f"maps_{run['maps']}"
        put(f"{prefix}.streaming_cold_s", run["cold"]["streaming_s"])
        put(f"{prefix}.streaming_warm_s", run["warm"]["streaming_s"])
        put(f"{prefix}.rss_mb", run["rss_mb"])
        put(f"{prefix}.rss_per_map_mb", run["rss_mb"] / run["maps"])
        put(f"{prefix}.idle_cpu_share", run["idle_cpu_share"])
        put(f"{prefix}.mix_cpu_share", run["mix_cpu_share"])
        put(f"{prefix}.mix_p50_ms", run["mix"]["p50_ms"])
        put(f"{prefix}.mix_p99_ms", run["mix"]["p99_ms"])
        put(f"{prefix}.burst_p99_ms", run["burst"]["p99_ms"])
        put(f"{prefix}.rest_calls_per_map_cold", run["cold"]["rest_calls_per_map"])
        put(f"{prefix}.rest_calls_per_map_warm", run["warm"]["rest_calls_per_map"])
        put(f"{prefix}.esi_calls_per_map_cold", run["cold"]["esi_calls_per_map"])
        put(f"{prefix}.esi_calls_per_map_warm", run["warm"]["esi_calls_per_map"])
    return out


def budget(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 17's budget lines for the map counts run (a start that never got every map
    streaming fails its time line)."""
    flat = figures(runs)
    counts = {run["maps"]: run for run in runs}
    lines = []
    for maps, name, better, limit in BUDGET:
        if maps not in counts:
            continue
        figure = f"scale.maps_{maps}.{name}"
        value = flat.get(f"maps_{maps}.{name}")
        met = value is not None and (value <= limit if better == "lower" else value >= limit)
        rule = f"{'<=' if better == 'lower' else '>='} {limit:g}"
        lines.append({"figure": figure, "rule": rule, "value": value, "met": met})
    return lines


def problems(runs: Sequence[dict[str, Any]]) -> list[str]:
    """Lost or doubled notifications, maps that never streamed."""
    out = []
    for run in runs:
        for phase in ("mix", "burst"):
            for key in ("lost", "doubled", "unexpected", "invalid"):
                if run[phase].get(key):
                    out.append(f"scale {run['maps']} maps, {phase}: {run[phase][key]} {key}")
        for start in ("cold", "warm"):
            if not run[start]["all_streaming"]:
                out.append(
                    f"scale {run['maps']} maps, {start} start: only"
                    f" {run[start]['streaming_maps']} streaming after"
                    f" {streaming_timeout(run['maps']):g} s"
                )
    return out


async def run_scale(
    sizes: ScaleSizes = QUICK,
    *,
    seed: int = 17,
    http: dict[str, dict[str, float]] | None = None,
    lift_pool: bool = False,
    progress: Callable[[str], None] | None = None,
    keep_logs: Path | None = None,
    full_discord: bool = False,
    pin: bool = True,
) -> dict[str, Any]:
    """Every map count of ``sizes`` in turn; the figures, the growth and the budget
    (``keep_logs``: a directory to copy each engine's output into; ``pin``: this process's
    services on one CPU and the engine on another where two are usable, see
    :mod:`~wanderer_console.bench.pinning`)."""
    pinning = choose_pinning() if pin else Pinning(why_not="--no-pin")
    with pinning.bench():
        runs = [
            await run_maps(
                n,
                sizes,
                seed=seed,
                http=http,
                lift_pool=lift_pool,
                progress=progress,
                keep_log=None if keep_logs is None else keep_logs / f"engine-{n}-maps.log",
                full_discord=full_discord,
                pinning=pinning,
            )
            for n in sizes.maps
        ]
    return {
        "scenario": "scale",
        "pinning": pinning.describe(),
        "kill_rate": KILL_RATE,
        "event_rate": EVENT_RATE,
        "http": http or None,
        "http_pool_lifted": lift_pool,
        "sizes": {
            "maps": list(sizes.maps),
            "idle_seconds": sizes.idle_seconds,
            "mix_seconds": sizes.mix_seconds,
            "burst_kills": sizes.burst_kills,
        },
        "runs": runs,
        "growth": _growth(runs),
        "figures": figures(runs),
        "budget": budget(runs),
        "problems": problems(runs),
    }


def _rates(map_rate: float | None, esi_rate: float | None) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for service, rate in (("map", map_rate), ("esi", esi_rate)):
        if rate is not None:
            out[service] = {"rate_per_second": rate, "burst": max(1, round(rate))}
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result (and write it with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.scale")
    parser.add_argument("--quick", action="store_true", help="1 and 100 maps, 10 s windows")
    parser.add_argument("--maps", help="comma-separated map counts (default: 1,100,1000)")
    parser.add_argument(
        "--map-rate",
        type=float,
        metavar="N",
        help="the engine's map client: N requests a second per host, burst N (default 10, 20)",
    )
    parser.add_argument(
        "--esi-rate",
        type=float,
        metavar="N",
        help="the engine's ESI client: N requests a second, burst N (default 20, 40)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH")
    parser.add_argument(
        "--lift-http-pool",
        action="store_true",
        help="run the engine with its HTTP connection pools unbounded (a what-if: see the docs)",
    )
    parser.add_argument("--keep-logs", type=Path, metavar="DIR", help="keep the engines' output")
    parser.add_argument(
        "--full-discord",
        action="store_true",
        help="post to the full fake Discord (rules checked per post, about three times the"
        " CPU per post in this process) instead of the webhook sink",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="leave the engine and this process's fake services to the scheduler (by default"
        " each has a CPU of its own where two are usable: see bench/pinning.py)",
    )
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.maps:
        sizes = ScaleSizes(
            maps=tuple(int(n) for n in args.maps.split(",")),
            idle_seconds=sizes.idle_seconds,
            mix_seconds=sizes.mix_seconds,
            burst_kills=sizes.burst_kills,
        )

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result = asyncio.run(
        run_scale(
            sizes,
            http=_rates(args.map_rate, args.esi_rate),
            lift_pool=args.lift_http_pool,
            progress=progress,
            keep_logs=args.keep_logs,
            full_discord=args.full_discord,
            pin=not args.no_pin,
        )
    )
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    with contextlib.suppress(Exception):
        for line in result["budget"]:
            verdict = "met" if line["met"] else "NOT MET"
            progress(f"bench: budget {line['figure']} {line['rule']}: {verdict} ({line['value']})")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
