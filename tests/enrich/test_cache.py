"""CacheFacade over FakeEsi: single flight, warm restart, versions, expiry, insights, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tests.http.conftest import FaultServer, Reply
from tests.support import wait_for
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient, EsiError
from wanderer_console.http.client import HttpClient
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore

from .conftest import EsiEnv


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_concurrent_misses_make_one_request(esi_env: EsiEnv) -> None:
    cache = CacheFacade(esi_env.client())
    cid = next(iter(esi_env.gen.characters))
    results = await asyncio.gather(*(cache.get_character(cid) for _ in range(100)))
    assert esi_env.fake.hits[f"/characters/{cid}"] == 1
    assert esi_env.fake.requests == 1
    assert all(r == results[0] for r in results)
    assert results[0] is not None
    assert results[0]["name"] == esi_env.gen.names[cid]
    stats = cache.stats()["namespaces"]["character"]
    assert stats["misses"] == 100
    assert stats["loads"] == 1
    assert stats["coalesced"] == 99
    assert await cache.get_character(cid) == results[0]
    assert cache.stats()["namespaces"]["character"]["hits"] == 1
    # The document also fed the name namespace for renderers.
    assert cache.peek_name(cid) == esi_env.gen.names[cid]


@pytest.mark.slow
async def test_warm_restart_makes_no_esi_calls(esi_env: EsiEnv, tmp_path: Path) -> None:
    gen = esi_env.gen
    chars = list(gen.characters)[:12]
    systems = list(gen.systems)[:6]
    cache = CacheFacade(esi_env.client(), version=3)
    progress = await cache.warm(chars, systems)
    corps = {gen.characters[c].corporation_id for c in chars}
    alliances = {gen.characters[c].alliance_id for c in chars} - {None}
    alliances |= {gen.corporations[c].alliance_id for c in corps} - {None}
    assert (
        progress["done"]
        == progress["total"]
        == len(chars) + len(systems) + len(corps) + len(alliances)
    )
    assert cache.stats()["warming"]["running"] is False
    # The pilots in bulk: one names call and one affiliation call, no document each.
    assert esi_env.fake.affiliation_bodies == [sorted(chars)]
    assert [sorted(body) for body in esi_env.fake.names_bodies] == [sorted(chars)]
    documents = [p for p in esi_env.fake.hits if p.startswith("/characters/")]
    assert documents == ["/characters/affiliation"]
    assert cache.stats()["misses"] == 0  # warming loads are not operator-visible misses
    store = SqliteStore(tmp_path / "console.db")
    saved = cache.save_warm(store)
    assert saved >= progress["total"]
    store.close()

    esi_env.fake.hits.clear()
    reopened = SqliteStore(tmp_path / "console.db")
    restarted = CacheFacade(esi_env.client(), version=3)
    assert restarted.load_warm(reopened) == saved
    assert await restarted.names(chars) == {c: (gen.names[c], "character") for c in chars}
    for corp in corps:
        assert await restarted.get_corporation(corp) is not None
    for alliance in alliances:
        assert alliance is not None
        assert await restarted.get_alliance(alliance) is not None
    for sid in systems:
        assert await restarted.get_system(sid) is not None
    # Warming the same map again after the restart asks ESI nothing either.
    await restarted.warm(chars, systems)
    assert esi_env.fake.requests == 0
    assert restarted.stats()["misses"] == 0
    assert restarted.peek_ticker(next(iter(corps))) == gen.tickers[next(iter(corps))]

    # A newer cache version ignores what the older one persisted.
    newer = CacheFacade(esi_env.client(), version=4)
    assert newer.load_warm(reopened) == 0
    reopened.close()


async def test_bulk_names_with_an_unknown_id(esi_env: EsiEnv) -> None:
    cache = CacheFacade(esi_env.client())
    known = list(esi_env.gen.characters)[:10] + list(esi_env.gen.alliances)[:2]
    result = await cache.names([*known, 95_000_001])
    assert set(result) == set(known)
    requests = esi_env.fake.requests
    again = await cache.names([*known, 95_000_001])  # unknown id is remembered too
    assert again == result
    assert esi_env.fake.requests == requests
    assert cache.peek_name(known[-1]) == esi_env.gen.names[known[-1]]


async def test_version_bump_invalidates(esi_env: EsiEnv) -> None:
    cache = CacheFacade(esi_env.client(), version=1)
    cid = next(iter(esi_env.gen.characters))
    await cache.get_character(cid)
    assert cache.peek("character", cid) is not None
    assert cache.bump_version() == 2
    assert cache.peek("character", cid) is None
    await cache.get_character(cid)
    stats = cache.stats()
    assert stats["version"] == 2
    assert stats["namespaces"]["character"]["loads"] == 2
    assert stats["namespaces"]["character"]["invalidations"] >= 1
    with pytest.raises(ValueError, match="must grow"):
        cache.bump_version(1)


async def test_expirations_and_evictions_are_counted() -> None:
    clock = FakeClock()
    cache = CacheFacade(maxsize=2, clock=clock)
    cache.put_with_ttl("system", 1, {"name": "A"}, 10)
    cache.put_with_ttl("system", 2, {"name": "B"}, 100)
    cache.put_with_ttl("system", 3, {"name": "C"}, 100)  # evicts 1 (least recently used)
    ns = cache.stats()["namespaces"]["system"]
    assert ns["evictions"] == 1
    assert ns["size"] == 2
    assert cache.peek("system", 1) is None
    clock.now += 50
    assert cache.peek_system(2) == {"name": "B"}
    cache.put_with_ttl("system", 4, {"name": "D"}, 20)
    clock.now += 30
    assert cache.peek_system(4) is None  # its own 20 s passed
    clock.now += 100
    assert cache.expire() >= 1
    ns = cache.stats()["namespaces"]["system"]
    assert ns["expirations"] >= 2
    assert ns["size"] == 0
    with pytest.raises(KeyError):
        cache.put_with_ttl("planet", 1, {}, 10)


async def test_entries_expire_at_their_own_deadline_without_a_sweep() -> None:
    """Each entry's deadline (ESI's Expires) is the cache's own: a write expires what is due
    and nothing else, and ``expire()`` finds only due entries (no walk of the live ones: at a
    thousand maps that walk held the event loop for 64 ms after every warming)."""
    clock = FakeClock()
    cache = CacheFacade(maxsize=100, clock=clock)
    for entity_id in range(10):
        cache.put_with_ttl(
            "system", entity_id, {"name": str(entity_id)}, 10 if entity_id < 3 else 500
        )
    clock.now += 11
    cache.put_with_ttl("system", 99, {"name": "new"}, 500)  # a write expires the three due
    ns = cache.stats()["namespaces"]["system"]
    assert (ns["size"], ns["expirations"]) == (8, 3)
    assert cache.expire() == 0  # nothing else was due
    clock.now += 500
    assert cache.expire() == 8
    assert cache.stats()["namespaces"]["system"]["size"] == 0


async def test_expires_header_sets_ttl(esi_env: EsiEnv) -> None:
    esi_env.fake.expires_in = 120
    cache = CacheFacade(esi_env.client(), default_ttl={"type": 86_400.0})
    await cache.get_type(587)
    entry_deadline = cache._caches["type"][(1, 587)].deadline  # white-box check
    assert 100 <= entry_deadline - time.time() <= 125


async def test_loader_failure_propagates_and_is_not_cached(esi_env: EsiEnv) -> None:
    cache = CacheFacade(esi_env.client())
    sid = next(iter(esi_env.gen.systems))
    esi_env.fake.force_status = 502
    with pytest.raises(EsiError):
        await cache.get_system(sid)
    esi_env.fake.force_status = None
    assert await cache.get_system(sid) is not None
    stats = cache.stats()["namespaces"]["system"]
    assert stats["load_errors"] == 1
    assert stats["loads"] == 2
    # Unknown ids are cached negatively: no second request.
    assert await cache.get_character(95_000_777) is None
    assert await cache.get_character(95_000_777) is None
    assert esi_env.fake.hits["/characters/95000777"] == 1


async def test_insights_list_most_missed_keys(esi_env: EsiEnv) -> None:
    clock = FakeClock()
    cache = CacheFacade(esi_env.client(), min_ttl=1, clock=clock)
    chars = list(esi_env.gen.characters)
    for _ in range(3):
        await cache.get_character(chars[0])
        cache.bump_version()  # force the next lookup to miss
    await cache.get_character(chars[1])
    await cache.get_character(chars[1])
    insights = cache.insights(top=2)
    assert insights["most_missed"][0] == {"namespace": "character", "key": chars[0], "misses": 3}
    assert insights["most_missed"][1]["key"] == chars[1]
    assert insights["hit_ratio"]["character"] == pytest.approx(1 / 5)


async def test_prometheus_counters(esi_env: EsiEnv) -> None:
    registry = CollectorRegistry()
    cache = CacheFacade(esi_env.client(), registry=registry)
    cid = next(iter(esi_env.gen.characters))
    await cache.get_character(cid)
    await cache.get_character(cid)
    text = generate_latest(registry).decode()
    assert 'wc_cache_hits_total{namespace="character"} 1.0' in text
    assert 'wc_cache_misses_total{namespace="character"} 1.0' in text
    assert 'wc_cache_size{namespace="character"} 1.0' in text
    assert "wc_cache_latency_seconds_bucket" in text


@pytest.mark.slow
def test_cache_bench_quick_prints_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console.bench.cache_bench", "--quick"],
        capture_output=True,
        check=True,
        timeout=60,
    )
    result = orjson.loads(done.stdout)
    for key in ("hit_ratio", "hit_latency_us", "miss_latency_us", "lookups", "esi_requests"):
        assert key in result
    assert set(result["hit_latency_us"]) == {"median", "p99"}
    assert 0 < result["hit_ratio"] < 1
    assert result["hit_latency_us"]["median"] > 0


async def test_a_failed_load_counts_as_a_load_error_for_entities_and_bulk_names(
    esi_env: EsiEnv,
) -> None:
    registry = CollectorRegistry()
    cache = CacheFacade(esi_env.client(), registry=registry)
    cid = next(iter(esi_env.gen.characters))
    esi_env.fake.force_status = 503  # ESI down: no usable answer
    with pytest.raises(EsiError):
        await cache.get_character(cid)
    with pytest.raises(EsiError):
        await cache.names([cid])
    for ns in ("character", "name"):
        assert registry.get_sample_value("wc_cache_load_errors_total", {"namespace": ns}) == 1
        assert cache.stats()["namespaces"][ns]["load_errors"] == 1


async def test_a_stop_cancels_lookups_that_outlive_their_callers(esi_env: EsiEnv) -> None:
    """A shared lookup keeps running when the caller that started it is cancelled: the engine's
    stop cancels it before the HTTP clients close, so nothing runs (or logs) after the stop."""
    esi_env.fake.latency = 30.0  # the answer would come long after the stop
    cache = CacheFacade(esi_env.client())
    system_id = next(iter(esi_env.gen.systems))
    caller = asyncio.create_task(cache.get_system(system_id))
    await wait_for(lambda: cache.stats()["inflight"], 5, "the lookup in flight")
    caller.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await caller
    assert cache.stats()["inflight"] == 1  # the load itself still runs

    await cache.cancel_loads()

    assert cache.stats()["inflight"] == 0


async def test_warming_without_esi_counts_every_pilot_as_failed_and_ends() -> None:
    """No ESI loader configured: warming still ends, every entity counted done and failed
    (the warming progress operators watch reaches its total)."""
    cache = CacheFacade()
    progress = await cache.warm([95000001, 95000002], [30000142])
    assert progress["done"] == progress["total"] == 3
    assert progress["failed"] == 3
    assert progress["running"] is False


def test_persisted_rows_of_the_wrong_shape_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows of the saved copy that are JSON but not what their namespace holds (hand edits, a
    build that saved another shape) were loaded as they were: a name saved as a bare string read
    as its first letter ("J" for Jita), a name or corporation of another type raised out of the
    renderers' peeks, which dropped every kill naming that id. They are now skipped at start with
    one warning; the well-formed rows still load."""
    store = SqliteStore(tmp_path / "console.db")
    later = time.time() + 3600
    store.save_cache_entries(
        [
            ("name", "30000142", 1, '"Jita"', later),
            ("name", "95000001", 1, "5", later),
            ("name", "95000002", 1, '["Bob", null]', later),
            ("corporation", "98000001", 1, '["ABC"]', later),
            ("affiliation", "95000003", 1, '{"corp": 1}', later),
            ("name", "95000004", 1, '["Alice", "character"]', later),
            ("corporation", "98000002", 1, '{"name": "Good Corp", "ticker": "GOOD"}', later),
        ]
    )
    cache = CacheFacade(None, version=1)
    with caplog.at_level(logging.WARNING, logger="wanderer_console.enrich.cache"):
        assert cache.load_warm(store) == 2
    store.close()
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "saved cache rows of the wrong shape skipped"
    ]
    assert cache.peek_name(30000142) is None  # not "J": asked from ESI again
    assert cache.peek_name(95000001) is None
    assert cache.peek_name(95000002) is None
    assert cache.peek_ticker(98000001) is None
    assert cache.peek("affiliation", 95000003) is None
    assert cache.peek_name(95000004) == "Alice"
    assert cache.peek_ticker(98000002) == "GOOD"


