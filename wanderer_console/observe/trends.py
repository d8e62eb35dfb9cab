"""Per-minute trends: throughput, delivery latency percentiles, failures and errors, kept for
``[trends] days`` in the store.

:class:`TrendRecorder` reads the engine's own counters once a minute and writes what changed in
that minute (events received, notifications queued and delivered, failed deliveries, 429s,
errors) and the minute's delivery latency percentiles, estimated from the ``wc_delivery_seconds``
histogram's bucket counts as Prometheus' ``histogram_quantile`` does (linear within a bucket).
Once an hour it drops what is older than ``days`` (and resolved alerts older than the retention).

A minute is keyed by the wall clock, which may step (NTP): a reading that falls in a minute
already written (the clock stepped back, or a turn came twice in one minute) is added to that
minute (its latency the worse of the two), never written over it, so no minute loses what it
held and every count is in exactly one minute. A step forward leaves the minutes it skipped
empty.
At a stop the minute still running is written too (what was counted since the last turn would
otherwise go with the process); the engine that starts next adds to it.
:func:`bucketed` sums the minutes into the buckets a chart or an export shows;
:func:`stored_buckets` reads them from the store for the last so many seconds.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from wanderer_console.store.base import Store
from wanderer_console.store.observe import TrendMinute
from wanderer_console.store.writes import StoreWriteError, unavailable
from wanderer_console.telemetry.logging import redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["COUNTS", "TrendBucket", "TrendRecorder", "bucketed", "quantile", "stored_buckets"]

log = logging.getLogger(__name__)

COUNTS = ("events", "queued", "delivered", "failures", "rate_limited", "errors")
"""The per-minute counts, in column order."""

_PRUNE_EVERY = 3600.0


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a histogram given as ``(upper bound, cumulative count)`` pairs in
    order (the last bound ``inf``); ``None`` without observations. Linear within a bucket; the
    ``+Inf`` bucket answers with the highest finite bound (as Prometheus does)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True, slots=True)
class _Reading:
    counts: dict[str, float]
    buckets: tuple[tuple[float, float], ...]


class TrendRecorder:
    """Writes one :class:`~wanderer_console.store.observe.TrendMinute` a minute (a supervised
    task)."""

    def __init__(
        self,
        metrics: Metrics,
        store: Store,
        *,
        instance: str,
        days: Callable[[], float],
        retention_days: Callable[[], float],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._metrics = metrics
        self._store = store
        self._instance = instance
        self._days = days
        self._retention_days = retention_days
        self._clock = clock
        self._last: _Reading | None = None
        self._pruned_at = float("-inf")
        self.minutes_written = 0
        """Minutes written since start (tests wait on it)."""

    def _read(self) -> _Reading:
        m = self._metrics
        failures = m.split(m.delivery_failures, "reason")
        limited = failures.pop("rate_limited", 0.0)
        counts = {
            "events": sum(m.split(m.events_received, "source").values()),
            "queued": sum(m.split(m.notifications_queued, "type").values()),
            "delivered": sum(m.split(m.notifications_delivered, "type").values()),
            "failures": sum(failures.values()),
            "rate_limited": limited,
            "errors": sum(m.split(m.errors, "component").values()),
        }
        buckets: list[tuple[float, float]] = []
        for family in m.delivery_seconds.collect():
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets.append((float(sample.labels["le"]), sample.value))
        return _Reading(counts, tuple(sorted(buckets)))

    def record(self, now: float | None = None) -> TrendMinute | None:
        """Write the minute since the last reading (the first reading only starts the count)."""
        now = self._clock() if now is None else now
        return self._write(now, int(now // 60 * 60) - 60)

    def flush(self, now: float | None = None) -> TrendMinute | None:
        """Write what was counted since the last reading into the minute now running: at a stop
        its turn never comes, and the counts would go with the process."""
        now = self._clock() if now is None else now
        return self._write(now, int(now // 60 * 60))

    def _write(self, now: float, minute: int) -> TrendMinute | None:
        reading = self._read()
        last, self._last = self._last, reading
        if last is None:
            return None
        if self._store.write_fault is not None:
            # The store cannot write (a full disk): this minute is skipped, and no write of ours
            # makes the store look writable again while delivery's own writes still fail.
            return None
        delta = {k: max(0, round(reading.counts[k] - last.counts[k])) for k in COUNTS}
        previous = dict(last.buckets)
        minute_buckets = [(b, c - previous.get(b, 0.0)) for b, c in reading.buckets]
        row = TrendMinute(
            minute=minute,
            instance=self._instance,
            latency_p50=quantile(0.5, minute_buckets),
            latency_p95=quantile(0.95, minute_buckets),
            latency_p99=quantile(0.99, minute_buckets),
            **delta,
        )
        for written in self._store.trends(row.minute, row.minute):
            if written.instance == self._instance:  # the clock stepped back: add, not replace
                row = _added(written, row)
        self._store.save_trend(row)
        self.minutes_written += 1
        if now - self._pruned_at >= _PRUNE_EVERY:
            self._pruned_at = now
            self._store.prune_observations(
                trends_before=now - self._days() * 86_400.0,
                alerts_before=now - self._retention_days() * 86_400.0,
            )
        return row

    async def run(self) -> None:
        """Record at each minute's turn (a minute the store cannot write or the database does
        not answer is skipped), and the minute running when cancelled (a stop). The first
        reading only starts the count; after a restart of this task it writes what was counted
        since the last one."""
        self._skipping(self.flush)
        try:
            while True:
                await asyncio.sleep(60.0 - self._clock() % 60.0)
                self._skipping(self.record)
        finally:
            self._skipping(self.flush)

    def _skipping(self, write: Callable[[], TrendMinute | None]) -> None:
        """Run ``write``; a minute the store cannot take is skipped. A write the store refuses
        is its own fault, reported by the store. A database that does not answer (the
        PostgreSQL server ended the connection: a restart, a failover) is said and counted
        here: raised, it failed the task, logged a traceback and left the supervisor to
        restart it, for a fault the next minute's turn outlives by itself."""
        try:
            write()
        except StoreWriteError:
            return
        except Exception as exc:
            if not unavailable(exc):
                raise
            self._metrics.errors.labels(component="trends").inc()
            log.warning(
                "trends: a minute not recorded, the database did not answer",
                extra={"ctx": {"error": redact(f"{type(exc).__name__}: {exc}")[:300]}},
            )


