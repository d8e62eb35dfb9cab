"""Hosted maps on a shared PostgreSQL database: two engines follow the map server's config live.

Two engines (two :class:`~wanderer_console.runtime.Runtime` in this process, each with its own
data directory and User-Agent) share one fresh PostgreSQL schema in hosted mode against one fake
hosted Wanderer (:class:`~wanderer_console.sim.map_host.FakeMapHost`, its notifier-config
endpoint), one fake killstream and one fake Discord. The refresh timer is an hour: each engine's
refresh is asked for by the test (:meth:`~wanderer_console.ingest.hosted.HostedMaps.refresh`),
one engine before the other, as their own timers would.

* **A map added** on the map server is leased by exactly one engine (the one that knows it, until
  the other refreshes too), streamed once, and its kill is delivered once, by that engine.
* **A map removed** is released by the engine holding it: its stream closes, its lease is free,
  nothing follows its systems and a kill in them afterwards is sent by nobody.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.e2e.hosted_services import HostedServices, hosted_services
from tests.store.pgtest import fresh_schema
from tests.support import wait_for
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.runtime import Runtime
from wanderer_console.store.base import DatabaseUrl

pytestmark = [pytest.mark.slow, pytest.mark.postgresql, pytest.mark.timeout(180)]

PLUGIN_KEY = "sim-plugin-key-0123456789"
MAP_KEY = "sim-hosted-map-key"
BOT_TOKEN = "sim-global-bot-token"
LEASE = 3.0
"""``[cluster] lease_seconds`` of both engines (heartbeats every second)."""
CHANNELS = {
    "a": "1400000000000000001",
    "b": "1400000000000000002",
    "c": "1400000000000000003",
}


@dataclass
class World(HostedServices):
    url: DatabaseUrl

    def kills_in(self, slug: str) -> list[int]:
        return [
            notice.killmail_id
            for message in self.discord.messages_for(f"channel:{CHANNELS[slug]}")
            for notice in message.notifications
            if notice.kind == "kill" and notice.killmail_id is not None
        ]

    def senders(self, slug: str) -> list[str]:
        """The User-Agent of every message in the map's channel (which engine sent it)."""
        target = f"channel:{CHANNELS[slug]}"
        return [m.headers.get("user-agent", "") for m in self.discord.messages_for(target)]

    async def push_kill(self, slug: str) -> int:
        kill = self.gen.make_killmail(system_id=self.systems[slug][0])
        await self.killstream.push_kill(kill)
        return int(kill["killmail_id"])


@pytest.fixture
async def world() -> AsyncIterator[World]:
    async with hosted_services(
        seed=5,
        served="abc",
        listed="ab",  # c is served, not yet listed in the notifier config
        channels=CHANNELS,
        map_key=MAP_KEY,
        plugin_key=PLUGIN_KEY,
    ) as services:
        with fresh_schema() as url:
            yield World(**vars(services), url=url)


def _engine(w: World, root: Path, name: str) -> Runtime:
    text = f"""
[console]
startup_suppression_seconds = 0
[discord]
api_url = "{w.discord_url}/api/v10"
bot_token = "{BOT_TOKEN}"
[esi]
enabled = false
user_agent = "wc-hosted-cluster/{name}"
[killstream]
websocket_url = "{w.killstream.url}"
[cluster]
lease_seconds = {LEASE}
[hosted]
api_key = "{PLUGIN_KEY}"
url = "{w.host_url}/some-map"
map_api_key = "{MAP_KEY}"
refresh_seconds = 3600
"""
    settings, _ = parse_settings_text(text, environ={})
    settings.store.url = SecretStr(w.url.secret())
    return Runtime(settings, data_dir=root / name)


