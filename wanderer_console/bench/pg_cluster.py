"""Two instances delivering from one PostgreSQL outbox, against one instance doing it alone.

Each engine is a real process (``python -m wanderer_console --no-ui``, its own data directory,
``--database`` on one fresh schema) over the multi-map simulator
(:class:`~wanderer_console.sim.multimap.MultiMapSim`: four maps, each posting to its own bot
channel, one killstream, one fake Discord). The engines divide the maps by their leases
(:mod:`wanderer_console.cluster`); each sends for the maps it holds. Discord's limits are lifted
on both sides (the fake's buckets, the engines' channel pacing and client rate limit), so the
figure is what the engines sustain, not what Discord allows.

A run: the engines are started and left to settle (every map leased, at most its fair share
each, unchanged for two seconds; every map streamed and its systems subscribed), a kill per map
is delivered as a warm-up, then bursts of kills spread evenly over the maps are pushed, each
clock stopping at the last message the fake Discord accepted (the median burst is the figure).
The same is run with one engine and with two (each on a fresh schema); the figures are kills
per second of each, the two/one ratio, and what each engine sent. Every kill must arrive
exactly once (lost, doubled and unexpected ones are counted), with no 429.

Everything shares this machine: the simulator runs in the benchmark's process, the engines and
the PostgreSQL server in theirs, so on a small machine the engines compete for the same cores
(``cpus`` in the result).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from wanderer_console.sim.multimap import MultiMapSim
from wanderer_console.store.base import DatabaseUrl
from wanderer_console.store.lock import lock_holder

__all__ = ["LEASE_SECONDS", "run_two_instances"]

LEASE_SECONDS: Final = 3.0
"""``[cluster] lease_seconds`` of the engines (heartbeats every second)."""
_LIFTED: Final = "channel_messages_per_minute = 1000000\n"
_HTTP: Final = "[http.discord]\nrate_per_second = 0\n"


class _Engine:
    """One engine process over the simulator, on the shared schema."""

    def __init__(self, sim: MultiMapSim, root: Path, name: str, url: DatabaseUrl) -> None:
        self.name = name
        self.agent = f"wc-bench/{name}"
        self.data = root / name
        self.data.mkdir(parents=True)
        self.config = root / f"{name}.toml"
        text = sim.config_text(agent=self.agent, lease_seconds=LEASE_SECONDS, extra=_HTTP)
        self.config.write_text(text.replace("[discord]\n", f"[discord]\n{_LIFTED}", 1))
        self.log = root / f"{name}.log"
        self.url = url
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "wanderer_console",
                "--no-ui",
                "--config",
                str(self.config),
                "--data-dir",
                str(self.data),
                "--database",
                self.url.secret(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        proc = self.proc
        await _until(
            lambda: (h := lock_holder(self.data)) is not None and h.pid == proc.pid,
            30,
            f"engine {self.name} to start",
        )

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout=30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


async def _until(predicate: Callable[[], Any], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"bench: {what}: not within {timeout:g} s")


class _Leases:
    """The leases as the database sees them (a connection beside the engines)."""

    def __init__(self, url: DatabaseUrl) -> None:
        import psycopg

        self._conn = psycopg.connect(url.secret(), autocommit=True)

    def owners(self) -> dict[str, str]:
        try:
            rows = self._conn.execute(
                "SELECT resource, owner FROM leases WHERE owner IS NOT NULL"
                " AND expires_at > extract(epoch from clock_timestamp())"
            ).fetchall()
        except Exception:  # the first engine has not created the tables yet
            return {}
        return {str(resource).removeprefix("map:"): str(owner) for resource, owner in rows}

    def pids(self) -> dict[str, int]:
        """Instance id -> its process id."""
        rows = self._conn.execute("SELECT instance_id, pid FROM instances").fetchall()
        return {str(instance): int(pid) for instance, pid in rows}

    def close(self) -> None:
        self._conn.close()


def _delivered_all(sim: MultiMapSim) -> bool:
    for key, entry in sim.maps.items():
        kills, _systems = sim.delivered(key)
        if not set(entry.kills) <= set(kills):
            return False
    return True


async def _settle(sim: MultiMapSim, leases: _Leases, engines: int, timeout: float) -> None:
    """Every map leased, at most its fair share per engine, unchanged for two seconds; every
    map streamed and its systems subscribed."""
    fair = math.ceil(len(sim.maps) / engines)
    seen: list[tuple[float, dict[str, str]]] = []

    def balanced() -> bool:
        owners = leases.owners()
        per = Counter(owners.values())
        ok = set(owners) == set(sim.maps) and len(per) == engines and max(per.values()) <= fair
        if not ok or not seen or seen[-1][1] != owners:
            seen.append((time.monotonic(), owners))
            return False
        return time.monotonic() - seen[-1][0] >= 2.0

    await _until(balanced, timeout, "every map leased, fairly and stably")
    everything = {s for entry in sim.maps.values() for s in entry.systems}

    def followed() -> bool:
        systems = {s for ids, _chars in sim.killstream.subscriptions() for s in ids}
        streams = all(entry.server.open_streams >= 1 for entry in sim.maps.values())
        return streams and everything <= systems

    await _until(followed, timeout, "every map streamed and its systems subscribed")


async def _run(
    url: DatabaseUrl, engines: int, kills: int, *, bursts: int, seed: int
) -> dict[str, Any]:
    sim = MultiMapSim(
        4, seed=seed, discord_limit=1_000_000, discord_window=1.0, channel_per_minute=None
    )
    started_engines: list[_Engine] = []
    rates: list[float] = []
    pushes: list[float] = []
    async with sim:
        leases = _Leases(url)
        try:
            with tempfile.TemporaryDirectory(prefix="wc-bench-cluster-") as tmp:
                try:
                    for name in "ab"[:engines]:
                        engine = _Engine(sim, Path(tmp), name, url)
                        started_engines.append(engine)
                        await engine.start()
                    await _settle(sim, leases, engines, timeout=90)
                    owners = leases.owners()
                    pids = leases.pids()
                    for key in sim.maps:  # the warm-up: everything wired
                        await sim.push_kill(key)
                    await _until(lambda: _delivered_all(sim), 60, "the warm-up delivered")
                    warm_messages = len(sim.discord.received)
                    keys = sorted(sim.maps)
                    for _ in range(bursts):
                        started = time.time()
                        for i in range(kills):
                            await sim.push_kill(keys[i % len(keys)])
                        pushes.append(time.time() - started)
                        await _until(lambda: _delivered_all(sim), 300, "the burst delivered")
                        rates.append(kills / max(sim.discord.received[-1].at - started, 1e-9))
                        await asyncio.sleep(0.5)  # a late repeat would show in the summary
                finally:
                    for engine in started_engines:
                        await engine.stop()
        finally:
            leases.close()
    summary = sim.summary()
    burst = sim.discord.received[warm_messages:]
    names = {engine.agent: engine.name for engine in started_engines}
    by_pid = {engine.proc.pid: engine.name for engine in started_engines if engine.proc}
    return {
        "instances": engines,
        "kills": kills,
        "bursts": bursts,
        "kills_per_second": round(statistics.median(rates), 1),
        "kills_per_second_per_burst": [round(rate, 1) for rate in rates],
        "push_seconds": [round(push, 3) for push in pushes],
        "messages": len(burst),
        "messages_by_instance": dict(
            sorted(Counter(names.get(m.headers.get("user-agent", ""), "?") for m in burst).items())
        ),
        "maps_by_instance": dict(
            sorted(Counter(by_pid.get(pids.get(o, 0), o) for o in owners.values()).items())
        ),
        "lost": sum(len(m["kills_lost"]) for m in summary.values()),
        "doubled": sum(len(m["kills_doubled"]) for m in summary.values()),
        "unexpected": sum(len(m["kills_unexpected"]) for m in summary.values()),
        "rejected_429": sim.discord.rejected_429,
    }


async def run_two_instances(
    url: DatabaseUrl,
    kills: int,
    *,
    bursts: int = 3,
    seed: int = 31,
    schema: Callable[[DatabaseUrl], contextlib.AbstractContextManager[DatabaseUrl]],
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``bursts`` bursts of ``kills`` with one engine, then with two (each configuration on a
    fresh schema ``schema`` makes)."""
    say = progress or (lambda _text: None)
    runs: dict[str, dict[str, Any]] = {}
    for engines in (1, 2):
        say(f"bench: postgresql: {kills} kills over 4 maps, {engines} instance(s) ...")
        with schema(url) as fresh:
            runs[str(engines)] = await _run(fresh, engines, kills, bursts=bursts, seed=seed)
    one, two = runs["1"], runs["2"]
    ratio = two["kills_per_second"] / one["kills_per_second"] if one["kills_per_second"] else None
    return {
        "available": True,
        "one": one,
        "two": two,
        "one_instance_kills_per_second": one["kills_per_second"],
        "two_instances_kills_per_second": two["kills_per_second"],
        "two_to_one_ratio": None if ratio is None else round(ratio, 3),
        "lost": one["lost"] + two["lost"],
        "doubled": one["doubled"] + two["doubled"] + one["unexpected"] + two["unexpected"],
        "rejected_429": one["rejected_429"] + two["rejected_429"],
        "lease_seconds": LEASE_SECONDS,
        "cpus": os.cpu_count(),
    }
