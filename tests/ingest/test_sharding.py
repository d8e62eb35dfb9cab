"""Killstream sharding: a subscription larger than one socket's limits, over several sockets.

The fake killstream enforces small limits here (50 systems, 100 characters per socket), as the
real server enforces 10,000 and 50,000: an over-limit join is refused, an over-limit subscribe
crashes the channel. Every tracked id must be followed by exactly one socket, and a kill in a
system that moves between sockets (while the sockets are consolidated after systems leave) must
reach the pipeline exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import wait_for
from wanderer_console.config.model import Settings
from wanderer_console.domain.tracking import TrackedCharacter, TrackedSystem, TrackingIndex
from wanderer_console.http.factory import build_client
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.ingest.kill_sources import (
    KillSources,
    ShardLimits,
    ShardPlan,
    learned_limit,
)
from wanderer_console.ingest.killstream import Mode, over_limit
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(60)

SYSTEMS = [30_000_001 + i for i in range(130)]
"""130 systems: three sockets at 50 each."""
CHARACTERS = [2_112_000_001 + i for i in range(250)]
"""250 characters: three sockets at 100 each."""


# -- the plan, without I/O ----------------------------------------------------------------------


def _check_exactly_once(plan: ShardPlan, wanted: set[int]) -> None:
    owned = [i for shard in plan.shards for i in shard.ids]
    assert Counter(owned) == Counter(wanted)  # every id owned by exactly one socket
    assert all(shard.load <= plan.limit for shard in plan.shards)
    assert all(plan.owner[i].ids >= {i} for i in wanted)


def test_a_subscription_over_the_limit_is_split_and_each_id_placed_once() -> None:
    plan = ShardPlan(50)
    plan.sync(set(SYSTEMS))
    assert [len(s.ids) for s in plan.shards] == [50, 50, 30]
    _check_exactly_once(plan, set(SYSTEMS))
    # Growth goes to the socket with room, then a new one.
    more = set(SYSTEMS) | {30_001_000 + i for i in range(25)}
    plan.sync(more)
    assert [len(s.ids) for s in plan.shards] == [50, 50, 50, 5]
    _check_exactly_once(plan, more)


def test_shrinking_drains_the_last_socket_and_releases_only_confirmed_moves() -> None:
    plan = ShardPlan(50)
    plan.sync(set(SYSTEMS))
    last = plan.shards[-1]
    moving = sorted(last.ids)
    # 60 systems leave the first two sockets: 70 left fit in two sockets at 75 % (75).
    wanted = set(SYSTEMS[60:])
    plan.sync(wanted)
    assert last.draining
    assert not last.ids
    assert last.held == set(moving)  # still followed here until the new sockets confirm
    _check_exactly_once(plan, wanted)
    assert all(shard.load <= plan.limit for shard in plan.shards)
    # Nothing confirmed: nothing released, nothing closed.
    assert plan.release(lambda shard: set()) == []
    assert plan.closable() == []
    # Half confirmed: that half released.
    half = set(moving[: len(moving) // 2])
    assert plan.release(lambda shard: shard.ids & half) == [last]
    assert last.held == set(moving) - half
    assert plan.closable() == []
    plan.release(lambda shard: set(shard.ids))
    assert plan.closable() == [last]
    assert len(plan.shards) == 2
    _check_exactly_once(plan, wanted)


def test_no_flapping_at_the_boundary() -> None:
    plan = ShardPlan(50)
    plan.sync(set(SYSTEMS[:51]))
    assert len(plan.shards) == 2
    plan.sync(set(SYSTEMS[:50]))
    assert len(plan.shards) == 2
    assert not plan.shards[-1].draining
    plan.sync(set(SYSTEMS[:37]))
    assert plan.shards[-1].draining


@pytest.mark.parametrize(
    ("mode", "reason", "expected"),
    [
        ("systems", "[validation:too_many_systems] Too many systems: 80 (max: 50)", (True, 50)),
        ("systems", "[validation:too_many_systems] Too many systems", (True, None)),
        (
            "characters",
            "[validation:too_many_characters] Too many characters: 9 (max: 4)",
            (True, 4),
        ),
        ("systems", "[validation:invalid_system_ids] Invalid system IDs: 0", (False, None)),
        ("characters", "[validation:too_many_systems] Too many systems: 3 (max: 2)", (False, None)),
        ("systems", "join crashed", (False, None)),
    ],
)
def test_a_refusal_over_the_servers_limit_is_told_from_any_other(
    mode: Mode, reason: str, expected: tuple[bool, int | None]
) -> None:
    assert over_limit(mode, {"reason": reason}) == expected
    assert over_limit(mode, "not an object") == (False, None)


def test_the_limit_learned_is_the_stated_one_else_half_the_refused_join_above_a_floor() -> None:
    assert learned_limit(80, 80, 50, floor=1) == 50
    assert learned_limit(80, 60, None, floor=1) == 30  # no limit stated: half the join
    assert learned_limit(80, 60, None, floor=40) == 40
    assert learned_limit(50, 80, 50, floor=1) is None  # already learned (a second refusal)
    assert learned_limit(40, 60, None, floor=1) is None  # a holding socket: nothing new
    assert learned_limit(40, 60, 30, floor=1) == 30  # ...unless the server says less
    assert learned_limit(10, 10, None, floor=10) is None  # at the floor: refused as before
    assert learned_limit(80, 80, 0, floor=1) is None  # under the floor: no sockets to fit
    assert learned_limit(80, 80, 5, floor=10) is None


def test_a_lower_limit_moves_only_the_excess_and_holds_only_what_was_followed() -> None:
    plan = ShardPlan(80)
    plan.sync(set(SYSTEMS))
    first, second = plan.shards
    joined = set(first.ids)  # the first socket's server confirmed its join; the second's refused
    plan.lower(40, lambda shard: joined if shard is first else set())
    assert plan.limit == 40
    assert first.ids == set(SYSTEMS[:40])
    assert first.held == set(SYSTEMS[40:80])  # followed until their new socket confirms them
    assert second.ids == set(SYSTEMS[80:120])
    assert not second.held
    assert [len(s.ids) for s in plan.shards] == [40, 40, 40, 10]
    assert plan.release(lambda shard: set(shard.ids)) == [first]
    _check_exactly_once(plan, set(SYSTEMS))


_STEP = st.one_of(
    st.tuples(st.just("sync"), st.sets(st.sampled_from(SYSTEMS[:90]))),
    st.tuples(st.just("apply"), st.sets(st.sampled_from(SYSTEMS[:90]), max_size=12)),
    st.tuples(st.just("consolidate"), st.none()),
    st.tuples(st.just("lower"), st.integers(5, 40)),
    st.tuples(st.just("release"), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_STEP, max_size=14))
def test_a_socket_comparing_only_the_touched_ids_follows_what_its_shard_wants(
    steps: list[tuple[str, object]],
) -> None:
    """Each socket compares only the ids its shard noted as touched (every id after its join):
    whatever the plan does (tracking synced or changed in part, consolidation, a lower limit,
    moves released), that keeps each socket following exactly its shard's desired ids. A change
    of ``ids`` or ``held`` that did not note its ids would leave a socket behind here."""
    plan = ShardPlan(30)
    wanted: set[int] = set()
    followed: dict[int, set[int]] = {}  # id(shard) -> what its socket follows

    def follow() -> None:
        for shard in plan.shards:
            touched = shard.take_touched()
            mine = followed.get(id(shard))
            if mine is None:  # a new socket: its join carries everything
                followed[id(shard)] = set(shard.desired())
                continue
            desired = shard.desired()
            mine |= {i for i in touched if i in desired}
            mine -= {i for i in touched if i not in desired}
            assert mine == desired

    for step, arg in steps:
        if step == "sync":
            assert isinstance(arg, set)
            wanted = arg
            plan.sync(wanted)
        elif step == "apply":
            assert isinstance(arg, set)
            wanted = wanted ^ arg  # these ids start or stop being tracked
            plan.apply(arg, wanted.__contains__)
        elif step == "consolidate":
            plan.consolidate()
        elif step == "lower":
            assert isinstance(arg, int)
            if arg < plan.limit:
                plan.lower(arg, lambda shard: followed.get(id(shard), set()))
        else:
            plan.release(lambda shard: followed.get(id(shard), set()))
        for closed in plan.closable():  # its socket closes (and its id may be reused)
            followed.pop(id(closed), None)
        follow()
    plan.release(lambda shard: shard.desired())  # every move confirmed: nothing held any more
    follow()
    _check_exactly_once(plan, wanted)


# -- real sockets against the fake killstream ------------------------------------------------------


@dataclass
class Rig:
    """KillSources with small limits over a fake killstream enforcing the same."""

    server: FakeKillstream
    kills: KillSources
    index: TrackingIndex
    metrics: Metrics
    items: list[KillItem] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def subscribed(self, kind: int) -> Counter[int]:
        """How many joined sockets follow each id (``kind`` 0: systems, 1: characters)."""
        return Counter(i for sub in self.server.subscriptions() for i in sub[kind])

    def settled(self) -> bool:
        """Every socket connected, every tracked id followed once, no move in progress."""
        sockets = list(self.kills.sockets.values())
        plans = self.kills.plans.values()
        return (
            bool(sockets)
            and all(s.health.state is ConnectionState.CONNECTED for s in sockets)
            and all(not shard.held for plan in plans for shard in plan.shards)
            and self.server.joined_clients == len(sockets)
            and self.subscribed(0) == Counter(self.index.all_system_ids())
            and self.subscribed(1) == Counter(self.index.all_character_ids())
        )


@contextlib.asynccontextmanager
async def _rig(tmp_path: Path) -> AsyncIterator[Rig]:
    server = FakeKillstream(max_systems=50, max_characters=100)
    await server.start()
    metrics = Metrics()
    index = TrackingIndex()
    store = SqliteStore(tmp_path / "events.db")
    settings = Settings(killstream={"websocket_url": server.url, "rest_url": "http://127.0.0.1:9"})
    rig: Rig | None = None

    async def sink(item: Item) -> None:
        assert isinstance(item, KillItem)
        assert rig is not None
        rig.items.append(item)

    def spawn(name: str, factory: Callable[[], Awaitable[None]]) -> None:
        assert rig is not None
        rig.tasks.append(asyncio.create_task(factory(), name=name))  # type: ignore[arg-type]

    kills = KillSources(
        lambda: settings,
        index,
        store,
        sink,
        metrics,
        client=lambda service: build_client(service, metrics=metrics),
        spawn=spawn,
        resume_from=None,
        mark_seen=lambda at: None,
    )
    kills.limits = ShardLimits(systems=50, characters=100)
    kills.started = True
    rig = Rig(server, kills, index, metrics)
    try:
        yield rig
    finally:
        for task in rig.tasks:
            task.cancel()
        await asyncio.gather(*rig.tasks, return_exceptions=True)
        await server.stop()
        store.close()


def _track(index: TrackingIndex, maps: int, systems: list[int], characters: list[int]) -> None:
    """``maps`` maps over overlapping slices (shared hubs and pilots), as real groups overlap."""
    for n in range(maps):
        lo, hi = n * len(systems) // (maps + 1), (n + 2) * len(systems) // (maps + 1)
        clo, chi = n * len(characters) // (maps + 1), (n + 2) * len(characters) // (maps + 1)
        index.replace(
            f"map{n}",
            [TrackedSystem(s) for s in systems[lo:hi]],
            [TrackedCharacter(c) for c in characters[clo:chi]],
        )


async def test_every_tracked_id_is_followed_by_exactly_one_socket(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        _track(rig.index, 5, SYSTEMS, CHARACTERS)
        rig.kills.tracking_changed()
        await wait_for(rig.settled, what="sockets joined, every id once")
        assert sorted(rig.kills.sockets) == [
            "characters:1",
            "characters:2",
            "characters:3",
            "systems:1",
            "systems:2",
            "systems:3",
        ]
        names = sorted(s.health.name for s in rig.kills.sockets.values())
        assert names[0] == "killstream:characters:1"
        assert names[-1] == "killstream:systems:3"
        for systems, characters in rig.server.subscriptions():
            assert len(systems) <= 50
            assert len(characters) <= 100
            assert not (systems and characters)  # a socket follows one kind of id
        assert rig.server.refused_joins == 0
        assert rig.server.limit_crashes == 0

        # Maps come and go: systems and characters added and removed, each still followed once.
        rig.index.drop("map0")
        extra = [30_002_000 + i for i in range(40)]
        rig.index.replace("map9", [TrackedSystem(s) for s in extra], [TrackedCharacter(9_0000_001)])
        rig.kills.tracking_changed()
        await wait_for(rig.settled, what="resubscribed after maps changed")
        assert rig.server.refused_joins == 0
        assert rig.server.limit_crashes == 0


async def test_one_socket_per_mode_keeps_the_plain_names(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        _track(rig.index, 2, SYSTEMS[:30], CHARACTERS[:40])
        rig.kills.tracking_changed()
        await wait_for(rig.settled)
        assert sorted(rig.kills.sockets) == ["characters", "systems"]
        assert {s.health.name for s in rig.kills.sockets.values()} == {
            "killstream:characters",
            "killstream:systems",
        }


async def test_a_kill_in_a_system_moving_between_sockets_is_delivered_once(
    tmp_path: Path,
) -> None:
    gen = DataGenerator(5)
    async with _rig(tmp_path) as rig:
        server = rig.server
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS], [])
        rig.kills.tracking_changed()
        await wait_for(rig.settled)
        plan = rig.kills.plans["systems"]
        assert len(plan.shards) == 3
        last = rig.kills.sockets["systems:3"]
        moving = sorted(plan.shards[-1].ids)
        target = moving[0]

        # A slow server: a subscribe takes effect at once but is confirmed 0.3 s later, so the
        # moving systems are followed by both sockets for that long.
        server.subscribe_reply_delay = 0.3
        # Systems leave the first sockets: the rest fit in two, the last socket drains into them.
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS[60:]], [])
        rig.kills.tracking_changed()
        assert plan.shards[-1].draining
        assert target in plan.shards[-1].held

        def followers() -> int:
            return sum(1 for systems, _ in server.subscriptions() if target in systems)

        await wait_for(lambda: followers() == 2, what="the moving system on both sockets")
        during = gen.make_killmail(system_id=target)
        assert await server.push_kill(during) == 2  # both sockets got it (each twice, too)
        await wait_for(lambda: followers() == 1, what="the old socket released it")
        after = gen.make_killmail(system_id=target)
        assert await server.push_kill(after) == 1
        await wait_for(rig.settled, what="consolidated into two sockets")
        assert last.stopped
        assert sorted(rig.kills.sockets) == ["systems:1", "systems:2"]

        await wait_for(lambda: {during["killmail_id"], after["killmail_id"]} <= _ids(rig))
        await asyncio.sleep(0.2)  # any late copy would arrive by now
        seen = Counter(item.killmail.killmail_id for item in rig.items)
        assert seen[during["killmail_id"]] == 1
        assert seen[after["killmail_id"]] == 1
        assert server.refused_joins == 0
        assert server.limit_crashes == 0
        # Every moved system was followed throughout: none was ever followed by no socket.
        assert plan.moves == len(moving)


def _ids(rig: Rig) -> set[int]:
    return {item.killmail.killmail_id for item in rig.items}


def _limit_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.getMessage() == "killstream server's limit is lower; resharding"
    ]


def _followers(server: FakeKillstream, system: int) -> int:
    return sum(1 for systems, _ in server.subscriptions() if system in systems)


async def test_a_join_refused_over_the_servers_lower_limit_reshards_over_more_sockets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Configured for 80 systems a socket, the server takes 50: the first socket's join (80) is
    refused with the server's limit in its reason. The console takes that limit, says so once,
    and ends with every system followed once over three sockets (before, the join was refused
    for ever and those systems were only polled over REST)."""
    caplog.set_level(logging.WARNING, logger="wanderer_console")
    gen = DataGenerator(8)
    async with _rig(tmp_path) as rig:
        rig.kills.limits = ShardLimits(systems=80, characters=100)
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS], [])
        rig.kills.tracking_changed()
        await wait_for(
            lambda: rig.settled() and len(rig.kills.sockets) == 3, what="resharded, every id once"
        )
        assert rig.server.refused_joins >= 1
        assert rig.kills.plans["systems"].limit == 50
        assert all(len(systems) <= 50 for systems, _ in rig.server.subscriptions())
        [warning] = _limit_warnings(caplog)
        ctx = warning.ctx  # type: ignore[attr-defined]
        assert (ctx["mode"], ctx["limit"], ctx["was"]) == ("systems", 50, 80)
        assert rig.metrics.value("wc_killstream_limit_lowered_total", mode="systems") == 1
        # A system of the refused join is followed now: its kill arrives, once.
        kill = gen.make_killmail(system_id=SYSTEMS[0])
        assert await rig.server.push_kill(kill) == 1
        await wait_for(lambda: kill["killmail_id"] in _ids(rig))
        assert rig.server.limit_crashes == 0


