"""The benchmark's PostgreSQL scenario: ingest and delivery on both backends in one run, the
PostgreSQL/SQLite ratios among the figures, and nothing of it without a database (the suite's
other scenarios unchanged). Run at tiny sizes: what is measured, not the figures."""

from __future__ import annotations

import itertools
import json
import statistics
import uuid
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from tests.store.pgtest import PG_URL_ENV, pg_base_url
from wanderer_console import cli
from wanderer_console.bench import pg_store, suite
from wanderer_console.bench.pg_store import bench_url
from wanderer_console.bench.suite import Sizes, direction_of, figures_of, problems_of

TINY = Sizes(
    ingest_killmails=200,
    ingest_rounds=2,
    latency_rates=(50,),
    latency_seconds=0.2,
    delivery_notifications=20,
    delivery_window_scale=20.0,
    cache_quick=True,
    memory_killmails=1_000,
    memory_time_limit=20.0,
    startup_tui=False,
    postgresql_rounds=2,
    postgresql_killmails=400,
    postgresql_unlimited_notifications=200,
)

FIGURES = (
    "postgresql.ingest.sqlite_killmails_per_second",
    "postgresql.ingest.postgresql_killmails_per_second",
    "postgresql.ingest.pg_sqlite_ratio",
    "postgresql.delivery.sqlite_share_of_ceiling",
    "postgresql.delivery.postgresql_share_of_ceiling",
    "postgresql.delivery.pg_sqlite_ratio",
    "postgresql.delivery_unlimited.sqlite_delivered_per_second",
    "postgresql.delivery_unlimited.postgresql_delivered_per_second",
    "postgresql.delivery_unlimited.pg_sqlite_ratio",
)


def test_every_postgresql_figure_has_a_direction_and_higher_is_better() -> None:
    assert {direction_of(figure) for figure in FIGURES} == {"higher"}


def test_figures_and_problems_come_from_the_raw_result() -> None:
    def pair(key: str, lite: float, pg: float) -> dict[str, Any]:
        return {f"sqlite_{key}": lite, f"postgresql_{key}": pg, "pg_sqlite_ratio": pg / lite}

    raw = {
        "ingest": pair("killmails_per_second", 10_000.0, 6_000.0),
        "delivery": pair("share_of_ceiling", 0.9, 0.9),
        "delivery_unlimited": pair("delivered_per_second", 4_000.0, 3_000.0),
        "lost": 2,
        "rejected_429": 1,
    }
    figures = figures_of({"postgresql": raw})
    assert set(figures) == set(FIGURES)
    assert figures["postgresql.ingest.pg_sqlite_ratio"] == pytest.approx(0.6)
    assert problems_of({"postgresql": raw}) == [
        "postgresql: 2 kills or notifications lost",
        "postgresql: 1 requests got a 429",
    ]
    assert figures_of({"postgresql": {"skipped": "no PostgreSQL database"}}) == {}


def test_without_a_database_the_scenario_is_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PG_URL_ENV, raising=False)
    assert bench_url(None) is None
    doc = suite.run_suite(TINY, only=["postgresql"])
    assert doc["scenarios"] == {}
    assert doc["figures"] == {}
    # Sizes without its rounds leave it out even with a database (the suite's test sizes).
    monkeypatch.setenv(PG_URL_ENV, "postgresql://u:p@127.0.0.1:1/none")
    doc = suite.run_suite(replace(TINY, postgresql_rounds=None), only=["postgresql"])
    assert doc["scenarios"] == {}


def test_bench_refuses_a_database_that_is_not_postgresql(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["bench", "--only", "postgresql", "--database", "mysql://x/y"]) == 2
    assert "postgresql://" in capsys.readouterr().err


@pytest.mark.postgresql
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ingest_and_delivery_run_on_both_backends_in_one_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    # This run's scratch schemas carry a prefix of their own, so the check below sees only
    # them (another bench on the same server, or one that crashed earlier, is not this run's).
    token = uuid.uuid4().hex[:8]
    numbers = itertools.count()
    monkeypatch.setattr(
        pg_store,
        "uuid",
        SimpleNamespace(uuid4=lambda: SimpleNamespace(hex=f"{token}{next(numbers):04d}")),
    )
    base = pg_base_url()
    url = bench_url(base)
    assert url is not None
    doc = suite.run_suite(TINY, only=["postgresql"], database=base)
    assert doc["problems"] == []
    figures = doc["figures"]
    for figure in FIGURES:
        assert figures[figure] > 0, figure
    raw = doc["scenarios"]["postgresql"]
    ingest = raw["ingest"]
    assert ingest["killmails_per_backend"] == TINY.postgresql_killmails
    assert ingest["lost"] == 0
    assert len(ingest["per_round"]) == TINY.postgresql_rounds
    assert ingest["pg_sqlite_ratio"] == pytest.approx(
        statistics.median(row["postgresql"] / row["sqlite"] for row in ingest["per_round"]),
        abs=0.002,
    )
    for part, count in (
        ("delivery", TINY.delivery_notifications),
        ("delivery_unlimited", TINY.postgresql_unlimited_notifications),
    ):
        for backend in ("sqlite", "postgresql"):
            assert raw[part][backend]["delivered"] == count, (part, backend)
            assert raw[part][backend]["rejected_429"] == 0, (part, backend)
    unlimited = raw["delivery_unlimited"]
    assert len(unlimited["ratio_per_round"]) == min(3, TINY.postgresql_rounds or 0)
    assert unlimited["pg_sqlite_ratio"] == pytest.approx(
        statistics.median(unlimited["ratio_per_round"]), abs=0.002
    )
    assert raw["two_instances"] == {"available": False, "why": "not run at these sizes"}
    # The database is named without its password, and the scratch schemas are gone.
    text = json.dumps(doc)
    assert url.secret() not in text
    assert str(url) in text
    with psycopg.connect(base, autocommit=True) as conn:
        left = conn.execute(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name LIKE %s",
            (f"wc_bench_{token}%",),
        ).fetchone()
    assert left == (0,)


@pytest.mark.postgresql
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_two_instances_share_the_delivery_and_every_kill_arrives_once() -> None:
    from wanderer_console.bench.pg_cluster import run_two_instances
    from wanderer_console.bench.pg_store import scratch_schema

    url = bench_url(pg_base_url())
    assert url is not None
    result = await run_two_instances(url, 80, bursts=2, schema=scratch_schema)
    one, two = result["one"], result["two"]
    assert one["maps_by_instance"] == {"a": 4}
    assert two["maps_by_instance"] == {"a": 2, "b": 2}
    assert set(two["messages_by_instance"]) == {"a", "b"}  # both engines sent
    assert sum(one["messages_by_instance"].values()) == one["messages"]
    for run in (one, two):
        assert (run["lost"], run["doubled"], run["unexpected"], run["rejected_429"]) == (0, 0, 0, 0)
        assert len(run["kills_per_second_per_burst"]) == 2
        assert run["kills_per_second"] > 0
    assert result["two_to_one_ratio"] == pytest.approx(
        two["kills_per_second"] / one["kills_per_second"], abs=0.002
    )
    figures = figures_of({"postgresql": {"two_instances": result}})
    assert set(figures) == {
        "postgresql.two_instances.one_instance_kills_per_second",
        "postgresql.two_instances.two_instances_kills_per_second",
        "postgresql.two_instances.two_to_one_ratio",
    }
    assert {direction_of(figure) for figure in figures} == {"higher"}
