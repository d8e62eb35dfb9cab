"""Killstream under faults: rejoin with the full subscription, dead heartbeats, live changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.support import wait_for
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import Item, KillItem
from wanderer_console.ingest.killstream import KillstreamSource, PhoenixBackoff
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(30)

SYSTEMS = {30000142, 31000005, 31002238}


@pytest.fixture
async def server() -> AsyncIterator[FakeKillstream]:
    killstream = FakeKillstream()
    await killstream.start()
    try:
        yield killstream
    finally:
        await killstream.stop()


def _source(server: FakeKillstream, *, heartbeat: float = 30.0) -> KillstreamSource:
    async def sink(item: Item) -> None:
        return None

    return KillstreamSource(
        "systems", server.url, lambda: set(SYSTEMS), sink, Metrics(), heartbeat_seconds=heartbeat
    )


async def _joined(server: FakeKillstream, source: KillstreamSource, joins: int) -> None:
    await wait_for(
        lambda: (
            len(server.joins) >= joins
            and server.joined_clients == 1
            and source.health.state is ConnectionState.CONNECTED
        ),
        timeout=2.0,  # the requirement: rejoined within 2 s of the server being back
    )
    assert server.joins[-1]["systems"] == sorted(SYSTEMS)


@pytest.mark.parametrize("fault", ["phx_error", "phx_close"])
async def test_channel_error_or_close_rejoins_with_the_full_subscription(
    server: FakeKillstream, fault: str
) -> None:
    source = _source(server)
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        ended = await (server.send_phx_error() if fault == "phx_error" else server.send_phx_close())
        assert ended == 1
        await _joined(server, source, joins=2)
        assert server.connections == 1  # same socket, fresh join
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.slow
async def test_server_restart_on_the_same_port_rejoins_within_two_seconds(
    server: FakeKillstream,
) -> None:
    source = _source(server)
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        port = urlsplit(server.url).port
        assert port is not None
        await server.stop()
        await wait_for(lambda: source.health.state is not ConnectionState.CONNECTED)
        await asyncio.sleep(2.0)  # down for a while: several refused connects
        await server.start(port=port)
        await _joined(server, source, joins=2)
        assert source.health.reconnects >= 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.slow
async def test_withheld_heartbeat_reply_leads_to_a_reconnect(server: FakeKillstream) -> None:
    source = _source(server, heartbeat=0.2)
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        await wait_for(lambda: source.health.heartbeat_rtt_ms is not None)
        server.withhold_heartbeats = True
        await wait_for(lambda: server.connections >= 2, timeout=3.0)
        server.withhold_heartbeats = False
        await _joined(server, source, joins=2)
        assert source.health.reconnects >= 1
        assert source.health.snapshot()["reconnects_last_hour"] >= 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_phoenix_backoff_is_fast_first_then_capped() -> None:
    backoff = PhoenixBackoff(cap=10.0)
    bounds = [0.1, 0.2, 0.5, 1.0, *[1.5] * 6, 3.0, 6.0, 10.0, 10.0]
    for bound in bounds:
        delay = backoff.next_delay()
        assert 0.8 * bound <= delay <= bound
    backoff.reset()
    assert backoff.next_delay() <= 0.1


@pytest.mark.slow
async def test_tracking_change_sends_subscribe_systems(tmp_path: Path) -> None:
    async with Simulator(seed=21) as sim:
        runtime = Runtime(demo_settings(sim, data_dir=tmp_path, dry_run=True), data_dir=tmp_path)
        await runtime.start()
        try:
            await wait_for(
                lambda: (
                    "systems" in runtime.kills.sockets
                    and runtime.kills.sockets["systems"].health.state is ConnectionState.CONNECTED
                )
            )
            joins = len(sim.killstream.joins)
            added = next(
                s.system_id
                for s in (sim.generator.new_system() for _ in range(50))
                if s.system_id not in sim.tracked_system_ids
            )
            sim.map.add_system(added)

            def subscribed() -> bool:
                return any(
                    frame[3] == "phx_reply"
                    and added in (frame[4].get("response") or {}).get("subscribed_systems", [])
                    for frame in list(sim.killstream.sent)
                )

            await wait_for(subscribed, timeout=5.0)
            assert len(sim.killstream.joins) == joins  # a push on the live join, not a rejoin
        finally:
            await runtime.stop()


class _CountingBackoff(PhoenixBackoff):
    """The real backoff with short steps, noting which attempt each wait was for."""

    def __init__(self) -> None:
        super().__init__(cap=0.2, steps=(0.01, 0.02, 0.04, 0.08))
        self.asked: list[int] = []

    def next_delay(self) -> float:
        self.asked.append(self.attempt)
        return super().next_delay()


async def _end_each_join(
    server: FakeKillstream, source: KillstreamSource, times: int, end: str
) -> None:
    """End the channel (or drop the socket) as soon as each of ``times`` joins is accepted."""
    for n in range(1, times + 1):
        await wait_for(lambda n=n: source.joins >= n and server.joined_clients == 1)
        if end == "phx_error":
            await server.send_phx_error()
        else:
            await server.drop_connections()


@pytest.mark.parametrize("end", ["phx_error", "drop"])
async def test_a_join_that_ends_at_once_each_time_backs_off_instead_of_a_hot_loop(
    server: FakeKillstream, end: str
) -> None:
    """A server that accepts the join and then crashes the channel (or drops the socket) right
    away, again and again: each new try waits longer than the one before, as after any failure;
    the accepted join does not start the waits over (before, a crashed channel was rejoined at
    once and a dropped socket reconnected after the first 0.1 s step, forever)."""
    backoff = _CountingBackoff()

    async def sink(item: Item) -> None:
        return None

    source = KillstreamSource(
        "systems", server.url, lambda: set(SYSTEMS), sink, Metrics(), backoff=backoff
    )
    task = asyncio.create_task(source.run())
    try:
        await _end_each_join(server, source, 4, end)
        await _joined(server, source, joins=5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert backoff.asked == [0, 1, 2, 3]
    assert server.connections == (1 if end == "phx_error" else 5)


async def test_a_channel_waiting_to_rejoin_is_not_reported_connected(
    server: FakeKillstream,
) -> None:
    """While a crashed channel waits out its rejoin, the socket is open but follows nothing:
    the REST poller and the killstream watermark must see it as down, not connected."""

    async def sink(item: Item) -> None:
        return None

    backoff = PhoenixBackoff(cap=60.0, steps=(30.0,))  # a wait far longer than the test
    source = KillstreamSource(
        "systems", server.url, lambda: set(SYSTEMS), sink, Metrics(), backoff=backoff
    )
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.health.state is ConnectionState.CONNECTED)
        assert source.confirmed == SYSTEMS
        await server.send_phx_error()
        await wait_for(lambda: source.health.state is ConnectionState.RECONNECTING)
        assert source.confirmed == set()
        assert "rejoining" in (source.health.last_error or "")
        assert len(server.joins) == 1  # still waiting
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_refused_subscribe_is_asked_again_without_waiting_for_another_change(
    server: FakeKillstream,
) -> None:
    """A subscribe the server refuses with an error reply is sent again after a wait (before,
    it waited for the next change of tracking, however far off: the new system's kills were
    missed meanwhile, without a word but one warning)."""
    desired = set(SYSTEMS)
    added = 31000777

    async def sink(item: Item) -> None:
        return None

    source = KillstreamSource("systems", server.url, lambda: set(desired), sink, Metrics())
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.confirmed == SYSTEMS)
        server.refuse_subscribes = 1
        desired.add(added)
        source.refresh()
        await wait_for(lambda: server.refuse_subscribes == 0)  # the first ask was refused
        await wait_for(lambda: added in source.confirmed)
        [(systems, _characters)] = server.subscriptions()
        assert added in systems
        assert len(server.joins) == 1  # on the same join
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_channel_ending_while_subscribes_are_sent_does_not_stop_later_ones(
    server: FakeKillstream,
) -> None:
    """The channel crashes while a tracking change is still being sent (a slow link holds the
    socket's writes): the frames after the crash are not sent, the channel is rejoined, and a
    later change is still subscribed on that socket (before, the task sending subscriptions died
    of "cannot push: channel is errored" and no later change reached the server until the
    socket itself was lost: kills of newly tracked systems were missed meanwhile)."""
    desired = set(SYSTEMS)
    first_new, second_new = 31000777, 31000888

    async def sink(item: Item) -> None:
        return None

    backoff = PhoenixBackoff(cap=0.2, steps=(0.05,))
    source = KillstreamSource(
        "systems", server.url, lambda: set(desired), sink, Metrics(), backoff=backoff
    )
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: source.confirmed == SYSTEMS)
        ws = source._ws
        assert ws is not None
        send = ws.send
        held = asyncio.Event()
        release = asyncio.Event()

        async def slow_send(message: str, *args: object, **kwargs: object) -> None:
            await send(message, *args, **kwargs)  # type: ignore[arg-type]
            if "unsubscribe_systems" in str(message) and not release.is_set():
                held.set()
                await release.wait()  # the write waits for the link to drain

        ws.send = slow_send  # type: ignore[method-assign]
        # One system leaves, one comes: an unsubscribe then a subscribe.
        desired.discard(30000142)
        desired.add(first_new)
        source.refresh()
        await wait_for(held.is_set)
        # The server crashes the channel while the subscribe waits to be written.
        await wait_for(lambda: [30000142 not in s for s, _ in server.subscriptions()] == [True])
        await server.send_phx_error()
        await wait_for(lambda: source.health.state is ConnectionState.RECONNECTING)
        release.set()
        await _joined_with(server, source, desired, joins=2)
        # A later change on the rejoined channel reaches the server.
        desired.add(second_new)
        source.refresh()
        await wait_for(lambda: second_new in source.confirmed, timeout=5.0)
        [(systems, _characters)] = server.subscriptions()
        assert set(systems) == desired
        assert server.connections == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _joined_with(
    server: FakeKillstream, source: KillstreamSource, desired: set[int], joins: int
) -> None:
    await wait_for(
        lambda: (
            len(server.joins) >= joins
            and source.health.state is ConnectionState.CONNECTED
            and source.confirmed == desired
        ),
        timeout=5.0,
    )


async def test_a_join_never_answered_is_given_up_and_tried_again(
    server: FakeKillstream, caplog: pytest.LogCaptureFixture
) -> None:
    """The server takes the join but never replies (its channel hangs) while it still answers
    heartbeats: after a bounded wait the socket is closed and opened again, with backoff, and
    says why (before, the socket waited for the reply forever, following nothing)."""
    caplog.set_level(logging.WARNING, logger="wanderer_console.ingest.killstream")

    async def sink(item: Item) -> None:
        return None

    backoff = _CountingBackoff()
    source = KillstreamSource(
        "systems", server.url, lambda: set(SYSTEMS), sink, Metrics(), backoff=backoff
    )
    source.join_timeout = 0.3
    server.hang_joins = True
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: server.connections >= 3, timeout=5.0, what="joins tried again")
        assert source.health.state is not ConnectionState.CONNECTED
        assert "no reply to the join" in (source.health.last_error or "")
        assert any(
            r.getMessage() == "killstream join not answered; reconnecting" for r in caplog.records
        )
        assert backoff.asked[:2] == [0, 1]  # each retry waits longer
        server.hang_joins = False
        await wait_for(lambda: source.confirmed == SYSTEMS, timeout=5.0)
        assert source.health.state is ConnectionState.CONNECTED
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_refused_join_is_logged_with_the_servers_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A join the server refuses is a warning in the log, with the server's answer and the
    socket's name (before, only the socket's state said it: an operator reading the log saw
    nothing but reconnects)."""
    caplog.set_level(logging.WARNING, logger="wanderer_console.ingest.killstream")
    server = FakeKillstream(max_systems=2)  # three systems: over this server's limit
    await server.start()

    async def sink(item: Item) -> None:
        return None

    source = KillstreamSource(
        "systems", server.url, lambda: set(SYSTEMS), sink, Metrics(), name="killstream:systems:2"
    )
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: server.refused_joins >= 1)

        def refused() -> list[logging.LogRecord]:
            return [
                r
                for r in caplog.records
                if r.getMessage() == "killstream join refused; reconnecting"
            ]

        [record, *_] = await wait_for(refused, timeout=5.0, what="the refusal logged")
        ctx = record.ctx  # type: ignore[attr-defined]
        assert ctx["name"] == "killstream:systems:2"
        assert ctx["ids"] == 3
        assert "too_many_systems" in str(ctx["response"])
        assert "join refused" in (source.health.last_error or "")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.stop()