async def test_systems_moving_off_a_socket_over_the_lowered_limit_lose_and_double_no_kill(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server is redeployed with a lower limit (80 -> 40) while two sockets are joined with
    80 and 50 systems. One more system takes the second over it: its channel crashes and its
    rejoin is refused. The first socket, still joined, keeps following the 40 systems it hands
    to a new socket until that one confirms them; a kill in one of them while both follow it,
    and one after, each reach the pipeline once."""
    caplog.set_level(logging.WARNING, logger="wanderer_console")
    gen = DataGenerator(5)
    async with _rig(tmp_path) as rig:
        server = rig.server
        server.max_systems = 80
        rig.kills.limits = ShardLimits(systems=80, characters=100)
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS], [])
        rig.kills.tracking_changed()
        await wait_for(rig.settled)
        plan = rig.kills.plans["systems"]
        assert [len(s.ids) for s in plan.shards] == [80, 50]
        moving = sorted(plan.shards[0].ids)[40:]
        target = moving[0]

        server.max_systems = 40
        server.join_reply_delay = 0.3  # a new socket follows its systems before it knows
        rig.index.replace("big", [TrackedSystem(s) for s in [*SYSTEMS, 30_009_999]], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: _followers(server, target) == 2, what="the moving system on both")
        during = gen.make_killmail(system_id=target)
        assert await server.push_kill(during) == 2
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 4)
        after = gen.make_killmail(system_id=target)
        assert await server.push_kill(after) == 1
        assert plan.limit == 40
        assert all(len(systems) <= 40 for systems, _ in server.subscriptions())
        assert len(_limit_warnings(caplog)) == 1

        await wait_for(lambda: {during["killmail_id"], after["killmail_id"]} <= _ids(rig))
        await asyncio.sleep(0.2)  # any late copy would arrive by now
        seen = Counter(item.killmail.killmail_id for item in rig.items)
        assert seen[during["killmail_id"]] == 1
        assert seen[after["killmail_id"]] == 1


async def test_shrinking_far_closes_socket_after_socket_down_to_one(tmp_path: Path) -> None:
    async with _rig(tmp_path) as rig:
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS], [])
        rig.kills.tracking_changed()
        await wait_for(rig.settled)
        assert len(rig.kills.plans["systems"].shards) == 3
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS[-10:]], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: rig.settled() and list(rig.kills.sockets) == ["systems"])
        assert rig.kills.sockets["systems"].health.name == "killstream:systems"
        assert rig.server.limit_crashes == 0


def test_the_index_says_which_ids_started_or_stopped_being_tracked() -> None:
    index = TrackingIndex()
    index.replace("a", [TrackedSystem(1), TrackedSystem(2)], [TrackedCharacter(90_000_001)])
    index.replace("b", [TrackedSystem(2), TrackedSystem(3)], [])
    assert index.take_changed("systems") == {1, 2, 3}
    assert index.take_changed("characters") == {90_000_001}
    assert index.take_changed("systems") == set()
    index.drop("a")  # 2 is still on b: only 1 stopped being tracked
    assert index.take_changed("systems") == {1}
    assert index.take_changed("characters") == {90_000_001}
    index.put_system("b", TrackedSystem(2, name="Jita"))  # already tracked: no change
    assert index.take_changed("systems") == set()


def test_names_are_shared_between_maps() -> None:
    index = TrackingIndex()
    first, second = "".join(["Ji", "ta"]), "".join(["Jit", "a"])
    assert first is not second
    index.put_system("a", TrackedSystem(30_000_142, name=first))
    index.put_system("b", TrackedSystem(30_000_142, name=second))
    assert index.map("a").systems[30_000_142].name is index.map("b").systems[30_000_142].name


def test_an_id_on_one_map_and_on_several_answers_the_same() -> None:
    index = TrackingIndex()
    index.put_system("a", TrackedSystem(7))
    assert index.maps_for_system(7) == {"a"}
    index.put_system("b", TrackedSystem(7))
    index.put_system("b", TrackedSystem(7))  # again: no change
    assert index.maps_for_system(7) == {"a", "b"}
    index.put_character("a", TrackedCharacter(90_000_001))
    index.put_character("b", TrackedCharacter(90_000_002))
    assert index.maps_for_characters({90_000_001, 90_000_002, 5}) == {"a", "b"}
    index.remove_system("a", 7)
    assert index.maps_for_system(7) == {"b"}
    index.remove_system("b", 7)
    assert index.maps_for_system(7) == set()
    assert not index.tracks_system(7)


# -- churn: moves while kills keep coming, and faults in the middle of a move ---------------------


class _Pusher:
    """Pushes a kill into each of ``systems()`` in turn until stopped, noting how many sockets
    each reached (the server's view: 0 means no socket followed the system at that moment)."""

    def __init__(self, server: FakeKillstream, systems: Callable[[], list[int]]) -> None:
        self.server = server
        self.systems = systems
        self.gen = DataGenerator(9)
        self.reached: dict[int, tuple[int, int]] = {}  # killmail id -> (system, sockets)
        self.running = True
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while self.running:
            for system in self.systems():
                kill = self.gen.make_killmail(system_id=system)
                self.reached[kill["killmail_id"]] = (system, await self.server.push_kill(kill))
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.running = False
        await self.task


async def test_kills_keep_arriving_while_systems_move_and_none_is_lost_or_doubled(
    tmp_path: Path,
) -> None:
    """Three times the subscription grows past a socket's limit and shrinks back, keeping some
    of the second socket's systems (they move to the first), while kills keep coming in the
    systems that stay, move, or leave: at every moment each system kept is followed by at least
    one socket (the server says so for each kill), and every kill reaches the pipeline once."""
    pool = iter(30_100_001 + i for i in range(1_000))
    async with _rig(tmp_path) as rig:
        server = rig.server
        server.subscribe_reply_delay = 0.05  # confirmations come late: moves overlap kills
        kept = [next(pool) for _ in range(30)]
        rig.index.replace("big", [TrackedSystem(s) for s in kept], [])
        rig.kills.tracking_changed()
        await wait_for(rig.settled)
        watched: list[int] = []
        stays: set[int] = set()  # systems never untracked: every kill in them must arrive

        def tracked_watched() -> list[int]:
            return [s for s in watched if rig.index.tracks_system(s)]

        pusher = _Pusher(server, tracked_watched)
        plan = rig.kills.plans["systems"]
        try:
            for _round in range(3):
                grown = [next(pool) for _ in range(60)]  # 20 fill the first socket, 40 a second
                rig.index.replace("big", [TrackedSystem(s) for s in kept + grown], [])
                rig.kills.tracking_changed()
                await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 2)
                second = plan.shards[1].ids
                moving = sorted(second)[-10:]
                leaving = [s for s in grown if s not in moving]
                watched[:] = kept[:4] + moving + leaving[-4:]
                stays.update(kept[:4])
                await asyncio.sleep(0.05)  # kills flow before the change, too
                kept = kept[:20] + moving  # 30: fits in one socket at 75 %
                rig.index.replace("big", [TrackedSystem(s) for s in kept], [])
                rig.kills.tracking_changed()
                assert plan.shards[-1].held == set(moving)
                await wait_for(lambda: rig.settled() and list(rig.kills.sockets) == ["systems"])
                stays.update(moving)
        finally:
            await pusher.stop()
        lost = {k: v for k, v in pusher.reached.items() if v[1] == 0 and v[0] in stays}
        assert not lost, f"kills pushed while no socket followed a kept system: {lost}"
        expected = {k for k, (_system, sockets) in pusher.reached.items() if sockets}
        await wait_for(lambda: expected <= _ids(rig), what="every followed kill delivered")
        seen = Counter(item.killmail.killmail_id for item in rig.items)
        assert [k for k, n in seen.items() if n > 1] == []
        assert server.refused_joins == 0
        assert server.limit_crashes == 0
        assert plan.moves == 30


@pytest.mark.parametrize("fault", ["restart", "drop", "phx_error"])
async def test_a_fault_in_the_middle_of_a_move_leaves_each_system_followed_once(
    tmp_path: Path, fault: str
) -> None:
    """The last socket drains into the others; before the moves are confirmed the server
    restarts (or drops every socket, or crashes every channel). Afterwards each tracked system is
    followed by exactly one socket, the drained one is closed, and a kill in a moved system
    reaches the pipeline once."""
    async with _rig(tmp_path) as rig:
        server = rig.server
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS], [])
        rig.kills.tracking_changed()
        await wait_for(rig.settled)
        plan = rig.kills.plans["systems"]
        moving = sorted(plan.shards[-1].ids)
        last = rig.kills.sockets["systems:3"]
        server.subscribe_reply_delay = 0.5  # the moves wait for their confirmation
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS[60:]], [])
        rig.kills.tracking_changed()
        assert plan.shards[-1].held == set(moving)
        await wait_for(
            lambda: sum(1 for systems, _ in server.subscriptions() if moving[0] in systems) == 2,
            what="the moving systems on both sockets",
        )
        if fault == "restart":
            port = urlsplit(server.url).port
            await server.stop()
            await server.start(port=port or 0)
        elif fault == "drop":
            await server.drop_connections()
        else:
            await server.send_phx_error()
        server.subscribe_reply_delay = 0.0
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 2, timeout=30)
        assert last.stopped
        assert all(count == 1 for count in rig.subscribed(0).values())
        kill = DataGenerator(3).make_killmail(system_id=moving[-1])
        assert await server.push_kill(kill) == 1
        await wait_for(lambda: kill["killmail_id"] in _ids(rig))
        assert server.limit_crashes == 0
        assert server.refused_joins == 0


