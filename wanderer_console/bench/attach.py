"""Attached consoles: how long ``wanderer-console attach`` takes, and what the engine pays for them.

Both figures are taken against a real engine process: ``python -m wanderer_console --no-ui``
with its control socket, over the simulator (in this process) with Discord's limits lifted on
both sides, so every kill is decided, written and delivered (the full path, as in the latency
benchmark) and the figure is the engine's own work.

**Engine CPU with consoles attached** (``cpu``). The fake killstream feeds the engine kills in
tracked systems at 1,000 a second (pre-encoded frames, 100 every 0.1 s; each kill a distinct id,
one notification each), and the engine process's CPU time (``utime + stime`` of
``/proc/PID/stat``: every thread) is read at both ends of a fixed window. Rounds alternate, none
attached then three attached, none, three, …, so drifting machine noise falls on both sides, and
the medians are reported as CPU seconds per wall second (``1.0`` is one full core). A warm-up
round comes first and is not counted (caches, the collector's first passes, the outbox's first
messages). After each window the run waits until the engine has delivered every kill of the
round (``lost`` counts the ones that did not arrive in time: a failure).

Under that load the engine's share moves by a few hundredths of a core from one round to the
next (checkpoints, the collector, the machine), more than three consoles cost; so the same
alternating rounds are run once more with the engine idle (``idle``: no kills), where the
consoles' own cost stands out. Each kind's lowest and highest round are reported (``spread_*``)
so a reader can see how far a difference is noise.

The attached consoles are protocol clients: each a
:class:`~wanderer_console.http.control_client.RemoteBackend` on the control socket following
:meth:`~wanderer_console.http.control_client.RemoteBackend.frames` at 1 s, the console's
refresh rate (``console.refresh_seconds``). That is exactly what an attached console asks of the
engine (the TUI draws its frames in its own process, on another core or host), so the engine's
extra CPU is what three operators attached over SSH cost it: one frame built per tick for all of
them, scrubbed of secrets and written to three sockets. The consoles run in this process (with
the simulator); its CPU share is reported next to the engine's (``bench_cpu_share``) because on
a small machine the two compete for the same cores.

**Attach time** (``attach``). A fresh ``python -m wanderer_console.bench.attach_probe`` process,
timed from before it is spawned (so the interpreter's start and every import count, as an
operator sees them) to its report that the dashboard has drawn the first live frame: it follows
the command's own path (the CLI's imports, the ``attach`` argument parsing and handshake, Textual
only after the handshake) with the app headless instead of on a terminal. The same probe with
``--no-ui`` stops at the first frame received, without the UI: the difference is the console's
own start (importing Textual, building and drawing the app). The engine runs idle meanwhile.
Median of the runs.

Linux only (``/proc``). Run: ``python -m wanderer_console.bench.attach [--quick] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from wanderer_console.bench.harness import numbered_frames
from wanderer_console.bench.startup import _clean_env
from wanderer_console.console_api import BackendError, EngineSnapshot
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.sim.simulator import Simulator

__all__ = [
    "CONSOLE_REFRESH_SECONDS",
    "RATE",
    "main",
    "measure_attach_time",
    "measure_engine_cpu",
    "proc_cpu_seconds",
    "run_attach",
]

RATE = 1000.0
"""Kills per second fed to the engine while its CPU is measured."""
CONSOLE_REFRESH_SECONDS = 1.0
"""The interval an attached console asks its frames at (the default ``refresh_seconds``)."""
TICK = 0.1
"""The feed sends the kills due every this many seconds (100 at a time at 1,000/s).

Sent one by one, how many embeds each Discord message packs depends on timing, and the engine's
CPU share moved by a fifth between rounds of the same kills with it; in bursts every message
packs about ten, and rounds of the same work cost the same."""
_FIRST_ID = 700_000_000
"""Killmail ids of this benchmark's kills (clear of the generator's and other benchmarks')."""
_TEMPLATES = 500
"""Distinct generated kills the fed ones are numbered copies of (names cached after warm-up)."""
DRAIN_TIMEOUT = 30.0
"""Seconds after a window within which every kill of the round must have been delivered."""


def proc_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) process ``pid`` has used, from ``/proc``."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def engine_config_text(sim: Simulator) -> str:
    """One map on the simulator, every kill in its systems to one webhook, no Discord limits."""
    return f"""\
[console]
startup_suppression_seconds = 0

[discord]
api_url = "{sim.discord_api_url}"
channel_messages_per_minute = 1000000   # the fake's limits are lifted too: measure the engine

[http.discord]
rate_per_second = 0

[esi]
url = "{sim.esi_url}"

[killstream]
websocket_url = "{sim.killstream_url}"

[maps.{sim.map_slug}]
url = "{sim.map_url}"
api_key = "{sim.map_api_key}"

[maps.{sim.map_slug}.discord]
webhook_url = "{sim.webhook_url("primary")}"
"""


