"""EsiClient against FakeEsi over loopback: names bisection, Expires, ETag/304, error limit."""

from __future__ import annotations

import contextlib

import pytest

from tests.http.conftest import FaultServer, Reply
from wanderer_console.enrich.esi import EsiClient, EsiError, EsiErrorLimited, plausible_name_id
from wanderer_console.http.client import HttpClient
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.server import AppServer

from .conftest import USER_AGENT, EsiEnv

UNKNOWN_CHARACTER = 95_000_123  # in the character range, but no such pilot
PLANET = 40_000_017  # celestial: no /universe/names category, must never be sent


def test_plausible_name_ids() -> None:
    assert plausible_name_id(587)  # Rifter
    assert plausible_name_id(30_000_142)  # Jita
    assert plausible_name_id(2_112_345_678)
    assert not plausible_name_id(0)
    assert not plausible_name_id(-5)
    assert not plausible_name_id(PLANET)
    assert not plausible_name_id(1_000_000_000_016)  # an item / structure id


async def test_names_batch_with_one_unknown_resolves_the_others(esi_env: EsiEnv) -> None:
    esi = esi_env.client()
    known = list(esi_env.gen.characters)[:20] + list(esi_env.gen.systems)[:5] + [587]
    result = await esi.names([*known, UNKNOWN_CHARACTER, PLANET])
    assert set(result) == set(known)
    first = known[0]
    assert result[first] == (esi_env.gen.names[first], "character")
    assert result[587][1] == "inventory_type"
    assert esi.stats.names_unknown == 1
    assert esi.stats.names_skipped == 1
    assert esi.stats.names_bisections >= 1
    assert all(PLANET not in body for body in esi_env.fake.names_bodies)
    # The whole batch was tried first, and failed as a whole.
    assert len(esi_env.fake.names_bodies[0]) == len(known) + 1


async def test_names_batches_are_capped_at_1000(esi_env: EsiEnv) -> None:
    gen = esi_env.gen
    while len(gen.characters) < 1500:
        gen.new_character()
    esi = esi_env.client()
    result = await esi.names(gen.characters)
    assert len(result) == len(gen.characters)
    sizes = [len(body) for body in esi_env.fake.names_bodies]
    assert sizes == [1000, len(gen.characters) - 1000]


async def test_get_sends_user_agent_and_honours_expires(esi_env: EsiEnv) -> None:
    esi = esi_env.client()
    cid = next(iter(esi_env.gen.characters))
    first = await esi.character(cid)
    assert first.data is not None
    assert first.data["name"] == esi_env.gen.names[cid]
    assert first.expires_at is not None
    again = await esi.character(cid)
    assert again.from_cache
    assert again.data == first.data
    assert esi_env.fake.hits[f"/characters/{cid}"] == 1
    assert esi_env.fake.user_agents == {USER_AGENT: 1}


async def test_etag_304_reuses_cached_body(esi_env: EsiEnv) -> None:
    esi_env.fake.expires_in = -1  # already expired: every call revalidates
    esi = esi_env.client()
    corp_id = next(iter(esi_env.gen.corporations))
    first = await esi.corporation(corp_id)
    second = await esi.corporation(corp_id)
    assert first.etag is not None
    assert not first.from_cache
    assert second.from_cache
    assert second.data == first.data
    assert esi_env.fake.hits[f"/corporations/{corp_id}"] == 2
    assert esi_env.fake.not_modified == 1
    assert esi.stats.not_modified == 1


async def test_unknown_entity_is_none(esi_env: EsiEnv) -> None:
    esi = esi_env.client()
    result = await esi.alliance(999_999_990)
    assert result.data is None


async def test_server_errors_and_error_limit(esi_env: EsiEnv) -> None:
    esi = esi_env.client()
    esi_env.fake.force_status = 503
    sid = next(iter(esi_env.gen.systems))
    with pytest.raises(EsiError) as failed:
        await esi.system(sid)
    assert failed.value.status == 503
    # Budget nearly spent: the client stops before ESI starts answering 420.
    esi_env.fake.force_status = None
    esi_env.fake.error_limit = 5
    answered = await esi.system(sid)  # 200, but remain < 10: blocked from now on
    assert answered.data is not None
    assert esi.stats.error_limit_remain == 4
    before = esi_env.fake.requests
    other = list(esi_env.gen.systems)[1]
    with pytest.raises(EsiErrorLimited):
        await esi.system(other)
    assert esi_env.fake.requests == before


