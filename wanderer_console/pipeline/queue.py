"""The bounded priority queue between the sources and the pipeline.

Three lanes, served strictly in order: rally points first, then kills in a system some map
tracks, then everything else; first in, first out within a lane. Items of an *ordered* source (a
map stream, whose cursor must never pass an event not yet processed) never overtake that
source's earlier items: such an item joins the least urgent lane its source still has items in.
The bound covers all lanes together. When the queue is full, :meth:`BoundedPriorityQueue.put`
waits instead of dropping, so a source stops reading its socket (TCP pushes back on the server)
until the pipeline catches up.

It has the interface of :class:`asyncio.Queue` the rest of the console uses (``put``,
``put_nowait``, ``get``, ``task_done``, ``qsize``, ``empty``, ``full``, ``maxsize``), checkpoints
(``mark``, ``passed``: everything put before a point is done, idle or not) and reports:

- ``wc_queue_depth{lane}``: items waiting, per lane (gauge);
- ``wc_queue_wait_seconds``: time from ``put`` to ``get`` (histogram);
- ``wc_source_paused_seconds_total{source}``: time a source spent blocked on a full queue;
- ``wc_source_pauses_total{source}``: how often a source had to wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from enum import IntEnum
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.ingest.items import CustomItem, Item, KillItem, MapEventItem

__all__ = ["LANE_NAMES", "BoundedPriorityQueue", "Lane", "QueueMetrics", "item_lane", "item_queue"]

T = TypeVar("T")


class Lane(IntEnum):
    """Priority lanes; a lower value is served first."""

    RALLY = 0
    TRACKED_KILL = 1
    OTHER = 2


LANE_NAMES = tuple(member.name.lower() for member in Lane)


class WaitHistogram:
    """A histogram for the hot path: bucket counts in a plain list, exposed when collected.

    ``prometheus_client.Histogram.observe`` takes a lock and walks its buckets for every value
    (about a microsecond, once per event through the queue); here a value costs one bisection
    and two additions. Collection (a scrape, another thread) copies the counts, so a scrape
    taken during a batch may see the sum a few values ahead of the counts, never torn buckets.
    """

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self._counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self._sum = 0.0
        registry.register(self)

    def observe(self, value: float) -> None:
        """Count one value (``le`` buckets: a value equal to a bound falls in that bucket)."""
        self._counts[bisect_left(self.bounds, value)] += 1
        self._sum += value

    def describe(self) -> list[Metric]:
        """The family's name and type, for the registry's duplicate check."""
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        """The cumulative buckets, count and sum, as ``prometheus_client.Histogram`` has them."""
        counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric([], buckets, sum_value=total)
        yield family


class QueueMetrics:
    """The queue's Prometheus series, registered once on a registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.depth = Gauge("wc_queue_depth", "Items waiting for the pipeline", ["lane"], registry=r)
        self.wait = WaitHistogram(
            "wc_queue_wait_seconds",
            "Time an item spent in the queue before the pipeline took it",
            (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            r,
        )
        self.paused = Counter(
            "wc_source_paused_seconds",
            "Time a source spent waiting for room in a full queue",
            ["source"],
            registry=r,
        )
        self.pauses = Counter(
            "wc_source_pauses",
            "Times a source had to wait for a full queue",
            ["source"],
            registry=r,
        )


class BoundedPriorityQueue(Generic[T]):
    """A bounded queue with priority lanes; ``put`` waits when it is full (never drops)."""

    def __init__(
        self,
        maxsize: int,
        lane: Callable[[T], int],
        *,
        source: Callable[[T], str] = lambda _item: "unknown",
        ordered: Callable[[T], bool] = lambda _item: False,
        lanes: int = len(Lane),
        lane_names: tuple[str, ...] = LANE_NAMES,
        metrics: QueueMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if maxsize <= 0:
            raise ValueError("the queue must be bounded (maxsize > 0)")
        self.maxsize = maxsize
        self._lane_of = lane
        self._source_of = source
        self._ordered = ordered
        # Each entry: when it was put, the item, its ordered source (else None), its ticket.
        self._lanes: list[deque[tuple[float, T, str | None, int]]] = [deque() for _ in range(lanes)]
        self._puts = 0
        """Items ever put: the next item's ticket (see :meth:`mark`)."""
        self._taken: deque[int] = deque()
        """Tickets of the items taken and not yet marked done, in the order they were taken."""
        self._pending: dict[str, list[int]] = {}
        self._lane_names = lane_names
        self._size = 0
        self._unfinished = 0
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()
        self._all_done: asyncio.Event | None = None
        self._metrics = metrics or QueueMetrics()
        # Each lane's depth is read when the metrics are collected, not counted per put/take.
        for i, waiting in enumerate(self._lanes):
            self._metrics.depth.labels(lane=self._name(i)).set_function(waiting.__len__)
        self._clock = clock
        self.high_water = 0
        """The largest depth seen (never above ``maxsize``)."""
        self.paused_seconds: dict[str, float] = {}
        """Per source: total time spent blocked in :meth:`put`."""
        self.blocked: dict[str, int] = {}
        """Per source: puts waiting right now (a source is paused while this is > 0)."""

    # -- size ------------------------------------------------------------------------------------

    def qsize(self) -> int:
        """Items waiting, all lanes together."""
        return self._size

    def empty(self) -> bool:
        """True when nothing waits."""
        return self._size == 0

    def full(self) -> bool:
        """True when a ``put`` would have to wait."""
        return self._size >= self.maxsize

    def depths(self) -> dict[str, int]:
        """Items waiting per lane name."""
        return {self._name(i): len(q) for i, q in enumerate(self._lanes)}

    def paused_sources(self) -> list[str]:
        """Sources currently blocked on a full queue."""
        return sorted(source for source, n in self.blocked.items() if n > 0)

    def _name(self, index: int) -> str:
        return self._lane_names[index] if index < len(self._lane_names) else str(index)

    # -- put -------------------------------------------------------------------------------------

    def put_nowait(self, item: T) -> None:
        """Add an item at once; raise :class:`asyncio.QueueFull` when there is no room."""
        if self._size >= self.maxsize:
            raise asyncio.QueueFull
        lanes = self._lanes
        index = int(self._lane_of(item))
        if not 0 <= index < len(lanes):
            index = 0 if index < 0 else len(lanes) - 1
        key: str | None = None
        if self._ordered(item):
            key = self._source_of(item)
            counts = self._pending.setdefault(key, [0] * len(lanes))
            # Never ahead of this source's earlier items: at most as urgent as the least urgent.
            index = max([index, *(i for i, n in enumerate(counts) if n)])
            counts[index] += 1
        lanes[index].append((self._clock(), item, key, self._puts))
        self._puts += 1
        self._size += 1
        self._unfinished += 1
        if self._size > self.high_water:
            self.high_water = self._size
        if self._all_done is not None:
            self._all_done.clear()
        if self._getters:
            self._wake(self._getters)

    def offer(self, items: Sequence[T]) -> bool:
        """Put all of ``items`` now if there is room for all of them; else none (False)."""
        if self.maxsize and self.maxsize - self.qsize() < len(items):
            return False
        for item in items:
            self.put_nowait(item)
        return True

    async def put(self, item: T) -> None:
        """Add an item, waiting while the queue is full (the caller stops reading meanwhile)."""
        if self.full():
            await self._wait_for_room(self._source_of(item))
        self.put_nowait(item)

    async def _wait_for_room(self, source: str) -> None:
        loop = asyncio.get_running_loop()
        started = self._clock()
        self.blocked[source] = self.blocked.get(source, 0) + 1
        self._metrics.pauses.labels(source=source).inc()
        try:
            while self.full():
                waiter: asyncio.Future[None] = loop.create_future()
                self._putters.append(waiter)
                try:
                    await waiter
                except BaseException:
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._putters.remove(waiter)
                    # We were woken but are leaving: pass the turn on to the next waiter.
                    if not self.full() and not waiter.cancelled():
                        self._wake(self._putters)
                    raise
        finally:
            self.blocked[source] -= 1
            waited = self._clock() - started
            self.paused_seconds[source] = self.paused_seconds.get(source, 0.0) + waited
            self._metrics.paused.labels(source=source).inc(waited)

    # -- get -------------------------------------------------------------------------------------

    def get_nowait(self) -> T:
        """Take the oldest item of the most urgent lane; raise :class:`asyncio.QueueEmpty`."""
        for index, lane in enumerate(self._lanes):
            if lane:
                enqueued, item, key, ticket = lane.popleft()
                if key is not None:
                    self._pending[key][index] -= 1
                self._taken.append(ticket)
                self._size -= 1
                self._metrics.wait.observe(max(0.0, self._clock() - enqueued))
                self._wake(self._putters)
                return item
        raise asyncio.QueueEmpty

    def take_nowait(self, limit: int) -> list[T]:
        """Take up to ``limit`` items in :meth:`get_nowait` order, with one metric update per
        lane instead of one per item (the pipeline's batch read)."""
        taken: list[T] = []
        now = self._clock()
        observe = self._metrics.wait.observe
        pending = self._pending
        tickets = self._taken
        for index, lane in enumerate(self._lanes):
            count = min(len(lane), limit - len(taken))
            if count <= 0:
                continue
            for _ in range(count):
                enqueued, item, key, ticket = lane.popleft()
                if key is not None:
                    pending[key][index] -= 1
                tickets.append(ticket)
                observe(now - enqueued if now > enqueued else 0.0)
                taken.append(item)
            self._size -= count
        for _ in range(len(taken)):  # one waiting source per freed slot, as get_nowait does
            if not self._putters:
                break
            self._wake(self._putters)
        return taken

    async def get(self) -> T:
        """Take the next item, waiting while the queue is empty."""
        loop = asyncio.get_running_loop()
        while self.empty():
            waiter: asyncio.Future[None] = loop.create_future()
            self._getters.append(waiter)
            try:
                await waiter
            except BaseException:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._getters.remove(waiter)
                if not self.empty() and not waiter.cancelled():
                    self._wake(self._getters)
                raise
        return self.get_nowait()

    def task_done(self, count: int = 1) -> None:
        """Mark ``count`` taken items (one by default) as processed (for :meth:`join`): the
        ``count`` taken first, as the one consumer (the pipeline worker) finishes what it
        takes in the order it took it."""
        if count > self._unfinished:
            raise ValueError("task_done() called too many times")
        self._unfinished -= count
        for _ in range(min(count, len(self._taken))):
            self._taken.popleft()
        if self._unfinished == 0 and self._all_done is not None:
            self._all_done.set()

    def idle(self) -> bool:
        """True when every item put has been taken and marked done (what :meth:`join` waits
        for): nothing handed to the pipeline is still unwritten."""
        return self._unfinished == 0

    def mark(self) -> int:
        """A checkpoint after every item put so far: :meth:`passed` says when all of them are
        done. A source saves a resume cursor at such a point without waiting for the queue to
        be idle, which a busy pipeline may never be."""
        return self._puts

    def passed(self, mark: int) -> bool:
        """True when every item put before ``mark`` (from :meth:`mark`) has been taken and
        marked done; items put since do not matter."""
        # Within a lane tickets grow, so each lane's oldest is its head; few are taken at once.
        oldest = min((lane[0][3] for lane in self._lanes if lane), default=self._puts)
        if self._taken:
            oldest = min(oldest, min(self._taken))
        return oldest >= mark

    async def join(self) -> None:
        """Wait until every item put has been taken and marked done."""
        if self._unfinished == 0:
            return
        if self._all_done is None:
            self._all_done = asyncio.Event()
        self._all_done.clear()
        await self._all_done.wait()

    @staticmethod
    def _wake(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def item_lane(index: TrackingIndex) -> Callable[[Item], int]:
    """The lane of a pipeline item: rallies, then kills in tracked systems, then the rest."""

    def lane(item: Item) -> int:
        if isinstance(item, KillItem):
            return Lane.TRACKED_KILL if index.tracks_system(item.killmail.system_id) else Lane.OTHER
        if isinstance(item, MapEventItem):
            kind = item.envelope.type
            if kind == "rally_point_added":
                return Lane.RALLY
            if kind == "map_kill" and _map_kill_tracked(item, index):
                return Lane.TRACKED_KILL
            return Lane.OTHER
        if isinstance(item, CustomItem) and item.notification_type == "rally":
            return Lane.RALLY
        return Lane.OTHER

    return lane


def _map_kill_tracked(item: MapEventItem, index: TrackingIndex) -> bool:
    system = item.envelope.payload.get("solar_system_id")
    return isinstance(system, int) and index.tracks_system(system)


def item_queue(
    maxsize: int, index: TrackingIndex, *, registry: CollectorRegistry | None = None
) -> BoundedPriorityQueue[Item]:
    """The runtime's queue: lanes from the tracking index, metrics on ``registry``."""
    return BoundedPriorityQueue(
        maxsize,
        item_lane(index),
        source=lambda item: item.source,
        ordered=lambda item: isinstance(item, MapEventItem),
        metrics=QueueMetrics(registry),
    )
