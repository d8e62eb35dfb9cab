"""R2z2Source against the strict fake feed over loopback (PROTOCOLS.md §8.2 item 7)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import orjson
import pytest

from tests.ingest.conftest import FAST, USER_AGENT, Feed
from tests.support import wait_for
from wanderer_console.domain.killmail import Killmail
from wanderer_console.ingest.health import ConnectionState
from wanderer_console.ingest.items import KillItem
from wanderer_console.ingest.r2z2 import CURSOR_STREAM, R2z2Timing, package_to_wire
from wanderer_console.pipeline.queue import item_queue
from wanderer_console.sim.r2z2 import FakeR2z2, package_from_killmail
from wanderer_console.sim.server import AppServer

pytestmark = pytest.mark.timeout(60)


def gap_after(fake: FakeR2z2, status: int, path: str | None = None) -> float:
    """Seconds between the first answer with ``status`` and the request that followed it."""
    for before, after in zip(fake.requests, fake.requests[1:], strict=False):
        if before.status == status and (path is None or before.path == path):
            return after.at - before.at
    raise AssertionError(f"no {status} followed by another request")


def assert_polite(fake: FakeR2z2) -> None:
    assert fake.count(429) == 0, fake.requests
    assert fake.count(403) == 0, fake.requests


@pytest.mark.slow
async def test_200_200_404_waits_then_continues(feed: Feed) -> None:
    fake = feed.fake
    kills = [feed.tracked_kill(), feed.tracked_kill()]
    first = fake.publish(kills[0])
    fake.publish(kills[1])
    fake.sequence_hint = first
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: len(feed.items) == 2)
    missing = f"/ephemeral/{first + 2}.json"
    await wait_for(lambda: any(r.path == missing and r.status == 404 for r in fake.requests))
    third = feed.tracked_kill()
    fake.publish(third)
    await wait_for(lambda: len(feed.items) == 3)
    assert feed.ids() == [k["killmail_id"] for k in [*kills, third]]
    assert [r.path for r in fake.requests[:3]] == [
        "/ephemeral/sequence.json",
        f"/ephemeral/{first}.json",
        f"/ephemeral/{first + 1}.json",
    ]
    assert gap_after(fake, 404, missing) >= FAST.after_miss - 0.01
    for before, after in zip(fake.requests, fake.requests[1:], strict=False):
        if before.status == 200:
            assert after.at - before.at >= FAST.catching_up - 0.005
    assert all(r.user_agent == USER_AGENT for r in fake.requests)
    assert source.health.state is ConnectionState.CONNECTED
    assert feed.items[0].source == "r2z2"
    assert_polite(fake)


@pytest.mark.slow
async def test_429_with_retry_after_is_honoured(feed: Feed) -> None:
    fake = feed.fake
    fake.retry_after = 1
    fake.throttle_next = 1
    kill = feed.tracked_kill()
    fake.sequence_hint = fake.publish(kill)
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: fake.count(429) == 1)
    await wait_for(lambda: source.health.state is ConnectionState.DEGRADED, 1.0)
    await wait_for(lambda: feed.items)
    assert gap_after(fake, 429) >= 1.0
    assert source.counters["throttled"] == 1
    assert fake.count(403) == 0


@pytest.mark.slow
async def test_429_without_retry_after_uses_the_default(feed: Feed) -> None:
    fake = feed.fake
    fake.retry_after = None
    fake.throttle_next = 1
    fake.sequence_hint = fake.publish(feed.tracked_kill())
    feed.start(feed.source())
    await wait_for(lambda: feed.items)
    throttled = next(r for r in fake.requests if r.status == 429)
    assert throttled.path == "/ephemeral/sequence.json"
    assert gap_after(fake, 429) >= FAST.default_retry_after - 0.01
    assert fake.count(403) == 0


@pytest.mark.slow
async def test_403_stops_polling_and_marks_failed(feed: Feed) -> None:
    fake = feed.fake
    fake.sequence_hint = fake.publish(feed.tracked_kill())
    fake.forbid_next = 1
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: source.health.state is ConnectionState.FAILED)
    assert source.health.last_error is not None
    assert "403" in source.health.last_error
    assert "stopped" in source.health.last_error
    await wait_for(lambda: feed.items)
    # Nothing asked while stopped: the next request came a whole ban after the 403 (both
    # stamped by the fake as they arrived, so a slow test loop cannot shorten or fake it).
    assert gap_after(fake, 403) >= FAST.ban - 0.01
    assert source.health.state is ConnectionState.CONNECTED
    assert source.counters["forbidden"] == 1


async def test_production_ban_is_an_hour_and_reads_so() -> None:
    timing = R2z2Timing()
    assert timing.ban == 3600
    assert timing.after_miss >= 6
    assert (timing.after_ok, timing.catching_up, timing.after_miss) == (0.2, 0.1, 10.0)
    assert (timing.error_base, timing.error_cap, timing.default_retry_after) == (6, 60, 60)
    assert (timing.stale_after, timing.stale_lead) == (300, 100)
    assert timing.max_cursor_age == 23 * 3600


@pytest.mark.slow
async def test_non_json_and_missing_keys_are_skipped_and_counted(feed: Feed) -> None:
    fake = feed.fake
    good = feed.tracked_kill()
    package = package_from_killmail(feed.tracked_kill(), 0)
    no_system = orjson.loads(orjson.dumps(package))
    del no_system["esi"]["solar_system_id"]
    first = fake.publish_raw(b"<html>not json</html>")
    fake.publish_raw(orjson.dumps({"killmail_id": 5, "zkb": {}}))  # no esi
    fake.publish_raw(orjson.dumps(no_system))
    fake.publish_raw(b"[1, 2, 3]")
    fake.publish(good)
    fake.sequence_hint = first
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: feed.items)
    assert feed.ids() == [good["killmail_id"]]
    assert source.counters["malformed"] == 4
    assert feed.metrics.value("wc_events_invalid_total", source="r2z2", reason="package") == 4
    assert fake.fetched(first) == 3  # non-JSON is retried with backoff before it is skipped
    assert_polite(fake)


@pytest.mark.slow
async def test_transient_non_json_and_5xx_back_off_and_retry_the_same_sequence(
    feed: Feed,
) -> None:
    fake = feed.fake
    kill = feed.tracked_kill()
    seq = fake.publish(kill)
    fake.sequence_hint = seq
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: fake.requests)  # sequence.json answered
    fake.fail_next = 2
    fake.garbage_next = 1
    await wait_for(lambda: feed.items)
    assert fake.fetched(seq) == 4
    waits = [b.at - a.at for a, b in zip(fake.requests[1:], fake.requests[2:], strict=False)]
    assert waits[0] >= FAST.error_base - 0.01
    assert waits[1] >= 2 * FAST.error_base - 0.01
    assert waits[2] >= min(FAST.error_cap, 4 * FAST.error_base) - 0.01
    assert source.counters["malformed"] == 0
    assert source.counters["errors"] == 3
    assert_polite(fake)


async def test_tracking_filter_counts_what_it_drops(feed: Feed) -> None:
    fake = feed.fake
    untracked = feed.untracked_kill()
    by_pilot = feed.gen.make_killmail(
        system_id=feed.untracked_system, attacker_character_ids=[feed.tracked_pilot]
    )
    in_system = feed.tracked_kill()
    fake.sequence_hint = fake.publish(untracked)
    fake.publish(by_pilot)
    fake.publish(in_system)
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: len(feed.items) == 2)
    assert feed.ids() == [by_pilot["killmail_id"], in_system["killmail_id"]]
    assert source.counters["untracked"] == 1
    km = feed.items[1].killmail
    assert km.system_id == feed.tracked_system
    assert km.zkb.total_value == in_system["zkb"]["totalValue"]
    assert km.zkb.hash
    raw = orjson.loads(feed.items[1].raw)
    assert raw["system_id"] == feed.tracked_system
    assert "kill_time" in raw


async def test_old_kills_are_gated_by_max_age(feed: Feed) -> None:
    fake = feed.fake
    old = feed.gen.make_killmail(system_id=feed.tracked_system, kill_time="2020-01-01T00:00:00Z")
    fresh = feed.tracked_kill()
    fake.sequence_hint = fake.publish(old)
    fake.publish(fresh)
    source = feed.source(max_age_hours=1.0)
    feed.start(source)
    await wait_for(lambda: feed.items)
    await wait_for(lambda: source.counters["too_old"] == 1)
    assert feed.ids() == [fresh["killmail_id"]]


@pytest.mark.slow
async def test_stale_cursor_resyncs_and_logs_the_gap(
    feed: Feed, caplog: pytest.LogCaptureFixture
) -> None:
    fake = feed.fake
    feed.store.set_cursor(CURSOR_STREAM, f"{10:012d}:{int(time.time())}")
    fake.skip_to(500)  # 11..499 expired long ago
    kill = feed.tracked_kill()
    fake.publish(kill)
    source = feed.source()
    caplog.set_level("WARNING", logger="wanderer_console.ingest.r2z2")
    feed.start(source)
    await wait_for(lambda: feed.items)
    assert fake.requests[0].path == "/ephemeral/11.json"  # resumed: the cursor was young
    assert source.gaps == [489]
    assert source.counters["resyncs"] == 1
    assert any("gap 489" in r.getMessage() for r in caplog.records)
    assert feed.ids() == [kill["killmail_id"]]
    assert_polite(fake)


async def test_cursor_older_than_23_hours_starts_from_sequence_json(feed: Feed) -> None:
    fake = feed.fake
    feed.store.set_cursor(CURSOR_STREAM, f"{10:012d}:{int(time.time()) - 24 * 3600}")
    fake.skip_to(40)
    seq = fake.publish(feed.tracked_kill())
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: feed.items)
    assert [r.path for r in fake.requests[:2]] == [
        "/ephemeral/sequence.json",
        f"/ephemeral/{seq}.json",
    ]
    assert source.gaps == [seq - 11]


async def test_sequence_updated_refetches_the_older_file(feed: Feed) -> None:
    fake = feed.fake
    a, b, c = feed.tracked_kill(), feed.tracked_kill(), feed.tracked_kill()
    first = fake.publish(a)
    fake.publish(b)
    fake.sequence_hint = first
    revalued = orjson.loads(orjson.dumps(a))
    revalued["zkb"]["totalValue"] = 123_456_789.0
    fake.overwrite(first, revalued)
    fake.publish(c, sequence_updated=first)
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: len(feed.items) == 4)
    assert feed.ids() == [a["killmail_id"], b["killmail_id"], c["killmail_id"], a["killmail_id"]]
    assert feed.items[3].killmail.total_value == 123_456_789.0
    assert fake.fetched(first) == 2
    assert source.counters["refetched"] == 1
    assert source.sequence == first + 3  # the re-fetch never moves the cursor back
    assert_polite(fake)


@pytest.mark.slow
async def test_cursor_is_saved_per_sequence_and_resumed_after_restart(feed: Feed) -> None:
    fake = feed.fake
    first = fake.publish(feed.tracked_kill())
    fake.publish(feed.untracked_kill())  # not delivered, but the cursor passes it
    fake.sequence_hint = first
    source = feed.source()
    task = feed.start(source)
    await wait_for(lambda: source.sequence == first + 2)
    saved = feed.store.get_cursor(CURSOR_STREAM)
    assert saved is not None
    assert saved.startswith(f"{first + 1:012d}")
    await feed.stop(task)
    later = [feed.tracked_kill(), feed.tracked_kill()]
    for kill in later:
        fake.publish(kill)
    before = len(fake.requests)
    await asyncio.sleep(FAST.after_miss)  # the old poller's last 404 must cool down
    restarted = feed.source()
    feed.start(restarted)
    await wait_for(lambda: len(feed.items) == 3)
    assert fake.requests[before].path == f"/ephemeral/{first + 2}.json"
    assert feed.ids()[1:] == [k["killmail_id"] for k in later]
    assert_polite(fake)


@pytest.mark.slow
async def test_normal_run_of_30_sequences_never_trips_the_limits(feed: Feed) -> None:
    fake = feed.fake
    kills = [feed.tracked_kill() for _ in range(20)]
    fake.sequence_hint = fake.publish(kills[0])
    for kill in kills[1:]:
        fake.publish(kill)
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: len(feed.items) == 20)
    for _ in range(10):  # the live edge: a kill now and then, 404s in between
        await asyncio.sleep(0.2)
        kill = feed.tracked_kill()
        kills.append(kill)
        fake.publish(kill)
    await wait_for(lambda: len(feed.items) == 30)
    assert feed.ids() == [k["killmail_id"] for k in kills]
    assert fake.count(404) >= 1
    assert_polite(fake)
    assert fake.banned_until is None


@pytest.mark.slow
async def test_production_timings_respect_the_real_limits(feed: Feed) -> None:
    """Defaults against a fake with the real limits (15/s, 6 s miss cooldown): no 429/403."""
    strict = FakeR2z2(feed.gen)
    server = AppServer(strict.app)
    await server.start()
    try:
        strict.sequence_hint = strict.publish(feed.tracked_kill())
        for _ in range(5):
            strict.publish(feed.tracked_kill())
        feed.url = server.url
        source = feed.source(R2z2Timing())
        task = feed.start(source)
        await wait_for(lambda: any(r.status == 404 for r in strict.requests), 5.0)
        await feed.stop(task)
        assert len(feed.items) == 6
        gaps = [b.at - a.at for a, b in zip(strict.requests, strict.requests[1:], strict=False)]
        assert min(gaps) >= 0.2 - 0.005
        assert_polite(strict)
    finally:
        await server.stop()


async def test_a_blank_user_agent_is_refused_before_any_request(feed: Feed) -> None:
    with pytest.raises(ValueError, match="User-Agent"):
        feed.source(user_agent="  ")


async def test_the_fake_bans_a_client_that_retries_a_miss_too_soon(feed: Feed) -> None:
    fake = feed.fake
    eager = replace(FAST, after_miss=0.05)  # ignores the 6 s rule (scaled: 0.3 s)
    fake.sequence_hint = fake.next_sequence
    source = feed.source(eager)
    feed.start(source)
    await wait_for(lambda: source.health.state is ConnectionState.FAILED)
    assert fake.count(403) >= 1
    assert fake.banned_until is not None


def test_package_to_wire_merges_esi_zkb_and_hash() -> None:
    package = {
        "killmail_id": 7,
        "hash": "abc",
        "esi": {
            "killmail_id": 7,
            "killmail_time": "2026-01-10T18:20:41Z",
            "solar_system_id": 31002238,
            "victim": {"ship_type_id": 670, "damage_taken": 5, "items": [{"flag": 5}]},
            "attackers": [{"damage_done": 5, "final_blow": True, "security_status": 0.1}],
        },
        "zkb": {"totalValue": 10.5, "attackerCount": 1, "labels": ["pvp"]},
        "uploaded_at": 1,
        "sequence_id": 3,
    }
    wire = package_to_wire(package)
    assert wire["system_id"] == 31002238
    assert wire["kill_time"] == "2026-01-10T18:20:41Z"
    assert wire["zkb"]["hash"] == "abc"
    assert wire["attacker_count"] == 1
    assert "items" not in wire["victim"]
    for bad in (None, [], {"killmail_id": 7}, {"killmail_id": "7", "esi": {}}):
        with pytest.raises(ValueError, match=r"package|esi|killmail"):
            package_to_wire(bad)


@pytest.mark.slow
async def test_a_kill_still_queued_at_a_crash_is_fetched_again_after_the_restart(
    feed: Feed,
) -> None:
    """The cursor never passes a kill the pipeline has not written: the process dies with the
    kill still in the queue, and the restarted poller asks for its sequence again."""
    fake = feed.fake
    kill = feed.tracked_kill()
    first = fake.publish(kill)
    fake.publish(feed.untracked_kill())
    fake.sequence_hint = first
    # The runtime's queue, with no worker taking from it: the pipeline is busy elsewhere.
    queue = item_queue(16, feed.index)
    source = feed.source(sink=queue.put, checkpoints=queue)
    task = feed.start(source)
    await wait_for(lambda: source.sequence == first + 2 and queue.qsize() == 1)
    await feed.stop(task)  # the crash: what the queue held is gone with the process
    await asyncio.sleep(FAST.after_miss)  # the old poller's last 404 must cool down
    restarted = feed.source()
    feed.start(restarted)
    await wait_for(lambda: kill["killmail_id"] in feed.ids())
    assert fake.fetched(first) == 2
    assert_polite(fake)


@pytest.mark.slow
async def test_the_cursor_is_saved_once_the_pipeline_has_written_the_kill(feed: Feed) -> None:
    fake = feed.fake
    first = fake.publish(feed.tracked_kill())
    fake.publish(feed.untracked_kill())
    fake.sequence_hint = first
    queue = item_queue(16, feed.index)
    source = feed.source(sink=queue.put, checkpoints=queue)
    feed.start(source)
    await wait_for(lambda: source.sequence == first + 2 and queue.qsize() == 1)
    assert feed.store.get_cursor(CURSOR_STREAM) is None  # the kill is not written yet
    queue.get_nowait()
    queue.task_done()  # the pipeline wrote it
    await wait_for(lambda: feed.store.get_cursor(CURSOR_STREAM) is not None)
    saved = feed.store.get_cursor(CURSOR_STREAM)
    assert saved is not None
    assert saved.startswith(f"{first + 1:012d}")
    assert_polite(fake)


@pytest.mark.slow
async def test_a_re_published_file_that_keeps_failing_does_not_stall_the_feed(feed: Feed) -> None:
    """``sequence_updated`` names an older file the feed now answers 500 for, every time: the
    optional re-fetch is given up after a few tries and the live feed goes on (before, it was
    retried ahead of every new sequence, forever, and no kill after it was read)."""
    fake = feed.fake
    a, b = feed.tracked_kill(), feed.tracked_kill()
    first = fake.publish(a)
    fake.sequence_hint = first
    source = feed.source()
    feed.start(source)
    await wait_for(lambda: feed.ids() == [a["killmail_id"]])
    fake.broken.add(first)
    fake.publish(b, sequence_updated=first)
    later = feed.tracked_kill()
    fake.publish(later)
    await wait_for(lambda: later["killmail_id"] in feed.ids())
    assert feed.ids() == [a["killmail_id"], b["killmail_id"], later["killmail_id"]]
    assert fake.fetched(first) == 4  # read once, then three re-fetch tries
    assert source.counters["refetch_failed"] == 1
    assert_polite(fake)


@pytest.mark.slow
async def test_the_cursor_is_saved_while_the_queue_is_never_idle(feed: Feed) -> None:
    """A pipeline that is never idle (another source always has an item queued) still lets the
    cursor move: once every item handed on up to a sequence is written, that sequence is saved,
    so a crash does not replay hours of feed."""
    fake = feed.fake
    first = fake.publish(feed.tracked_kill())
    fake.publish(feed.untracked_kill())
    fake.publish(feed.tracked_kill())
    fake.sequence_hint = first
    queue = item_queue(16, feed.index)
    busy = KillItem(Killmail.from_wire(feed.untracked_kill()), "{}", "other")
    queue.put_nowait(busy)
    idle_seen: list[bool] = []

    async def pipeline() -> None:
        # Another source always has an item queued: each one taken is replaced before the
        # taken one is marked written, so the queue is never idle.
        while True:
            item = await queue.get()
            if item.source == "other":
                await asyncio.sleep(0.01)  # that source's next event arrives
                queue.put_nowait(busy)
            queue.task_done()
            idle_seen.append(queue.idle())

    worker = asyncio.create_task(pipeline())
    source = feed.source(sink=queue.put, checkpoints=queue)
    feed.start(source)
    try:
        await wait_for(lambda: source.sequence == first + 3)
        last = f"{first + 2:012d}:"
        await wait_for(lambda: (feed.store.get_cursor(CURSOR_STREAM) or "").startswith(last))
    finally:
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    assert not any(idle_seen)
    assert_polite(fake)


@pytest.mark.slow
async def test_a_cursor_the_store_refuses_leaves_the_poller_running_and_is_saved_later(
    feed: Feed,
) -> None:
    """The pipeline wrote the kill, then the store refused the poller's cursor (a full disk,
    here a database made read-only on the store's connection, the same refusal): the error
    escaped and the poller's task crashed, restarted by the supervisor with a traceback each
    time. The poller now goes on reading, and the cursor is saved once the store writes."""
    fake = feed.fake
    first = fake.publish(feed.tracked_kill())
    fake.sequence_hint = first
    queue = item_queue(16, feed.index)
    source = feed.source(sink=queue.put, checkpoints=queue)
    task = feed.start(source)
    await wait_for(lambda: source.sequence == first + 1 and queue.qsize() == 1)
    feed.store._conn.execute("PRAGMA query_only = ON")  # the store refuses for real
    queue.get_nowait()
    queue.task_done()  # the pipeline wrote it; its cursor is due
    later = fake.publish(feed.tracked_kill())
    await wait_for(lambda: task.done() or source.sequence == later + 1, what="the next kill")
    assert not task.done(), task.exception()
    assert feed.store.write_fault is not None
    assert feed.store.get_cursor(CURSOR_STREAM) is None
    feed.store._conn.execute("PRAGMA query_only = OFF")  # room again
    queue.get_nowait()
    queue.task_done()
    fake.publish(feed.untracked_kill())  # the next step saves what is settled
    await wait_for(lambda: int((feed.store.get_cursor(CURSOR_STREAM) or "0")[:12]) >= later)
    assert_polite(fake)