class Cluster:
    """The two engines, and every breach of "one map, one engine" seen while polling."""

    def __init__(self, w: World, engines: dict[str, Runtime]) -> None:
        self.w = w
        self.engines = engines
        self.doubly_held: list[tuple[str, list[str]]] = []

    def holders(self, slug: str) -> list[str]:
        """The engines holding the map's lease (and sending for it) now."""
        names = [n for n, rt in self.engines.items() if slug in rt.cluster.owned()]
        if len(names) > 1:
            self.doubly_held.append((slug, names))
        return names

    def working(self, slug: str) -> str | None:
        """The one engine holding, loading and following the map (its systems subscribed),
        with the map's stream open once; else ``None``."""
        names = self.holders(slug)
        if len(names) != 1:
            return None
        rt = self.engines[names[0]]
        if slug not in rt.index.tenants():
            return None
        followed = rt.kills.following(rt.index.map(slug).systems)
        streamed = self.w.host.maps[slug].open_streams == 1
        return names[0] if followed and streamed else None

    def gone(self, slug: str) -> bool:
        """No engine holds, indexes or streams the map, and its lease is free in the database."""
        if self.holders(slug) or any(slug in rt.index.tenants() for rt in self.engines.values()):
            return False
        if self.w.host.maps[slug].open_streams:
            return False
        state = next(iter(self.engines.values())).store.cluster_state()
        return not any(
            lease.resource == f"map:{slug}" and lease.owner is not None for lease in state.leases
        )


@pytest.fixture
async def cluster(world: World, tmp_path: Path) -> AsyncIterator[Cluster]:
    engines = {name: _engine(world, tmp_path, name) for name in ("one", "two")}
    started: list[Runtime] = []
    try:
        for rt in engines.values():
            await rt.start()
            started.append(rt)
        c = Cluster(world, engines)
        await wait_for(
            lambda: (
                all(c.working(slug) for slug in "ab")
                and all(len(rt.cluster.owned()) == 1 for rt in engines.values())
            ),
            60,
            "a and b each leased, loaded, followed and streamed by one engine of its own",
        )
        yield c
    finally:
        for rt in started:
            await rt.stop()


async def _refresh(rt: Runtime) -> None:
    assert rt.hosted is not None
    result = await rt.hosted.refresh("console")
    assert result.ok, result.error


async def test_a_map_added_on_the_map_server_is_worked_by_one_engine_once(
    cluster: Cluster,
) -> None:
    w, one, two = cluster.w, cluster.engines["one"], cluster.engines["two"]
    ka, kb = await w.push_kill("a"), await w.push_kill("b")
    await wait_for(lambda: ka in w.kills_in("a") and kb in w.kills_in("b"), 30, "a, b wired")

    w.host.set_notifier_config("c", channels={"primary": CHANNELS["c"]})
    await _refresh(one)  # one knows c; two not yet (its own timer)
    assert "c" in one.settings.maps
    assert "c" not in two.settings.maps
    holder = await wait_for(lambda: cluster.working("c"), 30, "c leased and worked by one")
    assert holder == "one"  # two cannot lease a map it does not know
    await _refresh(two)
    await wait_for(
        lambda: (
            all(cluster.working(slug) for slug in "abc")
            and sorted(len(rt.cluster.owned()) for rt in (one, two)) == [1, 2]
        ),
        30,
        "the three maps shared out, one engine each",
    )
    kc = await w.push_kill("c")
    await wait_for(lambda: kc in w.kills_in("c"), 30, "c's kill delivered")
    await one.drain(10.0)
    await two.drain(10.0)
    assert w.kills_in("c") == [kc]
    owner = cluster.working("c")
    assert owner is not None
    assert w.senders("c") == [f"wc-hosted-cluster/{owner}"]
    assert w.kills_in("a") == [ka]
    assert w.kills_in("b") == [kb]
    assert cluster.doubly_held == []