async def test_warming_survives_documents_with_garbled_ids() -> None:
    """A corporation document whose ``alliance_id`` is not a number (or a pilot's whose
    ``corporation_id`` is not) raised ``ValueError`` out of the warming: the systems, warmed
    last, never were, and the supervisor restarted the task into the same error for ever. Such
    an id is now skipped and the warming finishes."""
    pilot, good_pilot, corp, system = 95_000_001, 95_000_002, 98_000_002, 30_000_142
    faults = FaultServer()
    faults.always(
        "/universe/names",
        Reply(200, {}, b'[{"id": 95000001, "name": "A", "category": "character"}]'),
    )
    faults.always("/characters/affiliation", Reply(503, {}, b"{}"))  # one document per pilot
    faults.always(f"/characters/{pilot}", Reply(200, {}, b'{"name": "A", "corporation_id": "x"}'))
    faults.always(
        f"/characters/{good_pilot}", Reply(200, {}, b'{"name": "B", "corporation_id": 98000002}')
    )
    faults.always(
        f"/corporations/{corp}",
        Reply(200, {}, b'{"name": "D", "ticker": "D", "alliance_id": "abc"}'),
    )
    faults.always(f"/universe/systems/{system}", Reply(200, {}, b'{"name": "Jita"}'))
    server = AppServer(faults.app())
    await server.start()
    http = HttpClient("esi", timeout=5.0)
    try:
        cache = CacheFacade(EsiClient(http, server.url, "tests"))
        progress = await cache.warm([pilot, good_pilot], [system])
        assert progress["running"] is False
        assert cache.peek_ticker(corp) == "D"
        assert cache.peek_name(system) == "Jita"  # warmed after the corporations
    finally:
        await http.aclose()
        await server.stop()