async def test_fake_answers_420_when_budget_spent() -> None:
    from wanderer_console.http.client import HttpClient
    from wanderer_console.sim.esi import FakeEsi
    from wanderer_console.sim.server import AppServer

    fake = FakeEsi(DataGenerator(3, systems=5, characters=5), error_limit=2)
    server = AppServer(fake.app)
    await server.start()
    http = HttpClient("esi", timeout=5.0)
    try:
        for _ in range(2):
            response = await http.get(f"{server.url}/characters/1")
            assert response.status == 404
        limited = await http.get(f"{server.url}/characters/1")
        assert limited.status == 420
        assert limited.headers["x-esi-error-limit-remain"] == "0"
        assert int(limited.headers["x-esi-error-limit-reset"]) > 0
    finally:
        await http.aclose()
        await server.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-esi-error-limit-remain": "\u00b2", "x-esi-error-limit-reset": "30"},
        {"x-esi-error-limit-remain": "95", "x-esi-error-limit-reset": "\u00b3"},
        {"retry-after": "\u00b9"},
    ],
)
async def test_a_garbled_error_limit_header_is_ignored(headers: dict[str, str]) -> None:
    """One stray byte in ESI's limit headers (``0xB2`` reads as ``²``, which ``isdigit`` calls
    a digit and ``int`` refuses) raised ``ValueError`` out of every call: not an
    :class:`EsiError`, so the cache warming and the pinned refresh died on it. The header is
    now ignored, like a missing one."""
    faults = FaultServer()
    faults.always("/characters/7", Reply(200, headers, b'{"name": "Seven"}'))
    faults.always("/characters/8", Reply(429, headers, b'{"error": "slow down"}'))
    server = AppServer(faults.app())
    await server.start()
    http = HttpClient("esi", timeout=5.0)
    try:
        esi = EsiClient(http, server.url, USER_AGENT)
        found = await esi.character(7)
        assert found.data == {"name": "Seven"}
        with pytest.raises(EsiErrorLimited):
            await esi.character(8)
    finally:
        await http.aclose()
        await server.stop()


async def test_a_names_row_with_a_null_name_or_id_is_skipped_not_cached_as_none() -> None:
    """``/universe/names`` rows are trusted field by field: a ``null`` name was cached as the
    pilot's name "None" for a day, and a row with a ``null`` id failed the whole batch (every
    other name in it lost). A row without a usable id, name or category is now left out (its id
    is unknown, cached for the negative TTL only) and counted; the others are kept."""
    body = (
        b'[{"id": 95000001, "name": null, "category": "character"},'
        b' {"id": null, "name": "Ghost", "category": "character"},'
        b' {"id": 95000003, "name": "Carol", "category": null},'
        b' {"id": 95000002, "name": "Bob", "category": "character", "extra": [1, 2]}]'
    )
    faults = FaultServer()
    faults.always("/universe/names", Reply(200, {}, body))
    server = AppServer(faults.app())
    await server.start()
    http = HttpClient("esi", timeout=5.0)
    try:
        esi = EsiClient(http, server.url, USER_AGENT)
        found = await esi.names([95000001, 95000002, 95000003])
        assert found == {95000002: ("Bob", "character")}
        assert esi.stats.names_malformed == 3
    finally:
        await http.aclose()
        await server.stop()


@pytest.mark.parametrize(
    "headers",
    [
        {"x-esi-error-limit-remain": "5", "x-esi-error-limit-reset": "99999999999"},
        {"x-esi-error-limit-remain": "5", "x-esi-error-limit-reset": "9" * 400},
        {"retry-after": "9" * 400},
        {"x-esi-error-limit-remain": "5", "x-esi-error-limit-reset": "9" * 5000},
    ],
)
async def test_a_huge_error_limit_wait_is_capped(headers: dict[str, str]) -> None:
    """ESI's error window is a minute, yet a reset or ``Retry-After`` of 10^11 seconds blocked
    every look-up for three thousand years (every kill named by ids until a restart), and one
    of 400 digits raised ``OverflowError`` (no :class:`EsiError`: the warming and the pinned
    refresh died on it), one of 5,000 digits ``ValueError`` (past ``int``'s limit). The wait is
    now at most ten minutes, like the map stream's; an unreadable one is a minute."""
    now = [1_000_000.0]
    faults = FaultServer()
    faults.then("/characters/7", Reply(429 if "retry-after" in headers else 200, headers, b"{}"))
    faults.always("/characters/7", Reply(200, {}, b'{"name": "Seven"}'))
    server = AppServer(faults.app())
    await server.start()
    http = HttpClient("esi", timeout=5.0)
    try:
        esi = EsiClient(http, server.url, USER_AGENT, clock=lambda: now[0])
        with contextlib.suppress(EsiErrorLimited):
            await esi.character(7)
        with pytest.raises(EsiErrorLimited):
            await esi.character(7)  # blocked for a while: no request
        assert faults.count("/characters/7") == 1
        now[0] += 600.0
        found = await esi.character(7)
        assert found.data == {"name": "Seven"}
    finally:
        await http.aclose()
        await server.stop()