async def test_a_map_removed_from_the_map_server_is_released_and_sends_nothing(
    cluster: Cluster,
) -> None:
    w, one, two = cluster.w, cluster.engines["one"], cluster.engines["two"]
    w.host.set_notifier_config("c", channels={"primary": CHANNELS["c"]})
    await _refresh(one)
    await _refresh(two)
    await wait_for(lambda: all(cluster.working(slug) for slug in "abc"), 30, "a, b, c worked")
    kc1 = await w.push_kill("c")
    await wait_for(lambda: kc1 in w.kills_in("c"), 30, "c's first kill delivered")
    holder = cluster.working("c")
    assert holder is not None
    other = "two" if holder == "one" else "one"
    # Discord down: c's next kill is refused and waits in the outbox for its retry.
    w.discord.outage = (503, {"message": "unavailable"}, {})
    kc_waiting = await w.push_kill("c")
    store = one.store

    def waiting() -> list[int]:
        return [r.id for r in store.due_outbox(1e12, tenants=["c"]) if r.attempts >= 1]

    await wait_for(waiting, 30, "c's kill refused once and pending")

    del w.host.notifier_config["c"]
    # The holder refreshes first: it releases c at once; the other, which still lists c, may
    # take it meanwhile (its own view) until its refresh drops it too.
    await _refresh(cluster.engines[holder])
    await wait_for(lambda: holder not in cluster.holders("c"), 10, "c released by its holder")
    await _refresh(cluster.engines[other])
    await wait_for(lambda: cluster.gone("c"), 30, "c released, stopped and unfollowed")
    assert all("c" not in rt.settings.maps for rt in (one, two))
    # What c left pending failed as its holder let it go (no engine would ever send it).
    assert store.due_outbox(1e12, tenants=["c"]) == []
    (failed,) = [row for row in store.failed_rows() if row.tenant_id == "c"]
    assert failed.last_error is not None
    assert "map no longer configured" in failed.last_error
    w.discord.outage = None
    followed = {s for systems, _chars in w.killstream.subscriptions() for s in systems}
    assert followed.isdisjoint(w.systems["c"])
    # A kill in c's systems, then one in a's: once a's is delivered and nothing is left to send,
    # c's went nowhere.
    kc2 = await w.push_kill("c")
    ka = await w.push_kill("a")
    await wait_for(lambda: ka in w.kills_in("a"), 30, "a's kill after c's delivered")
    await one.drain(10.0)
    await two.drain(10.0)
    assert w.kills_in("c") == [kc1]
    everywhere = [k for slug in CHANNELS for k in w.kills_in(slug)]
    assert kc2 not in everywhere
    assert kc_waiting not in everywhere
    assert w.host.maps["c"].open_streams == 0
    assert cluster.doubly_held == []


async def test_a_map_renamed_restarts_on_the_engine_holding_it_under_the_same_key(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The map server lists map c under a new slug (its owner renamed it: the same ``map_id``):
    every engine keeps its key ``c`` (kept in the shared database), the engine holding c
    restarts its feed on the new slug, under the same lease, and the other does not start it;
    an engine started after the rename, which never saw the old slug, keys it ``c`` too."""
    w, one, two = cluster.w, cluster.engines["one"], cluster.engines["two"]
    w.host.set_notifier_config("c", channels={"primary": CHANNELS["c"]})
    await _refresh(one)
    await _refresh(two)
    await wait_for(lambda: all(cluster.working(slug) for slug in "abc"), 30, "a, b, c worked")
    holder = cluster.working("c")
    assert holder is not None
    fence = cluster.engines[holder].cluster.fence("c")
    assert fence is not None

    w.host.rename_map("c", "c-renamed")
    for rt in (one, two):
        await _refresh(rt)
        assert rt.hosted is not None
        assert rt.hosted.last is not None
        assert rt.hosted.last.diff is not None
        assert rt.hosted.last.diff.as_json() == {
            "added": [],
            "removed": [],
            "changed": [],
            "restarted": ["c"],
        }
    rt = cluster.engines[holder]

    def restarted() -> bool:
        if cluster.holders("c") != [holder] or "c" not in rt.index.tenants():
            return False
        return w.host.maps["c-renamed"].open_streams == 1 and rt.kills.following(
            set(w.systems["c"])
        )

    await wait_for(restarted, 30, "c's feed restarted on the new slug by its holder")
    assert rt.settings.maps["c"].slug == "c-renamed"
    assert rt.cluster.fence("c") == fence  # the same lease: no hand-over
    kc = await w.push_kill("c")
    await wait_for(lambda: kc in w.kills_in("c"), 30, "a kill in c's systems sent")
    await one.drain(10.0)
    await two.drain(10.0)
    assert w.kills_in("c").count(kc) == 1
    assert w.senders("c") == [f"wc-hosted-cluster/{holder}"]
    assert cluster.doubly_held == []

    three = _engine(w, tmp_path, "three")
    await three.start()
    try:
        await wait_for(lambda: three.hosted is not None and three.hosted.applied, 30, "refreshed")
        assert sorted(three.settings.maps) == ["a", "b", "c"]
        assert three.settings.maps["c"].slug == "c-renamed"
    finally:
        await three.stop()
