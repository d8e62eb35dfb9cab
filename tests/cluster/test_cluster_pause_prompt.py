"""A cluster's pause holds the other engines at once, not at their next lease heartbeat.

Two engines share one fresh PostgreSQL schema over the multi-map simulator (two maps, one each),
with a lease so long (``lease_seconds`` 600: a heartbeat every 200 s) that no heartbeat comes
during a test after the maps are shared out: whatever an engine does about a pause sent to the
other, it does without one. Work queued on an engine after the cluster was paused elsewhere is
held; a resume sent to either engine lets both send.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.store.pgtest import fresh_schema
from tests.support import wait_for
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim.multimap import MultiMapSim
from wanderer_console.store.base import DatabaseUrl

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(180)]

LEASE = 600.0
"""``[cluster] lease_seconds``: a heartbeat every 200 s, none during a test once shared out."""
ALICE = "tui:alice@laptop via socket"


class Pair:
    """The simulator and the two engines on the shared database."""

    def __init__(self, sim: MultiMapSim, one: Runtime, two: Runtime) -> None:
        self.sim, self.one, self.two = sim, one, two

    def key_of(self, rt: Runtime) -> str:
        (key,) = rt.cluster.owned()
        return key

    def delivered(self, kill: int) -> int:
        return sum(self.sim.delivered(key)[0][kill] for key in self.sim.maps)

    def stored(self, kill: int) -> bool:
        return self.one.store.has_event("*", f"kill:{kill}")


def _engine(sim: MultiMapSim, url: DatabaseUrl, root: Path, name: str) -> Runtime:
    text = sim.config_text(agent=f"wc-pause-prompt/{name}", lease_seconds=LEASE)
    settings, _ = parse_settings_text(text, environ={})
    settings.store.url = SecretStr(url.secret())
    return Runtime(settings, data_dir=root / name)


def _shared_out(engines: list[Runtime], keys: set[str]) -> bool:
    """Each engine holds, loads and follows one map of its own. The engines are woken to
    heartbeat (and balance) at every look: their own heartbeats are 200 s apart."""
    for rt in engines:
        rt.cluster.wake()
    owned = [rt.cluster.owned() for rt in engines]
    if sorted(key for keys_held in owned for key in keys_held) != sorted(keys):
        return False
    return all(
        len(held) == 1
        and held[0] in rt.index.tenants()
        and rt.kills.following(rt.index.map(held[0]).systems)
        for rt, held in zip(engines, owned, strict=True)
    )


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with MultiMapSim(2, seed=9, discord_limit=100) as sim:
        with fresh_schema() as url:
            engines: list[Runtime] = []
            try:
                for name in ("one", "two"):
                    rt = _engine(sim, url, tmp_path, name)
                    engines.append(rt)
                    await rt.start()
                await wait_for(
                    lambda: _shared_out(engines, set(sim.maps)), 60, "each engine given a map"
                )
                yield Pair(sim, *engines)
            finally:
                for rt in engines:
                    if rt.ready.is_set():
                        await rt.stop()
                    else:
                        rt.store.close()
                        rt.lock.release()


async def test_work_queued_after_a_pause_elsewhere_is_held_and_a_resume_lets_both_send(
    pair: Pair,
) -> None:
    sim, one, two = pair.sim, pair.one, pair.two
    key_one, key_two = pair.key_of(one), pair.key_of(two)
    wired = [await sim.push_kill(key_one), await sim.push_kill(key_two)]
    await wait_for(lambda: all(pair.delivered(k) for k in wired), 30, "both maps wired")

    assert (await one.console.set_paused(True, actor=ALICE)).ok
    held = await sim.push_kill(key_two)  # two's map, two's work: two was not told directly
    await wait_for(
        lambda: pair.delivered(held) or (pair.stored(held) and two.dispatcher.paused),
        30,
        "two to send the kill or hold it under the cluster's pause",
    )
    assert not pair.delivered(held)
    assert two.hold.pause is not None
    assert two.hold.pause.cluster
    assert (await two.console.snapshot()).delivery.paused

    assert (await one.console.set_paused(False, actor=ALICE)).ok
    await wait_for(lambda: pair.delivered(held), 30, "two to send what it held")
    after = [await sim.push_kill(key_one), await sim.push_kill(key_two)]
    await wait_for(lambda: all(pair.delivered(k) for k in after), 30, "both engines to send")
    assert [pair.delivered(k) for k in [*wired, held, *after]] == [1, 1, 1, 1, 1]


async def test_a_pause_reaches_an_idle_engine_and_a_resume_on_it_resumes_the_other(
    pair: Pair,
) -> None:
    """Nothing to send on the other engine: it learns of the pause all the same (its console
    and ``/ready`` say it), and a resume sent to it lifts the pause on the first."""
    sim, one, two = pair.sim, pair.one, pair.two
    assert (await one.console.set_paused(True, actor=ALICE)).ok
    await wait_for(lambda: two.dispatcher.paused, 30, "two to follow the cluster's pause")
    assert any(f"paused by {ALICE}" in r for r in two.readiness().reasons)

    assert (await two.console.set_paused(False, actor=ALICE)).ok
    await wait_for(lambda: not one.dispatcher.paused, 30, "one to follow the resume")
    sent = [await sim.push_kill(pair.key_of(one)), await sim.push_kill(pair.key_of(two))]
    await wait_for(lambda: all(pair.delivered(k) for k in sent), 30, "both engines to send")