# -- a second look at the lowered limits (h77) ----------------------------------------------------


async def test_a_characters_limit_over_a_join_is_learned_from_the_crashes_of_its_subscribes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The server takes 12,000 characters a socket, the console's 50,000. A characters join
    carries 10,000 at most (the frame limit), so the join is accepted and the subscribe of the
    rest crashes the channel (no reason is given). Before, the socket rejoined and crashed
    again for ever, 3,000 characters never followed; now a second crash while growing past what
    the server took teaches that size, and the extra characters go to a second socket."""
    caplog.set_level(logging.WARNING, logger="wanderer_console")
    characters = [2_112_000_001 + i for i in range(15_000)]
    async with _rig(tmp_path) as rig:
        rig.server.max_characters = 12_000
        rig.kills.limits = ShardLimits(systems=50, characters=50_000)
        rig.index.replace("big", [], [TrackedCharacter(c) for c in characters])
        rig.kills.tracking_changed()
        await wait_for(
            lambda: rig.settled() and len(rig.kills.sockets) == 2,
            what="two characters sockets, every character once",
        )
        assert rig.kills.plans["characters"].limit == 10_000
        assert all(len(chars) <= 12_000 for _, chars in rig.server.subscriptions())
        assert 1 <= rig.server.limit_crashes <= 2
        [warning] = _limit_warnings(caplog)
        assert warning.ctx["mode"] == "characters"  # type: ignore[attr-defined]


async def test_one_crash_of_a_growing_channel_teaches_no_limit(tmp_path: Path) -> None:
    """A channel that crashes once while a subscribe is on its way (a server deploy) is no
    evidence of a lower limit: the plan keeps the configured one."""
    async with _rig(tmp_path) as rig:
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS[:20]], [])
        rig.kills.tracking_changed()
        await wait_for(rig.settled)
        rig.server.subscribe_reply_delay = 0.5
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS[:40]], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: _followers(rig.server, SYSTEMS[39]) == 1)
        await rig.server.send_phx_error()
        rig.server.subscribe_reply_delay = 0.0
        await wait_for(rig.settled)
        assert rig.kills.plans["systems"].limit == 50
        assert list(rig.kills.sockets) == ["systems"]
        assert rig.metrics.value("wc_killstream_limit_lowered_total", mode="systems") == 0


async def test_a_server_stating_a_limit_under_the_floor_opens_no_more_sockets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that takes no system (its refusal says max 0): the console cannot fit under
    it, so it keeps its sockets and says the join is refused (state failed), instead of
    spreading the systems over one socket each, every one refused in turn."""
    caplog.set_level(logging.WARNING, logger="wanderer_console")
    async with _rig(tmp_path) as rig:
        rig.server.max_systems = 0
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS], [])
        rig.kills.tracking_changed()
        await wait_for(
            lambda: (
                len(rig.kills.sockets) == 3
                and all(
                    s.health.state is ConnectionState.FAILED for s in rig.kills.sockets.values()
                )
            ),
            what="three sockets, each failed",
            timeout=5,
        )
        await wait_for(lambda: rig.server.refused_joins >= 6, what="each refused again")
        assert len(rig.kills.plans["systems"].shards) == 3
        assert rig.kills.plans["systems"].limit == 50
        assert not _limit_warnings(caplog)


