"""Scale in maps (issue 17): the map fleet the benchmark runs on, bounded map bootstraps, and
what the ``scale`` scenario reports (its figures, budget and failures), not its numbers."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import wait_for
from wanderer_console.bench import suite
from wanderer_console.bench.scale import ScaleSizes, budget, figures, problems, run_maps
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import MapSettings
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import HttpServiceSettings
from wanderer_console.ingest.items import Item
from wanderer_console.ingest.map_bootstrap import MapFeeds
from wanderer_console.sim.fleet import MapFleet
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(60)


# -- the fleet ---------------------------------------------------------------------------------


def test_fleet_maps_track_20_to_60_systems_and_5_to_50_pilots_overlapping() -> None:
    fleet = MapFleet(60, seed=3)
    assert len(fleet.maps) == 60
    for fleet_map in fleet.maps:
        assert 20 <= len(fleet_map.systems) <= 60
        assert 5 <= len(fleet_map.pilots) <= 50
        assert len(set(fleet_map.systems)) == len(fleet_map.systems)
    # Shared hubs and shared pilots: some systems and pilots are on many maps.
    assert max(len(maps) for maps in fleet.system_maps.values()) >= 10
    assert max(len(maps) for maps in fleet.pilot_maps.values()) >= 3
    slots = sum(len(m.systems) for m in fleet.maps)
    assert fleet.unique_systems() < slots
    # Every map is served by the one host, seeded with its tracking.
    for fleet_map in fleet.maps:
        fake = fleet.host.maps[fleet_map.slug]
        assert sorted(fake.tracked_system_ids) == sorted(fleet_map.systems)
        assert sorted(fake.tracked_character_ids) == sorted(fleet_map.pilots)


async def test_fleet_config_names_every_map_and_parses() -> None:
    async with MapFleet(5, seed=4) as fleet:
        settings, _ = parse_settings_text(fleet.config_text(), file="<fleet>", environ={})
        assert sorted(settings.maps) == [m.slug for m in fleet.maps]
        webhooks = {str(m.discord.webhook_url.get_secret_value()) for m in settings.maps.values()}
        assert len(webhooks) == 5  # every map its own webhook
        assert settings.console.startup_suppression_seconds == 0


async def test_fleet_outcome_counts_each_map_a_kill_concerns() -> None:
    async with MapFleet(3, seed=5) as fleet:
        for _ in range(30):
            await fleet.push_kill()
        outcome = fleet.outcome()
        assert outcome.kills == 30
        assert outcome.delivered == 0
        assert outcome.lost == outcome.expected > 0  # nothing listens: all pending
        maps, first, last = outcome.largest or (0, 0.0, 0.0)
        assert maps == max(len(m) for _, m in fleet._sent.values())
        assert (first, last) == (None, None)  # nothing arrived
        # One fan-out figure per expected notification: the maps its kill notifies.
        fan_outs = fleet.fan_outs()
        assert len(fan_outs) == outcome.expected
        assert sum(1 / n for n in fan_outs) == pytest.approx(
            sum(1 for _, maps in fleet._sent.values() if maps)
        )


async def test_a_fleet_pushes_the_same_kills_whatever_was_drawn_before() -> None:
    """The mix and the burst draw their kills from the fleet's seed when they start: what the
    start-up drew before (at the engine's pace) no longer changes them, so two runs meet the
    same fan-outs (the tail's)."""

    async def burst_maps(extra_draws: int) -> list[frozenset[str]]:
        async with MapFleet(40, seed=9) as fleet:
            for _ in range(extra_draws):
                await fleet.push_kill()
            fleet.reset_outcome()
            await fleet.burst(25)
            return [maps for _, maps in fleet._sent.values()]

    first, second = await burst_maps(0), await burst_maps(7)
    assert len(first) == 25
    assert first == second
    assert any(len(maps) > 1 for maps in first)  # kills that notify several maps among them


# -- bounded map bootstraps --------------------------------------------------------------------


async def test_at_most_n_map_loads_run_at_once(tmp_path: Path) -> None:
    async with MapFleet(12, seed=6) as fleet:
        fleet.host.rest_delay = 0.05  # a busy map server: loads overlap unless bounded
        index = TrackingIndex()
        store = SqliteStore(tmp_path / "events.db")
        metrics = Metrics()
        http = build_client("map", HttpServiceSettings(rate_per_second=0), metrics=metrics)
        tasks: list[asyncio.Task[None]] = []
        loaded: list[str] = []

        def spawn(name: str, factory: Callable[[], Awaitable[None]]) -> None:
            tasks.append(asyncio.create_task(factory(), name=name))  # type: ignore[arg-type]

        async def sink(item: Item) -> None:
            return None

        feeds = MapFeeds(
            index,
            store,
            sink,
            metrics,
            spawn=spawn,
            on_loaded=loaded.append,
            resync_after=lambda: 540.0,
            load_concurrency=3,
        )
        try:
            for fleet_map in fleet.maps:
                settings = MapSettings(url=fleet.map_url, api_key=fleet_map.api_key)
                feeds.start(
                    fleet_map.slug, settings.model_copy(update={"slug": fleet_map.slug}), http
                )
            await wait_for(lambda: len(loaded) == 12 and fleet.host.streaming() == 12)
            assert feeds.loading_peak == 3
            assert fleet.host.in_flight_peak <= 3  # each load asks twice, one after the other
            assert fleet.host.rest_calls.total() == 24
            assert sorted(index.tenants()) == sorted(m.slug for m in fleet.maps)
        finally:
            await cancel_and_wait(tasks)
            await http.aclose()
            store.close()


def test_start_jitter_grows_with_the_maps_and_is_capped() -> None:
    feeds = MapFeeds(
        TrackingIndex(),
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        Metrics(),
        spawn=lambda name, factory: None,
        on_loaded=lambda tenant: None,
        resync_after=lambda: 540.0,
    )
    assert feeds.start_delay() == 0.0  # no map: nothing to spread
    feeds.sources = dict.fromkeys(["one"])  # type: ignore[arg-type]
    assert all(feeds.start_delay() <= 0.002 for _ in range(100))
    feeds.sources = dict.fromkeys(str(n) for n in range(1000))  # type: ignore[arg-type]
    delays = [feeds.start_delay() for _ in range(1000)]
    assert max(delays) <= feeds.jitter_cap == 1.0
    assert min(delays) < 0.1 < 0.9 < max(delays)  # spread over the whole second


# -- the scenario's report ---------------------------------------------------------------------


def _run(maps: int, *, p99: float, lost: int = 0, streamed: bool = True) -> dict[str, Any]:
    start = {"streaming_s": 12.0 if streamed else None, "all_streaming": streamed}
    start |= {"streaming_maps": maps if streamed else maps // 2, "rest_calls_per_map": 2.0}
    start |= {"esi_calls_per_map": 18.0}
    latency = {"p50_ms": 5.0, "p99_ms": p99, "lost": lost, "doubled": 0, "unexpected": 0}
    return {
        "maps": maps,
        "cold": start,
        "warm": start,
        "rss_mb": 90.0 + maps * 0.2,
        "idle_cpu_share": 0.01,
        "mix_cpu_share": 0.1,
        "mix": latency,
        "burst": latency,
    }


def test_figures_are_flat_and_named_for_their_direction() -> None:
    runs = [_run(1, p99=10.0), _run(100, p99=20.0)]
    flat = figures(runs)
    assert flat["maps_100.mix_p99_ms"] == 20.0
    assert flat["maps_100.rss_mb"] == pytest.approx(110.0)
    assert flat["maps_1.streaming_warm_s"] == 12.0
    in_suite = suite.figures_of({"scale": {"figures": flat}})
    assert in_suite["scale.maps_100.rss_mb"] == pytest.approx(110.0)
    for figure in (
        "scale.maps_100.rss_mb",
        "scale.maps_100.mix_p99_ms",
        "scale.maps_100.idle_cpu_share",
        "scale.maps_100.streaming_warm_s",
    ):
        assert suite.direction_of(figure) == "lower"


def test_budget_judges_100_and_1000_maps() -> None:
    lines = {line["figure"]: line for line in budget([_run(100, p99=30.0), _run(1000, p99=40.0)])}
    assert not lines["scale.maps_100.mix_p99_ms"]["met"]  # 30 > 25
    assert lines["scale.maps_1000.mix_p99_ms"]["met"]  # 40 <= 50
    assert lines["scale.maps_100.rss_mb"]["met"]  # 110 <= 150
    assert lines["scale.maps_1000.streaming_warm_s"]["met"]
    never = budget([_run(1000, p99=1.0, streamed=False)])
    assert not next(line for line in never if line["figure"].endswith("streaming_warm_s"))["met"]


def test_lost_notifications_and_maps_that_never_streamed_are_failures() -> None:
    found = problems([_run(100, p99=1.0, lost=3, streamed=False)])
    assert any("mix: 3 lost" in p for p in found)
    assert any("cold start: only 50 streaming" in p for p in found)
    assert suite.problems_of({"scale": {"problems": found}})[: len(found)] == found


def test_scale_runs_only_when_named() -> None:
    assert "scale" in suite.SCENARIOS
    assert suite.QUICK.scale_maps == (1, 100)
    assert suite.FULL.scale_maps == (1, 100, 1000)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_the_scenario_at_its_smallest() -> None:
    sizes = ScaleSizes(maps=(3,), idle_seconds=0.5, mix_seconds=1.0, burst_kills=10)
    result = await run_maps(3, sizes, seed=2)
    assert result["cold"]["all_streaming"]
    assert result["warm"]["all_streaming"]
    assert result["cold"]["rest_calls_per_map"] >= 2  # systems and tracked characters
    assert result["mix"]["lost"] == 0
    assert result["burst"]["lost"] == 0
    assert result["mix"]["doubled"] == 0
    assert result["mix"]["notifications"] == result["mix"]["delivered"] > 0
    mix = result["mix"]
    assert 0 < mix["largest_kill_first_ms"] <= mix["largest_kill_last_ms"] <= mix["max_ms"]
    assert mix["largest_kill_maps"] == mix["fan_out_max"]
    assert result["rss_mb"] > 0
    assert Counter(problems([result])) == Counter()