def _added(first: TrendMinute, then: TrendMinute) -> TrendMinute:
    """One minute's row with a later reading keyed to the same minute counted in (latency: the
    worse of the two, as :class:`TrendBucket` sums minutes)."""
    counts = {name: int(getattr(first, name)) + int(getattr(then, name)) for name in COUNTS}
    return TrendMinute(
        minute=first.minute,
        instance=first.instance,
        **counts,
        latency_p50=_worse(first.latency_p50, then.latency_p50),
        latency_p95=_worse(first.latency_p95, then.latency_p95),
        latency_p99=_worse(first.latency_p99, then.latency_p99),
    )


def _worse(a: float | None, b: float | None) -> float | None:
    return a if b is None else b if a is None else max(a, b)


@dataclass(slots=True)
class TrendBucket:
    """The minutes of one bucket summed over instances (latency: the worst minute's)."""

    start: int
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTS, 0))
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None

    def add(self, row: TrendMinute) -> None:
        """Count ``row`` in."""
        for name in COUNTS:
            self.counts[name] += int(getattr(row, name))
        for name in ("latency_p50", "latency_p95", "latency_p99"):
            value = getattr(row, name)
            if value is not None:
                current = getattr(self, name)
                setattr(self, name, value if current is None else max(current, value))

    def as_dict(self) -> dict[str, float | int | None]:
        """A flat row (``start``, the counts, the latencies in seconds)."""
        return {
            "start": self.start,
            **self.counts,
            "latency_p50": self.latency_p50,
            "latency_p95": self.latency_p95,
            "latency_p99": self.latency_p99,
        }


def bucketed(
    rows: Sequence[TrendMinute], since: float, until: float, step: int
) -> list[TrendBucket]:
    """The minutes from ``since`` to ``until`` in buckets of ``step`` seconds (every bucket,
    empty ones too, oldest first)."""
    first = int(since // step * step)
    buckets = [TrendBucket(start) for start in range(first, int(until) + 1, step)]
    for row in rows:
        index = (row.minute - first) // step
        if 0 <= index < len(buckets):
            buckets[index].add(row)
    return buckets


def stored_buckets(store: Store, now: float, span: float, step: int) -> list[TrendBucket]:
    """The stored minutes of the last ``span`` seconds in buckets of ``step`` seconds, up to the
    last whole minute. The first bucket starts before ``now - span`` (at a multiple of
    ``step``) and is read whole: read from ``now - span`` only, it counted nothing of its
    minutes before that instant (a first minute of 0, a first hour of a fraction of its hour)."""
    first = int((now - span) // step * step)
    return bucketed(store.trends(first, now), first, now - 60, step)
