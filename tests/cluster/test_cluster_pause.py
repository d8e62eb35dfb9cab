"""An operator's pause on a shared PostgreSQL database holds every engine, and a resume on any
engine resumes them all.

Two engines (two :class:`~wanderer_console.runtime.Runtime` in this process, each with its own
data directory and User-Agent) share one fresh PostgreSQL schema over the multi-map simulator (two
maps, one each). The pause is sent to one engine; the other follows it at its next heartbeat, a
map taken over from the paused engine stays held, an engine started meanwhile starts paused, and
the resume sent to another engine delivers what was held, each kill once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.store.pgtest import fresh_schema
from tests.support import wait_for
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.delivery.hold import PAUSE_FILE
from wanderer_console.runtime import Runtime
from wanderer_console.sim.multimap import MultiMapSim
from wanderer_console.store.base import DatabaseUrl

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(180)]

LEASE = 3.0
"""``[cluster] lease_seconds`` of every engine (heartbeats every second)."""
ALICE = "tui:alice@laptop via socket"


class Cluster:
    """The simulator, the shared database and the engines started on it."""

    def __init__(self, sim: MultiMapSim, url: DatabaseUrl, root: Path) -> None:
        self.sim, self.url, self.root = sim, url, root
        self.engines: dict[str, Runtime] = {}

    def engine(self, name: str) -> Runtime:
        """A new engine on the shared database (not started)."""
        text = self.sim.config_text(agent=f"wc-cluster-pause/{name}", lease_seconds=LEASE)
        settings, _ = parse_settings_text(text, environ={})
        settings.store.url = SecretStr(self.url.secret())
        self.engines[name] = rt = Runtime(settings, data_dir=self.root / name)
        return rt

    def holder(self, key: str) -> Runtime | None:
        """The one engine holding, loading and following map ``key``, if one does."""
        holders = [rt for rt in self.engines.values() if key in rt.cluster.owned()]
        if len(holders) != 1:
            return None
        rt = holders[0]
        if key not in rt.index.tenants() or not rt.kills.following(rt.index.map(key).systems):
            return None
        return rt

    async def stop(self, name: str) -> None:
        """Stop an engine gracefully; it is no longer one of the cluster's."""
        await self.engines.pop(name).stop()

    def stored(self, kill: int) -> bool:
        rt = next(iter(self.engines.values()))
        return rt.store.has_event("*", f"kill:{kill}")

    def delivered(self, kill: int) -> int:
        return sum(self.sim.delivered(key)[0][kill] for key in self.sim.maps)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with MultiMapSim(2, seed=9, discord_limit=100) as sim:
        with fresh_schema() as url:
            c = Cluster(sim, url, tmp_path)
            started: list[Runtime] = []
            try:
                for name in ("one", "two"):
                    rt = c.engine(name)
                    await rt.start()
                    started.append(rt)
                await wait_for(
                    lambda: {c.holder(k) for k in sim.maps} == set(started),
                    60,
                    "each map leased, loaded and followed by an engine of its own",
                )
                yield c
            finally:
                for rt in c.engines.values():
                    if rt.ready.is_set():
                        await rt.stop()
                    else:  # built, never started
                        rt.store.close()
                        rt.lock.release()


async def test_a_pause_on_one_engine_holds_every_engine_until_resumed_on_another(
    cluster: Cluster,
) -> None:
    sim = cluster.sim
    one, two = cluster.engines["one"], cluster.engines["two"]
    key_one = next(k for k in sim.maps if cluster.holder(k) is one)
    key_two = next(k for k in sim.maps if cluster.holder(k) is two)
    wired = [await sim.push_kill(key_one), await sim.push_kill(key_two)]
    await wait_for(lambda: all(cluster.delivered(k) for k in wired), 30, "both maps wired")

    result = await one.console.set_paused(True, actor=ALICE)
    assert result.ok, result.message
    assert "every engine" in result.message
    assert not (one.data_dir / PAUSE_FILE).exists()  # the database keeps it, not one engine
    # The other engine follows at its next heartbeat.
    await wait_for(lambda: two.dispatcher.paused, 10, "two to follow the cluster's pause")
    followed = (await two.console.snapshot()).delivery
    assert followed.paused
    assert followed.pause_cluster is True  # the console and the bot can say it holds every engine
    (reason,) = [r for r in two.readiness().reasons if "paused by" in r]
    assert f"paused by {ALICE}" in reason
    assert "every engine" in reason

    held = [await sim.push_kill(key_two), await sim.push_kill(key_one)]
    await wait_for(lambda: all(cluster.stored(k) for k in held), 30, "the held kills stored")
    assert not any(cluster.delivered(k) for k in held)

    # The paused engine stops: its map goes to the other engine, which still holds it back.
    await cluster.stop("one")
    await wait_for(lambda: cluster.holder(key_one) is two, 30, "two to take one's map over")
    assert not any(cluster.delivered(k) for k in held)

    # An engine started while the cluster is paused is paused before its dispatcher runs.
    three = cluster.engine("three")
    assert three.dispatcher.paused
    await three.start()
    assert three.dispatcher.paused

    result = await two.console.set_paused(False, actor=ALICE)
    assert result.ok, result.message
    await wait_for(lambda: all(cluster.delivered(k) for k in held), 30, "the held kills sent")
    await wait_for(lambda: not three.dispatcher.paused, 10, "three to follow the resume")
    await wait_for(
        lambda: not {"pending", "sending"} & set(two.store.outbox_counts()), 30, "outbox settled"
    )
    assert [cluster.delivered(k) for k in [*wired, *held]] == [1, 1, 1, 1]
    assert not any("paused by" in r for r in three.readiness().reasons)


async def test_an_engine_whose_heartbeat_the_database_refuses_keeps_the_pause_it_last_read(
    cluster: Cluster,
) -> None:
    """A database that refuses one engine's heartbeat (a trigger on the registry, counting each
    refusal in a sequence, which a rollback does not undo): that engine keeps the pause it last
    read through a resume elsewhere, and follows the resume once its heartbeat goes through."""
    import psycopg

    one, two = cluster.engines["one"], cluster.engines["two"]
    assert (await one.console.set_paused(True, actor=ALICE)).ok
    await wait_for(lambda: two.dispatcher.paused, 10, "two to follow the cluster's pause")
    with psycopg.connect(cluster.url.secret(), autocommit=True) as db:
        db.execute("CREATE SEQUENCE refused")
        db.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " PERFORM nextval('refused'); RAISE EXCEPTION 'heartbeat refused'; END $$"
        )
        db.execute(
            "CREATE TRIGGER refuse_two BEFORE INSERT OR UPDATE ON instances FOR EACH ROW"
            f" WHEN (NEW.instance_id = '{two.cluster.instance_id}') EXECUTE FUNCTION refuse()"
        )

        def refusals() -> int:
            row = db.execute("SELECT last_value, is_called FROM refused").fetchone()
            return int(row[0]) if row is not None and row[1] else 0

        await wait_for(lambda: refusals() >= 1, 10, "two's heartbeat refused")
        assert (await one.console.set_paused(False, actor=ALICE)).ok
        seen = refusals()
        await wait_for(lambda: refusals() >= seen + 2, 10, "two's heartbeats refused since")
        assert two.dispatcher.paused  # its last read said paused; it has read nothing since
        db.execute("DROP TRIGGER refuse_two ON instances")
    await wait_for(lambda: not two.dispatcher.paused, 10, "two to follow the resume")