async def test_two_sockets_refused_at_once_lower_the_limit_once_and_follow_every_system(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Both sockets of a mode are refused at once (80 systems each, the server takes 30): the
    second refusal, already planned for, lowers nothing again; every system ends followed by
    exactly one socket under the server's limit."""
    caplog.set_level(logging.WARNING, logger="wanderer_console")
    systems = [30_000_001 + i for i in range(160)]
    async with _rig(tmp_path) as rig:
        rig.server.max_systems = 30
        rig.kills.limits = ShardLimits(systems=80, characters=100)
        rig.index.replace("big", [TrackedSystem(s) for s in systems], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 6)
        assert rig.server.refused_joins == 2
        assert rig.kills.plans["systems"].limit == 30
        assert len(_limit_warnings(caplog)) == 1
        assert rig.metrics.value("wc_killstream_limit_lowered_total", mode="systems") == 1
        assert all(len(s) <= 30 for s, _ in rig.server.subscriptions())


async def test_tracking_grows_and_shrinks_under_the_learned_limit(tmp_path: Path) -> None:
    """After the limit was lowered (80 -> 50), new systems go to sockets under 50, never a
    subscribe over the server's limit; when most leave, the sockets merge under 50 too."""
    async with _rig(tmp_path) as rig:
        rig.kills.limits = ShardLimits(systems=80, characters=100)
        rig.index.replace("big", [TrackedSystem(s) for s in SYSTEMS], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 3)
        grown = [*SYSTEMS, *(30_002_000 + i for i in range(40))]
        rig.index.replace("big", [TrackedSystem(s) for s in grown], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 4)
        assert sorted(len(s) for s, _ in rig.server.subscriptions()) == [20, 50, 50, 50]
        rig.index.replace("big", [TrackedSystem(s) for s in grown[:70]], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 2)
        assert all(len(s) <= 50 for s, _ in rig.server.subscriptions())
        assert rig.server.limit_crashes == 0
        assert rig.server.refused_joins == 1


async def test_a_socket_emptied_in_the_middle_is_merged_away_too(tmp_path: Path) -> None:
    """Four sockets (50, 50, 50, 20); the systems of the second and the fourth leave, the
    third keeps 20. The emptied last socket closes, and the 70 systems left fit in two sockets
    (75 % of 50 each): the third drains into the empty second. Before, the closing of the last
    was not followed by another look, and three sockets stayed open, one following nothing."""
    systems = [30_000_001 + i for i in range(170)]
    async with _rig(tmp_path) as rig:
        rig.index.replace("big", [TrackedSystem(s) for s in systems], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 4)
        kept = systems[:50] + systems[100:120]
        rig.index.replace("big", [TrackedSystem(s) for s in kept], [])
        rig.kills.tracking_changed()
        await wait_for(lambda: rig.settled() and len(rig.kills.sockets) == 2)
        assert sorted(len(s) for s, _ in rig.server.subscriptions()) == [20, 50]
        assert rig.server.limit_crashes == 0