@dataclass
class Engine:
    """A running ``--no-ui`` engine process and a client for reading its counters."""

    proc: asyncio.subprocess.Process
    socket: Path
    log: Path
    client: RemoteBackend

    @property
    def pid(self) -> int:
        """The engine's process id."""
        return self.proc.pid

    def cpu_seconds(self) -> float:
        """CPU seconds the engine has used so far."""
        return proc_cpu_seconds(self.proc.pid)

    def log_tail(self, chars: int = 2000) -> str:
        """The end of the engine's output (for a failure's message)."""
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


async def _until(predicate: Any, timeout: float, what: str, engine: Engine | None = None) -> None:
    deadline = time.perf_counter() + timeout
    while not await predicate():
        if engine is not None and engine.proc.returncode is not None:
            raise RuntimeError(f"the engine exited ({engine.proc.returncode}): {engine.log_tail()}")
        if time.perf_counter() > deadline:
            tail = "" if engine is None else f"; engine output: {engine.log_tail()}"
            raise TimeoutError(f"{what} not within {timeout:g} s{tail}")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_engine(
    sim: Simulator, tmp: Path, *, timeout: float = 30.0
) -> AsyncIterator[Engine]:
    """``python -m wanderer_console --no-ui`` over ``sim``, ready (control socket answering,
    both killstream sockets joined); SIGTERM on exit."""
    data_dir = tmp / "engine"
    data_dir.mkdir()
    config = tmp / "engine.toml"
    config.write_text(engine_config_text(sim))
    config.chmod(0o600)
    log = tmp / "engine.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "wanderer_console",
            "--no-ui",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=_clean_env(),
        )
    socket_path = data_dir / SOCKET_NAME
    engine = Engine(proc, socket_path, log, RemoteBackend(socket_path=socket_path))
    try:

        async def answering() -> bool:
            if not socket_path.exists():
                return False
            try:
                await engine.client.connect()
            except BackendError:
                return False
            return True

        async def joined() -> bool:
            return sim.killstream.joined_clients >= 2

        await _until(answering, timeout, "the control socket answering", engine)
        await _until(joined, timeout, "both killstream sockets joined", engine)
        yield engine
    finally:
        await engine.client.aclose()
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()


# -- engine CPU -------------------------------------------------------------------------------


@dataclass
class _Consoles:
    """Attached consoles following the engine's frames (protocol clients, in this process)."""

    count: int
    socket: Path
    frames: list[int] = field(default_factory=list)
    _backends: list[RemoteBackend] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self, timeout: float = 10.0) -> None:
        """Attach them all and wait until each has its first frame."""
        self.frames = [0] * self.count
        for index in range(self.count):
            backend = RemoteBackend(socket_path=self.socket)
            self._backends.append(backend)
            self._tasks.append(asyncio.create_task(self._follow(index, backend)))

        async def all_live() -> bool:
            return all(self.frames)

        await _until(all_live, timeout, f"{self.count} consoles' first frames")

    async def _follow(self, index: int, backend: RemoteBackend) -> None:
        async for frame in backend.frames(CONSOLE_REFRESH_SECONDS):
            if frame.link.state == "live":
                self.frames[index] += 1

    async def stop(self) -> None:
        """Detach them (the engine keeps running)."""
        await cancel_and_wait(self._tasks)
        for backend in self._backends:
            await backend.aclose()
        self._tasks.clear()
        self._backends.clear()


def _delivered(snapshot: EngineSnapshot) -> tuple[int, int]:
    counters = snapshot.counters
    return (
        int(counters.events_received.get("killstream", 0)),
        int(sum(counters.notifications_delivered.values())),
    )


class _Feed:
    """Distinct kills in tracked systems, pre-encoded, sent at a fixed rate."""

    def __init__(self, sim: Simulator, rate: float) -> None:
        self.sim = sim
        self.rate = rate
        tracked = sorted(sim.tracked_system_ids)
        self.templates = [
            sim.generator.make_killmail(
                system_id=tracked[i % len(tracked)],
                exclude_character_ids=sim.tracked_character_ids,
            )
            for i in range(_TEMPLATES)
        ]
        self.next_id = _FIRST_ID

    def frames(self, count: int) -> list[str]:
        """``count`` kill frames with ids not used before."""
        frames = numbered_frames(self.templates, self.next_id, count)
        self.next_id += count
        return frames

    async def send(self, frames: Sequence[str]) -> float:
        """Send ``frames`` at the rate (each tick, those due by its end); the seconds it took."""
        start = time.perf_counter()
        sent = ticks = 0
        while sent < len(frames):
            ticks += 1
            due = min(len(frames), int(ticks * TICK * self.rate + 1e-6))
            await self.sim.killstream.broadcast_raw(frames[sent:due])
            sent = due
            delay = start + ticks * TICK - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        return time.perf_counter() - start


