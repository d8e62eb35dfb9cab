"""The cache's critical entries (pinned, refreshed), its health score, recommendations and
memory, and the benchmark's hit ratio for critical data."""

from __future__ import annotations

from typing import Any

import pytest

from wanderer_console.bench.cache_bench import run as run_cache_bench
from wanderer_console.domain.killmail import Killmail
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.cache_health import cache_health, deep_size, memory_bytes
from wanderer_console.enrich.kills import KillEnricher

from .conftest import EsiEnv


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_pinned_entries_survive_the_size_bound_but_not_their_ttl() -> None:
    clock = FakeClock()
    cache = CacheFacade(maxsize=2, clock=clock)
    cache.pin("system", [1])
    cache.put_with_ttl("system", 1, {"name": "Tracked"}, 100)
    for other in range(2, 10):  # churn that evicts everything unpinned
        cache.put_with_ttl("system", other, {"name": f"S{other}"}, 100)
    assert cache.stats()["namespaces"]["system"]["evictions"] >= 7
    assert cache.peek_system(1) == {"name": "Tracked"}
    assert cache.peek_system(2) is None
    assert cache.pinned() == {"system": 1}
    clock.now += 101
    assert cache.peek_system(1) is None  # its TTL still applies
    cache.pin("system", [])
    assert cache.pinned() == {}


async def test_refresh_reloads_pinned_entries_before_they_expire(esi_env: EsiEnv) -> None:
    clock = FakeClock()
    cache = CacheFacade(esi_env.client(), clock=clock, default_ttl={"system": 1000})
    systems = list(esi_env.gen.systems)[:3]
    cache.pin("system", systems)
    # Not held yet: the refresh loads them.
    assert await cache.refresh_pinned(within=60) == 3
    assert cache.pinned() == {"system": 3}
    before = esi_env.fake.requests
    assert await cache.refresh_pinned(within=60) == 0  # all fresh: nothing to do
    assert esi_env.fake.requests == before
    deadlines = [cache.lookup_deadline("system", s) for s in systems]
    ttl_left = min(d for d in deadlines if d is not None) - clock.now
    clock.now += ttl_left - 30  # now within 60 s of expiring
    assert await cache.refresh_pinned(within=60) == 3
    renewed = [cache.lookup_deadline("system", s) for s in systems]
    assert all(d is not None and d > clock.now + 60 for d in renewed)  # reloaded: a new TTL
    # Refresh loads count neither as hits nor as misses.
    ns = cache.stats()["namespaces"]["system"]
    assert ns["hits"] == ns["misses"] == 0


class _Watching:
    """The ESI client with a count of the character loads in flight, and at each load whether
    every pinned pilot's entry could still be read (the refresh must not drop one first)."""

    def __init__(self, client: Any, clock: FakeClock) -> None:
        self._client = client
        self._clock = clock
        self.cache: CacheFacade | None = None
        self.pinned: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self.unreadable: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    async def character(self, character_id: int) -> Any:
        assert self.cache is not None
        self.unreadable += [c for c in self.pinned if self.cache.peek("character", c) is None]
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            return await self._client.character(character_id)
        finally:
            self.in_flight -= 1


async def test_a_refresh_keeps_entries_readable_and_bounds_its_loads(esi_env: EsiEnv) -> None:
    """Reloading many pinned pilots runs at most ``concurrency`` loads at once, and no entry
    disappears while its reload runs (a kill rendered meanwhile still has the name)."""
    clock = FakeClock()
    watching = _Watching(esi_env.client(), clock)
    cache = CacheFacade(watching, clock=clock, default_ttl={"character": 1000})
    watching.cache = cache
    pilots = list(esi_env.gen.characters)[:30]
    for pilot in pilots:
        await cache.get_character(pilot)
    cache.pin("character", pilots)
    watching.pinned = pilots
    watching.peak = 0
    watching._client = esi_env.client()  # a fresh one: no documents it could answer from memory
    deadlines = [cache.lookup_deadline("character", p) for p in pilots]
    clock.now = min(d for d in deadlines if d is not None) - 30  # all within 60 s of expiry
    assert await cache.refresh_pinned(within=60, concurrency=3) == len(pilots)
    assert watching.peak == 3
    assert watching.unreadable == []
    assert all(
        (d := cache.lookup_deadline("character", p)) is not None and d > clock.now + 60
        for p in pilots
    )


def test_memory_grows_with_the_entries() -> None:
    cache = CacheFacade()
    assert memory_bytes(cache)["total"] == 0
    for i in range(100):
        cache.put_with_ttl("character", i, {"name": f"Pilot {i}", "corporation_id": i}, 100)
    small = memory_bytes(cache)
    for i in range(100, 1000):
        cache.put_with_ttl("character", i, {"name": f"Pilot {i}", "corporation_id": i}, 100)
    large = memory_bytes(cache)
    assert small["character"] > 100 * deep_size({"name": "Pilot 1", "corporation_id": 1})
    assert 8 < large["character"] / small["character"] < 12
    assert large["total"] == sum(v for k, v in large.items() if k != "total")


async def test_health_scores_and_recommends(esi_env: EsiEnv) -> None:
    cache = CacheFacade(esi_env.client(), maxsize=5)
    healthy = cache_health(cache)
    assert healthy["score"] == 100
    assert healthy["recommendations"] == []
    characters = list(esi_env.gen.characters)[:40]
    for _ in range(3):
        for character in characters:  # 40 pilots through a 5-entry cache: evictions, misses
            await cache.get_character(character)
    sick = cache_health(cache)
    assert sick["score"] < 70
    assert any("raise [esi] cache_entries" in tip for tip in sick["recommendations"])
    assert any(tip.startswith("most missed:") for tip in sick["recommendations"])
    assert sick["memory_bytes"]["character"] > 0
    cache.pin("system", [123456789])  # an id ESI does not know: never held
    assert any("not loaded yet" in tip for tip in cache_health(cache)["recommendations"])


@pytest.mark.slow
async def test_the_bench_reaches_95_percent_for_critical_data() -> None:
    warm = await run_cache_bench(quick=True)
    cold = await run_cache_bench(quick=True, warm=False)
    assert warm["critical_hit_ratio"] >= 0.95
    assert warm["critical_lookups"] > 1000
    # Without warming and pinning the same replay misses much more of it.
    assert cold["critical_hit_ratio"] < 0.9


async def test_names_the_enricher_finds_cached_count_as_hits(esi_env: EsiEnv) -> None:
    cache = CacheFacade(esi_env.client())
    enricher = KillEnricher(cache)
    km = Killmail.from_wire(esi_env.gen.make_killmail(with_names=False))
    await enricher.prefetch(km)  # first sight: every name loaded (misses)
    first = cache.stats()["namespaces"]["name"]
    assert first["misses"] > 0
    assert first["hits"] == 0
    requests = esi_env.fake.requests
    await enricher.prefetch(km)  # the same names again: answered by the cache
    again = cache.stats()["namespaces"]["name"]
    assert again["hits"] == first["misses"]
    assert again["misses"] == first["misses"]
    assert esi_env.fake.requests == requests
