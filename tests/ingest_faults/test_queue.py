"""The bounded priority queue: lanes, FIFO within a lane, waiting puts, metrics."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import MapEnvelope
from wanderer_console.domain.tracking import TrackedSystem, TrackingIndex
from wanderer_console.ingest.items import KillItem, MapEventItem
from wanderer_console.pipeline.queue import (
    BoundedPriorityQueue,
    Lane,
    QueueMetrics,
    item_lane,
    item_queue,
)

pytestmark = pytest.mark.timeout(10)


def _kill(killmail_id: int, system_id: int) -> KillItem:
    km = Killmail.from_wire(
        {
            "killmail_id": killmail_id,
            "system_id": system_id,
            "kill_time": "2026-01-10T18:00:00Z",
            "victim": {"ship_type_id": 587},
            "attackers": [],
            "zkb": {"hash": "h", "totalValue": 1.0},
        }
    )
    return KillItem(km, "{}", "killstream")


def _map(kind: str, ident: str, payload: dict[str, object] | None = None) -> MapEventItem:
    envelope = MapEnvelope.model_validate({"id": ident, "type": kind, "payload": payload or {}})
    return MapEventItem("m", envelope, "{}", "sse:m")


def test_lanes_rally_then_tracked_kills_then_the_rest_fifo_within_each() -> None:
    index = TrackingIndex()
    index.put_system("other-map", TrackedSystem(30000142))
    queue = item_queue(100, index)
    items = [
        _kill(1, 31000001),  # untracked
        _kill(2, 30000142),  # tracked by some map
        _map("rally_point_added", "R1"),
        _kill(3, 30000142),
        _map("rally_point_added", "R2"),
        _map("map_kill", "K1", {"solar_system_id": 30000142}),
        _map("add_system", "A1"),
    ]
    for item in items:
        queue.put_nowait(item)
    out = [queue.get_nowait() for _ in items]
    names = [i.envelope.id if isinstance(i, MapEventItem) else i.killmail.killmail_id for i in out]
    assert names == ["R1", "R2", 2, 3, "K1", 1, "A1"]
    assert item_lane(index)(_kill(9, 1)) == Lane.OTHER
    assert queue.empty()


def _name(item: object) -> str | int:
    if isinstance(item, MapEventItem):
        return item.envelope.id
    assert isinstance(item, KillItem)
    return item.killmail.killmail_id


def test_a_map_stream_never_overtakes_its_own_earlier_events() -> None:
    # The stream's cursor advances with each processed event: a rally must not jump ahead of an
    # earlier add_system of the same map, or a crash in between would skip that event.
    queue = item_queue(100, TrackingIndex())
    for item in (
        _map("add_system", "A1"),
        _kill(1, 31000001),
        _map("rally_point_added", "R1"),
        _map("rally_point_added", "R2"),
    ):
        queue.put_nowait(item)
    assert [_name(queue.get_nowait()) for _ in range(4)] == ["A1", 1, "R1", "R2"]
    # No backlog of that map any more: its rallies jump the queue again.
    queue.put_nowait(_kill(2, 31000001))
    queue.put_nowait(_map("rally_point_added", "R3"))
    assert [_name(queue.get_nowait()) for _ in range(2)] == ["R3", 2]


async def test_full_queue_makes_put_wait_and_counts_paused_time() -> None:
    registry = CollectorRegistry()
    queue: BoundedPriorityQueue[int] = BoundedPriorityQueue(
        2, lambda _i: 2, source=lambda i: f"src{i % 2}", metrics=QueueMetrics(registry)
    )
    await queue.put(0)
    await queue.put(2)
    assert queue.full()
    blocked = asyncio.create_task(queue.put(4))
    await asyncio.sleep(0.05)
    assert not blocked.done()
    assert queue.paused_sources() == ["src0"]
    assert queue.get_nowait() == 0
    await asyncio.wait_for(blocked, 1)
    assert [queue.get_nowait(), queue.get_nowait()] == [2, 4]
    assert queue.high_water == 2
    assert queue.paused_seconds["src0"] >= 0.04
    paused = registry.get_sample_value("wc_source_paused_seconds_total", {"source": "src0"})
    assert paused is not None
    assert paused >= 0.04
    assert registry.get_sample_value("wc_source_pauses_total", {"source": "src0"}) == 1
    assert registry.get_sample_value("wc_queue_wait_seconds_count") == 3
    assert registry.get_sample_value("wc_queue_depth", {"lane": "other"}) == 0
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_cancelled_put_and_get_leave_the_queue_consistent() -> None:
    queue: BoundedPriorityQueue[int] = BoundedPriorityQueue(1, lambda _i: 0)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    getter.cancel()
    await queue.put(1)
    blocked = asyncio.create_task(queue.put(2))
    await asyncio.sleep(0.01)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    assert queue.qsize() == 1
    assert await asyncio.wait_for(queue.get(), 1) == 1
    queue.task_done()
    await asyncio.wait_for(queue.join(), 1)
    queue.put_nowait(3)
    with pytest.raises(asyncio.QueueFull):
        queue.put_nowait(4)
    with pytest.raises(ValueError, match="bounded"):
        BoundedPriorityQueue(0, lambda _i: 0)


async def test_take_nowait_reads_a_batch_in_lane_order_and_frees_waiting_sources() -> None:
    registry = CollectorRegistry()
    queue: BoundedPriorityQueue[tuple[int, str]] = BoundedPriorityQueue(
        4,
        lambda item: item[0],
        source=lambda item: item[1],
        lanes=3,
        lane_names=("high", "mid", "low"),
        metrics=QueueMetrics(registry),
    )
    for item in [(2, "a"), (0, "b"), (1, "c"), (0, "d")]:
        queue.put_nowait(item)
    blocked = [asyncio.create_task(queue.put((2, f"late-{i}"))) for i in range(2)]
    await asyncio.sleep(0)
    assert queue.paused_sources() == ["late-0", "late-1"]
    assert queue.take_nowait(3) == [(0, "b"), (0, "d"), (1, "c")]
    await asyncio.gather(*blocked)  # three slots freed: both waiting sources went on
    assert queue.qsize() == 3
    assert queue.take_nowait(10) == [(2, "a"), (2, "late-0"), (2, "late-1")]
    assert queue.take_nowait(10) == []
    for lane in ("high", "mid", "low"):
        assert registry.get_sample_value("wc_queue_depth", {"lane": lane}) == 0
    assert registry.get_sample_value("wc_queue_wait_seconds_count") == 6


def test_wait_histogram_exposes_what_prometheus_histogram_would() -> None:
    """The hot-path histogram renders exactly as ``prometheus_client.Histogram`` does."""
    from prometheus_client import Histogram, generate_latest

    from wanderer_console.pipeline.queue import WaitHistogram

    bounds = (0.001, 0.005, 1, 300)
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    mine = WaitHistogram("wc_wait_seconds", "Wait", bounds, ours)
    reference = Histogram("wc_wait_seconds", "Wait", buckets=bounds, registry=theirs)
    # On a bound (``le``: counted in that bucket), between bounds, past the last one.
    for value in (0.0, 0.001, 0.002, 0.5, 1.0, 299.0, 400.0):
        mine.observe(value)
        reference.observe(value)
    # prometheus_client adds a ``_created`` timestamp; everything else is the same text.
    expected = [line for line in generate_latest(theirs).splitlines() if b"_created" not in line]
    assert generate_latest(ours).splitlines() == expected
    assert ours.get_sample_value("wc_wait_seconds_bucket", {"le": "0.001"}) == 2
    assert ours.get_sample_value("wc_wait_seconds_bucket", {"le": "+Inf"}) == 7
    assert ours.get_sample_value("wc_wait_seconds_sum") == pytest.approx(700.503)


def test_task_done_counts_several_at_once() -> None:
    queue: BoundedPriorityQueue[int] = BoundedPriorityQueue(4, lambda _i: 0)
    for i in range(3):
        queue.put_nowait(i)
    assert queue.take_nowait(3) == [0, 1, 2]
    queue.task_done(2)
    with pytest.raises(ValueError, match="too many"):
        queue.task_done(2)
    queue.task_done()


def test_a_mark_passes_once_everything_put_before_it_is_done_even_if_never_idle() -> None:
    """Checkpoints: items put after a mark (here more urgent, so taken first) never hold it,
    and an item put before it holds it until it is done, whatever lane it waits in."""
    queue: BoundedPriorityQueue[int] = BoundedPriorityQueue(8, lane=lambda n: n % 3)
    queue.put_nowait(2)  # least urgent lane
    mark = queue.mark()
    assert not queue.passed(mark)
    queue.put_nowait(0)  # after the mark, most urgent: taken first
    assert queue.take_nowait(1) == [0]
    queue.task_done()
    assert not queue.passed(mark)  # the item before the mark still waits
    assert queue.get_nowait() == 2
    assert not queue.passed(mark)  # taken, not yet done
    queue.put_nowait(1)  # the queue never becomes idle
    queue.task_done()
    assert queue.passed(mark)
    assert not queue.idle()
    assert not queue.passed(queue.mark())