async def test_kills_sent_before_the_join_reply_arrive_once_and_their_replay_is_dropped(
    server: FakeKillstream,
) -> None:
    """The server pushes a join's preload before the join's reply, and again after a rejoin:
    each kill reaches the pipeline once, the replays are counted as duplicates."""
    gen = DataGenerator(4)
    kills = [gen.make_killmail(system_id=system) for system in sorted(SYSTEMS)]
    server.seed_kills(kills)
    server.preload_before_reply = True
    items: list[Item] = []

    async def sink(item: Item) -> None:
        items.append(item)

    metrics = Metrics()
    source = KillstreamSource("systems", server.url, lambda: set(SYSTEMS), sink, metrics)
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: len(items) == len(kills) and source.confirmed == SYSTEMS)
        events = [frame[3] for frame in server.sent if frame[2] == "killmails:lobby"]
        assert events[0] == "killmail_update"  # the kills came before the join's reply
        await server.send_phx_error()
        await _joined(server, source, joins=2)

        def duplicates() -> float:
            value = metrics.registry.get_sample_value(
                "wc_events_duplicate_total", {"source": "killstream"}
            )
            return value or 0.0

        await wait_for(lambda: duplicates() >= len(kills), what="the replay dropped")
        ids = [item.killmail.killmail_id for item in items if isinstance(item, KillItem)]
        assert sorted(ids) == sorted(k["killmail_id"] for k in kills)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_join_reply_behind_kills_the_pipeline_holds_is_not_given_up(
    server: FakeKillstream, caplog: pytest.LogCaptureFixture
) -> None:
    """The preload comes before the join's reply and the pipeline is full: the socket stops
    reading, the reply waits unread behind the kills. That is no silent server: the join is not
    given up (as a missed heartbeat is not, while the pipeline holds the reader)."""
    caplog.set_level(logging.WARNING, logger="wanderer_console.ingest.killstream")
    gen = DataGenerator(6)
    server.seed_kills(gen.make_killmail(system_id=system) for system in sorted(SYSTEMS))
    server.preload_before_reply = True
    room = asyncio.Event()
    items: list[Item] = []

    async def sink(item: Item) -> None:
        items.append(item)
        await room.wait()  # a full queue

    source = KillstreamSource("systems", server.url, lambda: set(SYSTEMS), sink, Metrics())
    source.join_timeout = 0.2
    task = asyncio.create_task(source.run())
    try:
        await wait_for(lambda: items, what="the first kill handed on")
        # A measuring window, not a synchronisation: several join timeouts pass while held.
        await asyncio.sleep(1.0)
        room.set()
        await wait_for(lambda: source.confirmed == SYSTEMS)
        assert not [r for r in caplog.records if "join not answered" in r.getMessage()]
        assert server.connections == 1
        assert source.health.state is ConnectionState.CONNECTED
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
