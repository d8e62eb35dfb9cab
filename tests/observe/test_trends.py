"""Per-minute trends: recorded from the engine's counters into the store, pruned after
``[trends] days``, bucketed, and exported by ``wanderer-console export metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support import connected, wait_for
from wanderer_console.cli import main
from wanderer_console.config.model import Settings
from wanderer_console.observe.trends import TrendRecorder, bucketed, quantile
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.backends import open_store
from wanderer_console.store.base import Store
from wanderer_console.store.observe import TrendMinute
from wanderer_console.store.sqlite import DB_NAME
from wanderer_console.telemetry.metrics import Metrics


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_quantile_interpolates_within_a_bucket() -> None:
    buckets = [(0.1, 0.0), (0.5, 10.0), (1.0, 20.0), (float("inf"), 20.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.5)
    assert quantile(0.25, buckets) == pytest.approx(0.3)
    assert quantile(0.99, buckets) == pytest.approx(0.99)
    assert quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    assert quantile(0.99, [(1.0, 0.0), (float("inf"), 5.0)]) == 1.0  # +Inf: highest bound


def test_a_minute_is_recorded_and_old_minutes_are_pruned(store: Store) -> None:
    metrics = Metrics()
    clock = FakeClock(1_800_000_000.0)  # a minute's turn
    days = [7.0]
    recorder = TrendRecorder(
        metrics, store, instance="local", days=lambda: days[0], retention_days=lambda: 30.0,
        clock=clock,
    )  # fmt: skip
    metrics.events_received.labels(source="sse").inc(5)  # before the first reading: not counted
    assert recorder.record() is None
    metrics.events_received.labels(source="sse").inc(12)
    metrics.notifications_queued.labels(type="kill").inc(4)
    metrics.notifications_delivered.labels(type="kill").inc(3)
    metrics.delivery_failures.labels(reason="retry").inc(2)
    metrics.delivery_failures.labels(reason="rate_limited").inc(1)
    metrics.errors.labels(component="pipeline").inc()
    for seconds in (0.02, 0.03, 0.04, 0.2):
        metrics.delivery_seconds.observe(seconds)
    clock.now += 60
    row = recorder.record()
    assert row is not None
    assert row.minute == 1_800_000_000
    assert (row.events, row.queued, row.delivered) == (12, 4, 3)
    assert (row.failures, row.rate_limited, row.errors) == (2, 1, 1)
    assert row.latency_p50 is not None
    assert 0.025 <= row.latency_p50 <= 0.05
    assert row.latency_p99 is not None
    assert 0.1 <= row.latency_p99 <= 0.25
    assert store.trends(0) == [row]
    clock.now += 60  # a quiet minute: zeros, no latency
    quiet = recorder.record()
    assert quiet is not None
    assert quiet.events == 0
    assert quiet.latency_p50 is None
    # Eight days later the first minutes are older than [trends] days and go at the prune.
    clock.now += 8 * 86_400
    recorder.record()
    kept = store.trends(0)
    assert [r.minute for r in kept] == [int(clock.now // 60 * 60) - 60]


def test_a_wall_clock_stepped_back_adds_to_a_minute_instead_of_overwriting_it(
    store: Store,
) -> None:
    """Minutes are keyed by wall time. When the clock steps back (an NTP step) the next reading
    falls in a minute already written: its counts are added to that minute (latency: the worse
    of the two), never written over it, so no minute loses what it held and nothing is counted
    twice. A step forward leaves the minutes it skipped empty."""
    metrics = Metrics()
    clock = FakeClock(1_800_000_000.0)  # a minute's turn
    recorder = TrendRecorder(
        metrics, store, instance="local", days=lambda: 7.0, retention_days=lambda: 30.0,
        clock=clock,
    )  # fmt: skip
    recorder.record()
    events = metrics.events_received.labels(source="sse")
    events.inc(10)
    metrics.delivery_seconds.observe(0.02)
    clock.now += 60
    first = recorder.record()
    events.inc(20)
    clock.now += 60
    recorder.record()
    events.inc(5)
    metrics.delivery_seconds.observe(4.0)
    clock.now += 60 - 90  # a minute passes, and the clock is stepped back 90 s
    merged = recorder.record()
    assert first is not None
    assert merged is not None
    assert merged.minute == first.minute
    assert merged.events == 15
    assert merged.latency_p99 is not None
    assert first.latency_p99 is not None
    assert merged.latency_p99 > first.latency_p99  # the worse of the two minutes
    rows = {r.minute: r.events for r in store.trends(0)}
    assert rows == {1_800_000_000: 15, 1_800_000_060: 20}
    events.inc(7)
    clock.now += 3600  # stepped forward an hour
    recorder.record()
    rows = {r.minute: r.events for r in store.trends(0)}
    assert sum(rows.values()) == 42
    assert len(rows) == 3  # the hour skipped holds no minute


def test_buckets_sum_minutes_and_instances() -> None:
    rows = [
        TrendMinute(minute=600, instance="a", events=1, latency_p95=0.1),
        TrendMinute(minute=600, instance="b", events=2, latency_p95=0.3),
        TrendMinute(minute=660, instance="a", events=4, delivered=1),
        TrendMinute(minute=1200, instance="a", events=8),
    ]
    buckets = bucketed(rows, since=600, until=1259, step=300)
    assert [b.start for b in buckets] == [600, 900, 1200]
    assert [b.counts["events"] for b in buckets] == [7, 0, 8]
    assert buckets[0].latency_p95 == 0.3  # the worst minute's
    assert buckets[1].latency_p95 is None


def _seed(data: Path, now: float) -> None:
    store = open_store(data / DB_NAME)
    try:
        minute = int(now // 60 * 60)
        for back in range(1, 4):
            store.save_trend(
                TrendMinute(minute=minute - back * 60, instance="local", events=back, delivered=1,
                            latency_p50=0.05)
            )  # fmt: skip
        store.save_trend(TrendMinute(minute=minute - 3 * 86_400, instance="local", events=100))
    finally:
        store.close()


def test_export_metrics_as_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:

    data = tmp_path / "data"
    data.mkdir()
    _seed(data, time.time())
    assert (
        main(["export", "metrics", "--data-dir", str(data), "--since", "1h", "--format", "json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 60
    rows = [r for r in out["rows"] if r["events"]]
    assert [r["events"] for r in rows] == [3, 2, 1]
    assert rows[0]["latency_p50_ms"] == 50.0
    assert len(out["rows"]) in (59, 60)  # every minute of the hour, empty ones too
    assert (
        main(["export", "metrics", "--data-dir", str(data), "--since", "7d", "--step", "1d"]) == 0
    )
    table = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert sum(int(r["events"]) for r in table) == 106  # the 3-day-old minute too
    assert list(table[0]) == [
        "start", "events", "queued", "delivered", "failures", "rate_limited", "errors",
        "latency_p50_ms", "latency_p95_ms", "latency_p99_ms",
    ]  # fmt: skip


def test_export_refuses_a_bad_duration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "metrics", "--data-dir", str(tmp_path), "--since", "soon"]) == 2
    assert "is not a duration" in capsys.readouterr().err
    assert main(["export", "metrics", "--data-dir", str(tmp_path / "none")]) == 1
    assert "no database" in capsys.readouterr().err


@pytest.mark.timeout(60)
async def test_what_was_counted_before_a_stop_is_in_the_trends(
    sim: Simulator, runtime_settings: Settings, tmp_path: Path
) -> None:
    """A stop (an upgrade, a restart) comes between two minute turns: what the engine counted
    since the last turn, the deliveries of its stop's grace period included, is written before
    it goes, not lost with the process. The next engine adds to that minute."""
    engine = Runtime(runtime_settings, data_dir=tmp_path)
    await engine.start()
    try:
        await connected(engine)
        tracked = sorted(sim.tracked_system_ids)[0]
        await sim.killstream.push_kill(sim.generator.make_killmail(system_id=tracked))
        await wait_for(lambda: engine.metrics.total("wc_notifications_delivered_total") >= 1)
    finally:
        await engine.stop()
    m = engine.metrics
    with contextlib.closing(open_store(tmp_path / DB_NAME)) as store:
        rows = store.trends(0)
    assert sum(r.events for r in rows) == m.total("wc_events_received_total")
    assert sum(r.delivered for r in rows) == m.total("wc_notifications_delivered_total") >= 1
    assert sum(r.queued for r in rows) == m.total("wc_notifications_queued_total")


@pytest.mark.parametrize("since", ["400d", "9" * 400 + "d", "99999999999999999999999h"])
def test_export_refuses_a_span_longer_than_trends_are_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    """Trends are kept at most 366 days (``[trends] days``). A longer ``--since`` built one
    empty row per minute of it in memory: ``999999999999d`` got the command killed for want of
    memory, and a number too big for a float ended in an ``OverflowError`` traceback."""
    data = tmp_path / "data"
    data.mkdir()
    _seed(data, time.time())
    assert main(["export", "metrics", "--data-dir", str(data), "--since", since]) == 2
    err = capsys.readouterr().err
    assert "--since" in err
    assert "366d" in err


def test_the_first_row_of_an_export_holds_its_whole_minute_or_bucket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The first row starts at its bucket's start (``--since 1h`` at 10:37:25: 09:37:00; with
    ``--step 1h``: 09:00:00) and must count every minute of it. Only the minutes from
    ``now - since`` on were read, so the first row of every export (and of the console's trends
    chart) counted nothing of the minutes before that instant: a minute row read 0, an hour
    row a fraction of its hour, a dip at the start of every chart."""
    data = tmp_path / "data"
    data.mkdir()
    now = time.time()
    store = open_store(data / DB_NAME)
    try:
        # One event in every minute from three hours back to now (the export reads at most 2h).
        start = int((now - 3 * 3600) // 3600 * 3600)
        for minute in range(start, int(now // 60 * 60) + 1, 60):
            store.save_trend(TrendMinute(minute=minute, instance="local", events=1))
    finally:
        store.close()
    assert (
        main(["export", "metrics", "--data-dir", str(data), "--since", "1h", "--format", "json"])
        == 0
    )
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["events"] for r in rows] == [1] * len(rows)
    assert len(rows) == 60
    argv = ["export", "metrics", "--data-dir", str(data), "--since", "2h", "--step", "1h"]
    assert main([*argv, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows[0]["events"] == 60  # the hour the span starts in, whole
    assert rows[1]["events"] == 60


def test_delivery_latency_of_minutes_is_measured_not_capped_at_a_minute(store: Store) -> None:
    """Notifications held through a Discord outage, an open breaker or a restart are delivered
    minutes after they were written: ``wc_delivery_seconds`` ended at a 60 s bucket, so their
    latency fell in ``+Inf`` and every percentile (the trends, the export, the dashboard's
    ``histogram_quantile``) read 60 s, whether they waited two minutes or an hour."""
    metrics = Metrics()
    clock = FakeClock(1_800_000_000.0)
    recorder = TrendRecorder(
        metrics, store, instance="local", days=lambda: 7.0, retention_days=lambda: 30.0,
        clock=clock,
    )  # fmt: skip
    recorder.record()
    for seconds in (700.0, 800.0, 900.0, 1000.0):  # a quarter of an hour behind
        metrics.delivery_seconds.observe(seconds)
    clock.now += 60
    row = recorder.record()
    assert row is not None
    assert row.latency_p50 is not None
    assert 600 <= row.latency_p50 <= 1800
    assert row.latency_p99 is not None
    assert 600 <= row.latency_p99 <= 1800


async def test_a_database_that_does_not_answer_skips_a_minute_and_stops_no_recording(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Reading the minute already written fails (the PostgreSQL server ended the connection, as
    the chaos cluster test's failover does). The minute is skipped, as one the store cannot
    write is, said and counted; the recorder goes on. It raised, so the trends task failed and
    was restarted by the supervisor, a traceback logged as "task failed; restarting" (seen in
    test_chaos_cluster seed 37's engine log)."""
    metrics = Metrics()
    clock = FakeClock(1_800_000_059.999)  # each turn comes a millisecond later
    recorder = TrendRecorder(
        metrics, store, instance="local", days=lambda: 7.0, retention_days=lambda: 30.0,
        clock=clock,
    )  # fmt: skip
    read = store.trends

    def ended(*_args: object) -> list[TrendMinute]:  # the fault: no server to end under a test
        raise sqlite3.OperationalError("terminating connection due to administrator command")

    store.trends = ended  # type: ignore[method-assign]
    task = asyncio.create_task(recorder.run())
    try:
        await wait_for(
            lambda: task.done() or metrics.value("wc_errors_total", component="trends") >= 2,
            10,
            "a skipped minute counted",
        )
        assert not task.done()
        said = [r for r in caplog.records if r.getMessage().startswith("trends: a minute not")]
        assert "terminating connection" in said[0].ctx["error"]  # type: ignore[attr-defined]
        store.trends = read  # type: ignore[method-assign]
        metrics.events_received.labels(source="sse").inc(3)
        await wait_for(lambda: sum(r.events for r in read(0)) == 3, 10, "the next minute written")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, sqlite3.OperationalError):
            await task
