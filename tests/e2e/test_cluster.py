"""Three engines on one PostgreSQL database: a kill -9 and a stall lose nothing and double nothing.

Each engine is a real process (``python -m wanderer_console --no-ui``) with its own data
directory, all on one fresh PostgreSQL schema (``--database``), over the multi-map simulator
(:class:`~wanderer_console.sim.multimap.MultiMapSim`: four maps, each posting to its own bot
channel, one killstream with its REST API, one fake Discord enforcing its per-route buckets and
30 messages a minute per channel). Every engine has its own User-Agent, so the fake Discord tells
who sent what. Leases last :data:`LEASE` seconds.

* **kill -9**: kills flow to every map (the busiest gets most) and systems are added on the maps;
  mid-burst the engine owning the busiest map is killed. Its maps are taken over within the
  lease time, their streams resume from the stored cursor, their kills published meanwhile are
  backfilled, and every kill and every new system reaches its channel exactly once, with at most
  one 429 (the new owner learning a bucket the dead one had used).
* **SIGSTOP**: the engine owning the busiest map is stopped mid-backlog past its lease, its maps
  are taken over, then it is resumed: from then on it sends nothing (not one request reaches
  Discord from it), and still every notification arrives exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.store.pgtest import fresh_schema
from tests.support import wait_for
from wanderer_console.sim.multimap import MultiMapSim
from wanderer_console.store.base import DatabaseUrl
from wanderer_console.store.lock import lock_holder

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(600)]

LEASE = 3.0
"""``[cluster] lease_seconds`` of every engine (heartbeats every second)."""
BUSIEST = "m1"


class Db:
    """Reads beside the engines: leases, the registry, the outbox, a cursor."""

    def __init__(self, url: DatabaseUrl) -> None:
        import psycopg

        self._conn = psycopg.connect(url.secret(), autocommit=True)

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(sql.replace("?", "%s"), params).fetchall())
        except Exception:  # tables not created yet
            return []

    def owners(self) -> dict[str, tuple[str, int]]:
        """Map -> (owner, token) of every lease held and unexpired now."""
        return {
            str(resource).removeprefix("map:"): (str(owner), int(token))
            for resource, owner, token in self.rows(
                "SELECT resource, owner, token FROM leases WHERE owner IS NOT NULL"
                " AND expires_at > extract(epoch from clock_timestamp())"
            )
        }

    def instance_pids(self) -> dict[str, int]:
        return {str(i): int(pid) for i, pid in self.rows("SELECT instance_id, pid FROM instances")}

    def outbox_statuses(self) -> dict[str, int]:
        return {
            str(s): int(n) for s, n in self.rows("SELECT status, COUNT(*) FROM outbox GROUP BY 1")
        }

    def close(self) -> None:
        self._conn.close()


class Engine:
    """One engine process: its config (own User-Agent), data directory and log file."""

    def __init__(self, sim: MultiMapSim, root: Path, name: str, url: DatabaseUrl) -> None:
        self.name = name
        self.agent = f"wc-cluster-test/{name}"
        self.data = root / name
        self.data.mkdir(parents=True)
        self.config = root / f"{name}.toml"
        self.config.write_text(sim.config_text(agent=self.agent, lease_seconds=LEASE))
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
        await wait_for(
            lambda: (h := lock_holder(self.data)) is not None and h.pid == proc.pid,
            timeout=30,
            what=f"{self.name} to take its lock",
        )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self) -> int:
        """SIGTERM and wait: the exit status (0 for a clean stop)."""
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout=60)

    def kill_now(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()

    def log_lines(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict):
                    out.append(record)
        return out


def _messages(engine: Engine) -> list[str]:
    return [str(record.get("event", "")) for record in engine.log_lines()]


async def _cluster(
    sim: MultiMapSim, root: Path, url: DatabaseUrl, db: Db
) -> tuple[list[Engine], dict[str, Engine]]:
    """Three engines started on one schema; every map leased, streamed and subscribed."""
    engines = [Engine(sim, root, name, url) for name in ("a", "b", "c")]
    for engine in engines:
        await engine.start()
    # Every map leased, at most its fair share (2 of 4) per engine, and no change for 2 s: the
    # first engine up took every map and handed its surplus over as the others joined.
    seen: list[tuple[float, dict[str, tuple[str, int]]]] = []

    def balanced() -> bool:
        owners = db.owners()
        per = Counter(owner for owner, _token in owners.values())
        fair = set(owners) == set(sim.maps) and max(per.values(), default=9) <= 2
        if not fair or not seen or seen[-1][1] != owners:
            seen.append((time.monotonic(), owners))
            return False
        return fair and time.monotonic() - seen[-1][0] >= 2.0

    await wait_for(balanced, 60, "every map leased, fairly and stably", interval=0.1)
    everything = {s for entry in sim.maps.values() for s in entry.systems}

    def followed() -> bool:
        systems = {s for ids, _chars in sim.killstream.subscriptions() for s in ids}
        streams = all(entry.server.open_streams >= 1 for entry in sim.maps.values())
        return streams and everything <= systems

    await wait_for(followed, 60, "every map streamed and its systems subscribed")
    by_pid = {engine.pid: engine for engine in engines}
    pids = db.instance_pids()
    owners = {tenant: by_pid[pids[owner]] for tenant, (owner, _token) in db.owners().items()}
    return engines, owners


async def _warm_up(sim: MultiMapSim) -> None:
    """A kill and a new system on every map, delivered: everything is wired."""
    for key in sim.maps:
        await sim.push_kill(key)
        sim.add_system(key)
    await wait_for(lambda: _all_delivered(sim), 60, "the warm-up delivered")


def _all_delivered(sim: MultiMapSim) -> bool:
    for key, entry in sim.maps.items():
        kills, systems = sim.delivered(key)
        if not set(entry.kills) <= set(kills) or len(systems) < len(entry.added_systems):
            return False
    return True


def _assert_exactly_once(sim: MultiMapSim) -> None:
    summary = sim.summary()
    for key, figures in summary.items():
        assert figures["kills_lost"] == [], (key, summary)
        assert figures["kills_doubled"] == [], (key, summary)
        assert figures["kills_unexpected"] == [], (key, summary)
        assert figures["systems_delivered"] == figures["systems"], (key, summary)
        assert figures["systems_doubled"] == 0, (key, summary)


async def _burst(sim: MultiMapSim, seconds: float, rng: random.Random) -> None:
    """Kills on every map (the busiest gets most) and new systems, for ``seconds``."""
    deadline = time.monotonic() + seconds
    round_ = 0
    while time.monotonic() < deadline:
        await sim.push_kill(BUSIEST)
        await sim.push_kill(BUSIEST)
        if round_ % 2 == 0:
            await sim.push_kill(rng.choice(sorted(sim.maps)))
        if round_ % 10 == 0:
            sim.add_system(rng.choice(sorted(sim.maps)))
        round_ += 1
        await asyncio.sleep(0.2)


async def _settled(sim: MultiMapSim, db: Db, timeout: float = 240.0) -> None:
    await wait_for(lambda: _all_delivered(sim), timeout, "every notification delivered")
    await wait_for(
        lambda: set(db.outbox_statuses()) == {"sent"}, 60, "the outbox all sent", interval=0.2
    )


async def test_kill_9_of_the_busiest_maps_owner_mid_burst_loses_and_doubles_nothing(
    tmp_path: Path,
) -> None:
    rng = random.Random(23)
    sim = MultiMapSim(4, seed=23)
    await sim.start()
    engines: list[Engine] = []
    try:
        with fresh_schema() as url:
            db = Db(url)
            try:
                engines, owners = await _cluster(sim, tmp_path, url, db)
                await _warm_up(sim)
                victim = owners[BUSIEST]
                before = db.owners()
                orphaned = sorted(t for t, engine in owners.items() if engine is victim)
                cursors: dict[str, str] = {}
                sim.discord.answer_delay = 0.5  # a post is answered half a second after it
                burst = asyncio.create_task(_burst(sim, 8.0 + LEASE, rng))
                await asyncio.sleep(3.0)  # mid-burst
                # Mid-request: the victim's next post to the busiest channel was just accepted
                # and waits for its answer, so its outcome is unknown to the victim.
                posted = sim.senders(BUSIEST)[victim.agent]
                await wait_for(
                    lambda: sim.senders(BUSIEST)[victim.agent] > posted, 30, "a post in flight"
                )
                victim.signal(signal.SIGKILL)
                killed_wall = time.time()
                assert victim.proc is not None
                await victim.proc.wait()
                # When the dead engine's leases run out, on the database's clock (the only clock
                # leases are stamped with): nobody renews them any more.
                expiry = {
                    str(resource).removeprefix("map:"): float(expires_at)
                    for resource, expires_at in db.rows("SELECT resource, expires_at FROM leases")
                }
                # Where the dead engine's streams stopped: nobody writes these until a new
                # owner reads on from them.
                for tenant in orphaned:
                    cursors[tenant] = str(
                        db.rows("SELECT value FROM cursors WHERE stream = ?", (f"sse:{tenant}",))[
                            0
                        ][0]
                    )

                def taken() -> bool:
                    now = db.owners()
                    return all(
                        t in now and now[t][1] > before[t][1] and now[t][0] != before[t][0]
                        for t in orphaned
                    )

                await wait_for(taken, LEASE + 10, "the orphaned maps taken over", interval=0.05)
                acquired = {
                    str(resource).removeprefix("map:"): float(at)
                    for resource, at in db.rows("SELECT resource, acquired_at FROM leases")
                }
                takeover = {t: acquired[t] - expiry[f"{t}"] for t in orphaned}
                await burst
                await _settled(sim, db)
            finally:
                for engine in engines:
                    if engine.proc is not None and engine.proc.returncode is None:
                        assert await engine.stop() == 0, engine.log.read_text()[-3000:]
                db.close()
    finally:
        for engine in engines:
            engine.kill_now()
        await sim.stop()
    # Taken over as the dead engine's leases ran out, not at the next heartbeat (a third of
    # LEASE) or later: the others sleep until the expiry they read. Both stamps are the
    # database's clock, so the test's own pace (the kill, its polling) is not measured.
    assert all(0 <= late < LEASE / 3 for late in takeover.values()), takeover
    # Every kill and every new system reached its channel once: 0 lost, 0 doubled.
    _assert_exactly_once(sim)
    # The new owner's stream resumed from the stored cursor (the dead engine's last write).
    for tenant in orphaned:
        server = sim.maps[tenant].server
        resumed = [c for c in server.connect_log if c["at"] >= killed_wall]
        assert resumed, tenant
        assert resumed[0]["last_event_id"] == cursors[tenant], (resumed[0], cursors)
        assert resumed[0]["last_event_id"] in {e["id"] for e in server.events}
    # The post in flight at the kill was re-sent by the new owner under its nonce: Discord
    # answered with the original message instead of posting it again.
    assert sim.discord.nonce_replays >= 1
    # Discord's buckets: at most the first 429, learning what the dead engine had used.
    assert sim.discord.rejected_429 <= 1, sim.discord.rejected_429
    # The dead engine's maps were delivered by the others after the kill.
    assert all(set(sim.senders(t)) - {victim.agent} for t in orphaned)


async def test_an_engine_stalled_past_its_lease_sends_nothing_once_resumed(
    tmp_path: Path,
) -> None:
    sim = MultiMapSim(4, seed=41)
    await sim.start()
    engines: list[Engine] = []
    try:
        with fresh_schema() as url:
            db = Db(url)
            try:
                engines, owners = await _cluster(sim, tmp_path, url, db)
                await _warm_up(sim)
                stalled = owners[BUSIEST]
                before = db.owners()
                orphaned = sorted(t for t, engine in owners.items() if engine is stalled)
                # A backlog on the busiest map: its owner paces it out over ~20 s.
                for _ in range(90):
                    await sim.push_kill(BUSIEST)
                sim.discord.answer_delay = 0.5
                await wait_for(
                    lambda: sim.senders(BUSIEST)[stalled.agent] >= 3, 60, "the backlog started"
                )
                posted = sim.senders(BUSIEST)[stalled.agent]
                await wait_for(
                    lambda: sim.senders(BUSIEST)[stalled.agent] > posted, 30, "a post in flight"
                )
                stalled.signal(signal.SIGSTOP)  # mid-request, mid-backlog
                for key in sim.maps:
                    await sim.push_kill(key)

                def taken() -> bool:
                    now = db.owners()
                    return all(t in now and now[t][1] > before[t][1] for t in orphaned)

                await wait_for(taken, LEASE + 10, "the stalled engine's maps taken over")
                await asyncio.sleep(1.0)
                resumed_at = time.time()
                stalled.signal(signal.SIGCONT)
                for key in sim.maps:
                    await sim.push_kill(key)
                    sim.add_system(key)
                await _settled(sim, db)
                # Back in the registry, alive again, and working none of the maps it lost.
                pids = db.instance_pids()
                await wait_for(
                    lambda: stalled.pid in set(pids.values()) and len(db.owners()) == 4, 30, "ok"
                )
            finally:
                for engine in engines:
                    if engine.proc is not None and engine.proc.returncode is None:
                        assert await engine.stop() == 0, engine.log.read_text()[-3000:]
                db.close()
    finally:
        for engine in engines:
            engine.kill_now()
        await sim.stop()
    late = [r for r in sim.requests if r.user_agent == stalled.agent and r.at >= resumed_at]
    assert late == [], late  # fenced: not one request after it lost its leases
    messages = _messages(stalled)
    assert any("map lease lost" in m for m in messages), messages[-50:]
    _assert_exactly_once(sim)
    assert sim.discord.rejected_429 <= 1, sim.discord.rejected_429