async def _round(
    engine: Engine, sim: Simulator, feed: _Feed | None, seconds: float, consoles: int
) -> dict[str, Any]:
    """One window with ``consoles`` attached, fed at the feed's rate (idle without a feed): the
    engine's CPU share and what arrived."""
    count = int(feed.rate * seconds) if feed is not None else 0
    frames = feed.frames(count) if feed is not None else []
    attached = _Consoles(consoles, engine.socket) if consoles else None
    if attached is not None:
        await attached.start()
    try:
        received0, delivered0 = _delivered(await engine.client.snapshot())
        messages0 = len(sim.discord.received)
        await asyncio.sleep(0.5)  # the consoles' first frames and the counter read settle
        frames0 = list(attached.frames) if attached is not None else []
        wall0, cpu0, own0 = time.perf_counter(), engine.cpu_seconds(), time.process_time()
        if feed is not None:
            sending = await feed.send(frames)
        else:
            await asyncio.sleep(seconds)
            sending = 0.0
        wall1, cpu1, own1 = time.perf_counter(), engine.cpu_seconds(), time.process_time()
        got = [b - a for a, b in zip(frames0, attached.frames, strict=True)] if attached else []

        async def drained() -> bool:
            received, delivered = _delivered(await engine.client.snapshot())
            return received - received0 >= count and delivered - delivered0 >= count

        with contextlib.suppress(TimeoutError):
            await _until(drained, DRAIN_TIMEOUT, "delivery of the round's kills", engine)
        drain_s = time.perf_counter() - wall1
        received, delivered = _delivered(await engine.client.snapshot())
    finally:
        if attached is not None:
            await attached.stop()
    messages = sim.discord.received[messages0:]
    embeds = sum(len(m.body.get("embeds") or []) for m in messages)
    wall = wall1 - wall0
    return {
        "consoles": consoles,
        "wall_s": round(wall, 3),
        "engine_cpu_s": round(cpu1 - cpu0, 3),
        "engine_cpu_share": round((cpu1 - cpu0) / wall, 4),
        "bench_cpu_share": round((own1 - own0) / wall, 4),
        "kills": count,
        "sent_per_second": round(count / sending, 1) if sending > 0 else None,
        "received": received - received0,
        "delivered": delivered - delivered0,
        "discord_messages": len(messages),
        "discord_embeds": embeds,
        "lost": max(0, count - min(delivered - delivered0, embeds)),
        "drain_s": round(drain_s, 3),
        "frames_per_console": got,
    }


def _median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 4) if values else 0.0


async def _alternating(
    engine: Engine,
    sim: Simulator,
    feed: _Feed | None,
    *,
    seconds: float,
    pairs: int,
    consoles: int,
) -> dict[str, Any]:
    rounds = []
    for _ in range(pairs):
        for attached in (0, consoles):
            await asyncio.sleep(1.0)  # the last round's tail (outbox, collector) settles
            rounds.append(await _round(engine, sim, feed, seconds, attached))
    none = [r["engine_cpu_share"] for r in rounds if r["consoles"] == 0]
    some = [r["engine_cpu_share"] for r in rounds if r["consoles"] == consoles]
    paired = [b - a for a, b in zip(none, some, strict=True)]
    median_none, median_some = _median(none), _median(some)
    return {
        "seconds_per_round": seconds,
        "engine_cpu_share_none": median_none,
        "engine_cpu_share_attached": median_some,
        "consoles_added_cpu_share": round(median_some - median_none, 4),
        "consoles_added_paired_median": _median(paired),
        "spread_none": [min(none), max(none)],
        "spread_attached": [min(some), max(some)],
        "bench_cpu_share_median": _median([r["bench_cpu_share"] for r in rounds]),
        "kills": sum(r["kills"] for r in rounds),
        "lost": sum(r["lost"] for r in rounds),
        "rounds": rounds,
    }


