"""Chaos on a cluster: three engines on one PostgreSQL database, and everything going wrong at once.

:mod:`tests.e2e.test_cluster` kills or stalls one engine at one chosen moment against a Discord
that works. Here, while kills flow to four maps and systems are added, the fake Discord fails in
every way :class:`~tests.e2e.test_chaos.Faults` knows (runs of 500 and 502, 429s, outages, slow
answers) and, every few seconds, something happens to the cluster: an engine is killed
(SIGKILL) or stopped (SIGTERM) and started again, stalled past its lease (SIGSTOP, then SIGCONT),
or every connection of every engine to PostgreSQL is ended, as a server restart or a failover
ends them. Once it stops, every kill and every new system must reach its channel exactly once.

One seed runs in CI; ``WANDERER_CONSOLE_CHAOS_SEEDS`` runs others (as in ``test_chaos``).
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_chaos import SEEDS, Faults
from tests.e2e.test_cluster import (
    LEASE,
    Db,
    Engine,
    _assert_exactly_once,
    _burst,
    _cluster,
    _settled,
    _warm_up,
)
from tests.store.pgtest import end_connections, named_schema
from wanderer_console.sim.multimap import MultiMapSim
from wanderer_console.store.base import DatabaseUrl

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(600)]


class ReadingDb(Db):
    """The test's own reads, on a connection of its own that survives the connections ended."""

    def __init__(self, url: DatabaseUrl) -> None:
        super().__init__(url)
        self._url = url

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        import psycopg

        if self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._url.secret(), autocommit=True)
        return super().rows(sql, params)


@pytest.mark.parametrize("seed", SEEDS)
async def test_engines_killed_stalled_and_cut_from_postgresql_while_discord_fails_lose_nothing(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    sim = MultiMapSim(4, seed=seed)
    await sim.start()
    engines: list[Engine] = []
    happened: list[str] = []
    faults = Faults(sim.discord, rng)
    try:
        with named_schema() as url:
            # The engines' connections carry the schema's application name (ended together);
            # the test reads on a connection without it.
            db = ReadingDb(DatabaseUrl(url.secret().rpartition("&application_name=")[0]))
            try:
                engines, _owners = await _cluster(sim, tmp_path, url, db)
                await _warm_up(sim)
                sim.discord.answer_delay = 0.3
                chaos = asyncio.create_task(faults.run())
                burst = asyncio.create_task(_burst(sim, 30.0, rng))
                while not burst.done():
                    await asyncio.sleep(rng.uniform(1.0, 4.0))
                    engine = rng.choice(engines)
                    action = rng.choice(["kill", "term", "stall", "cut", "cut"])
                    happened.append(f"{action} {engine.name}")
                    if action == "cut":
                        end_connections(url)
                    elif action == "stall":
                        engine.signal(signal.SIGSTOP)
                        await asyncio.sleep(rng.uniform(0.5, 2 * LEASE))
                        engine.signal(signal.SIGCONT)
                    else:
                        assert engine.proc is not None
                        engine.signal(signal.SIGKILL if action == "kill" else signal.SIGTERM)
                        code = await asyncio.wait_for(engine.proc.wait(), 60)
                        if action == "term":
                            assert code == 0, engine.log.read_text()[-3000:]
                        await engine.start()
                await burst
                faults.stop()
                await chaos
                await _settled(sim, db, timeout=300)
            finally:
                faults.stop()
                for engine in engines:
                    if engine.proc is not None and engine.proc.returncode is None:
                        assert await engine.stop() == 0, engine.log.read_text()[-3000:]
                db.close()
    finally:
        for engine in engines:
            engine.kill_now()
        await sim.stop()
    assert any(a.startswith(("kill", "term")) for a in happened), happened
    assert faults.injected + faults.outages > 0, "the chaos should have made Discord fail"
    _assert_exactly_once(sim)