async def measure_engine_cpu(
    engine: Engine,
    sim: Simulator,
    *,
    seconds: float,
    pairs: int,
    consoles: int = 3,
    rate: float = RATE,
    idle_seconds: float | None = None,
) -> dict[str, Any]:
    """Alternating rounds (none, ``consoles``, none, …), ``pairs`` of each, after a warm-up;
    then the same with the engine idle (no kills: the consoles' own cost, without the noise of
    the load), ``idle_seconds`` each (default: ``seconds``; 0 skips them)."""
    feed = _Feed(sim, rate)
    warmup = await _round(engine, sim, feed, max(seconds, 3.0), 0)
    loaded = await _alternating(engine, sim, feed, seconds=seconds, pairs=pairs, consoles=consoles)
    idle_seconds = seconds if idle_seconds is None else idle_seconds
    idle = None
    if idle_seconds > 0:
        idle = await _alternating(
            engine, sim, None, seconds=idle_seconds, pairs=pairs, consoles=consoles
        )
    return {
        "rate": rate,
        "consoles": consoles,
        "console_refresh_seconds": CONSOLE_REFRESH_SECONDS,
        "warmup": warmup,
        **loaded,
        "idle": idle,
    }


# -- attach time ------------------------------------------------------------------------------


async def _probe_once(socket: Path, *, ui: bool, timeout: float) -> dict[str, Any]:
    argv = [sys.executable, "-m", "wanderer_console.bench.attach_probe", "--socket", str(socket)]
    if not ui:
        argv.append("--no-ui")
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        reported = time.perf_counter() - started
        report = orjson.loads(line) if line.strip() else None
        _, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, orjson.JSONDecodeError) as exc:
        if proc.returncode is None:
            proc.kill()
        _, err = await proc.communicate()
        raise RuntimeError(
            f"the attach probe failed ({type(exc).__name__}): {err.decode(errors='replace')}"
        ) from None
    if not isinstance(report, dict) or not report.get("ok"):
        raise RuntimeError(
            f"the attach probe reported {report!r} (exit {proc.returncode}):"
            f" {err.decode(errors='replace')[-2000:]}"
        )
    return {"total_s": round(reported, 3), **report}


async def measure_attach_time(
    socket: Path, *, runs: int = 3, timeout: float = 60.0
) -> dict[str, Any]:
    """Command start to the first live frame drawn (and to the first frame without the UI)."""
    with_ui = [await _probe_once(socket, ui=True, timeout=timeout) for _ in range(runs)]
    without = [await _probe_once(socket, ui=False, timeout=timeout) for _ in range(runs)]

    def phases(samples: list[dict[str, Any]]) -> dict[str, float]:
        keys = [k for k in samples[0] if k.endswith("_s")]
        return {k: _median([float(s[k]) for s in samples]) for k in keys}

    return {
        "runs": runs,
        "attach_s": _median([s["total_s"] for s in with_ui]),
        "connect_first_frame_s": _median([s["total_s"] for s in without]),
        "ui": phases(with_ui),
        "no_ui": phases(without),
        "samples": {"ui": with_ui, "no_ui": without},
    }


# -- the scenario -----------------------------------------------------------------------------


async def run_attach(
    *,
    seconds: float = 10.0,
    pairs: int = 3,
    probe_runs: int = 3,
    consoles: int = 3,
    rate: float = RATE,
    idle_seconds: float | None = None,
    seed: int = 13,
) -> dict[str, Any]:
    """Engine CPU at ``rate`` kills/s with none and ``consoles`` attached (and idle: see
    :func:`measure_engine_cpu`), then attach time."""
    with tempfile.TemporaryDirectory(prefix="wc-bench-attach-") as tmp:
        async with Simulator(
            seed=seed, discord_webhook_limit=1_000_000, discord_webhook_window=1.0
        ) as sim:
            sim.killstream.duplicate_realtime = False
            async with running_engine(sim, Path(tmp)) as engine:
                cpu = await measure_engine_cpu(
                    engine,
                    sim,
                    seconds=seconds,
                    pairs=pairs,
                    consoles=consoles,
                    rate=rate,
                    idle_seconds=idle_seconds,
                )
                await asyncio.sleep(1.0)
                attach = await measure_attach_time(engine.socket, runs=probe_runs)
    return {
        "scenario": "attach",
        "attach_s": attach["attach_s"],
        "connect_first_frame_s": attach["connect_first_frame_s"],
        "engine_cpu_share_none": cpu["engine_cpu_share_none"],
        "engine_cpu_share_attached": cpu["engine_cpu_share_attached"],
        "consoles_added_cpu_share": cpu["consoles_added_cpu_share"],
        "idle_consoles_added_cpu_share": (cpu["idle"] or {}).get("consoles_added_cpu_share"),
        "lost": cpu["lost"],
        "cpu": cpu,
        "attach": attach,
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result (and write it with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.attach")
    parser.add_argument(
        "--quick", action="store_true", help="3 s windows, 2 pairs, 1 probe run (10 s, 3, 3)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    if args.quick:
        result = asyncio.run(run_attach(seconds=3.0, pairs=2, probe_runs=1))
    else:
        result = asyncio.run(run_attach())
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 1 if result["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
