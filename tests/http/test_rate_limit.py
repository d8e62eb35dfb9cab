"""Rate limiter against a real loopback server: token bucket rate, ESI 420, Discord buckets."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.http.conftest import FaultServer, Reply
from tests.support import wait_for
from wanderer_console.domain.clock import FrozenClock
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.http import HttpServiceSettings, build_client
from wanderer_console.http.ratelimit import LONGEST_PAUSE, RateLimiter
from wanderer_console.http.sse import open_sse
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(20)

SETTINGS = HttpServiceSettings(
    timeout_seconds=2.0, retry_attempts=1, rate_per_second=0, breaker_failures=100
)


@pytest.mark.slow
async def test_token_bucket_holds_the_configured_rate(fault_server: FaultServer) -> None:
    settings = SETTINGS.model_copy(update={"rate_per_second": 200.0, "burst": 1})
    client = build_client("esi", settings, metrics=Metrics())
    pending = list(range(200))

    async def worker() -> None:
        while pending:
            pending.pop()
            assert (await client.get(f"{fault_server.url}/t")).status == 200

    try:
        await asyncio.gather(*(worker() for _ in range(8)))
    finally:
        await client.aclose()
    times = sorted(hit.at for hit in fault_server.hits)
    assert len(times) == 200
    # The bucket's promise is a ceiling: never faster than 200/s (a loaded machine may well be
    # slower, which is not the limiter's doing, so there is no floor). Checked over the whole
    # run and in every half-second window (100 requests plus the burst of 1, and a few requests of
    # timer slack).
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate <= 220.0, rate
    for i, start in enumerate(times):
        in_window = sum(1 for t in times[i:] if t - start < 0.5)
        assert in_window <= 105, (start, in_window)


@pytest.mark.slow
async def test_esi_420_pauses_every_call_to_the_host(fault_server: FaultServer) -> None:
    fault_server.then(
        "/a", Reply(420, {"x-esi-error-limit-remain": "0", "x-esi-error-limit-reset": "1"})
    )
    metrics = Metrics()
    client = build_client("esi", SETTINGS, metrics=metrics)
    try:
        assert (await client.get(f"{fault_server.url}/a")).status == 420
        assert (await client.get(f"{fault_server.url}/b")).status == 200
    finally:
        await client.aclose()
    # Where the requests arrive (timed from the first call's return, after the pause began, a
    # pause honoured to the letter can measure a hair under its length).
    first, second = (hit.at for hit in fault_server.hits)
    assert second - first >= 1.0
    assert (
        metrics.value("wc_http_rate_limit_pauses_total", service="esi", reason="esi_error_limit")
        == 1
    )


@pytest.mark.slow
async def test_low_esi_error_budget_pauses_the_host(fault_server: FaultServer) -> None:
    fault_server.then(
        "/a", Reply(404, {"x-esi-error-limit-remain": "5", "x-esi-error-limit-reset": "0.5"})
    )
    client = build_client("esi", SETTINGS, metrics=Metrics())
    try:
        await client.get(f"{fault_server.url}/a")
        await asyncio.gather(*(client.get(f"{fault_server.url}/c") for _ in range(5)))
    finally:
        await client.aclose()
    # Measured where the requests arrive (the pause runs from the answer's receipt, before the
    # client's call returned: timed from the return it can measure a hair under 0.5 s).
    low = next(hit.at for hit in fault_server.hits if hit.path == "/a")
    assert min(hit.at for hit in fault_server.hits if hit.path == "/c") - low >= 0.5


async def test_healthy_esi_error_budget_does_not_pause(fault_server: FaultServer) -> None:
    fault_server.then(
        "/a", Reply(200, {"x-esi-error-limit-remain": "95", "x-esi-error-limit-reset": "30"})
    )
    client = build_client("esi", SETTINGS, metrics=Metrics())
    try:
        await client.get(f"{fault_server.url}/a")
        started = time.monotonic()
        await client.get(f"{fault_server.url}/b")
        assert time.monotonic() - started < 0.5
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_discord_bucket_headers_pause_that_bucket(fault_server: FaultServer) -> None:
    hook = "/api/webhooks/1/token-one"
    sibling = "/api/webhooks/2/token-two"
    other = "/api/webhooks/3/token-three"
    exhausted = {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset-after": "0.6",
        "x-ratelimit-bucket": "abc",
    }
    fault_server.then(sibling, Reply(200, {**exhausted, "x-ratelimit-remaining": "3"}))
    fault_server.then(hook, Reply(200, exhausted))
    client = build_client("discord", SETTINGS, metrics=Metrics())
    try:
        await client.post(f"{fault_server.url}{sibling}", json={"content": "x"})  # learns bucket
        await client.post(f"{fault_server.url}{hook}", json={"content": "x"})  # exhausts it
        started = time.monotonic()
        await client.post(f"{fault_server.url}{other}", json={"content": "x"})
        unrelated = time.monotonic() - started
        await client.post(f"{fault_server.url}{hook}", json={"content": "x"})
        same_route = time.monotonic() - started
        await client.post(f"{fault_server.url}{sibling}", json={"content": "x"})
    finally:
        await client.aclose()
    assert unrelated < 0.3
    assert same_route >= 0.6 - 0.05
    hook_times = [h.at for h in fault_server.hits if h.path == hook]
    assert hook_times[1] - hook_times[0] >= 0.6
    sibling_times = [h.at for h in fault_server.hits if h.path == sibling]
    assert sibling_times[1] - hook_times[0] >= 0.6  # same bucket, paused too


@pytest.mark.slow
async def test_discord_global_429_pauses_the_host(fault_server: FaultServer) -> None:
    fault_server.then(
        "/api/webhooks/1/t",
        Reply(429, {"retry-after": "0.5", "x-ratelimit-global": "true"}),
    )
    client = build_client("discord", SETTINGS, metrics=Metrics())
    try:
        assert (await client.post(f"{fault_server.url}/api/webhooks/1/t", json={})).status == 429
        await client.post(f"{fault_server.url}/api/webhooks/9/u", json={})
        # Measured where the requests arrive: the pause runs from the 429's receipt, which is
        # after the first request reached the server and before the client's call returned
        # (timed from the return, a pause honoured to the microsecond measured 0.4997 s).
        first, second = (hit.at for hit in fault_server.hits)
        assert second - first >= 0.5
    finally:
        await client.aclose()


async def test_the_discord_client_leaves_bucket_pacing_to_the_dispatcher(
    fault_server: FaultServer,
) -> None:
    # The engine's Discord client (its default settings) does not learn pauses from the
    # headers: the dispatcher reads them per target, so a second pause here would only delay
    # a message the dispatcher already decided to send.
    hook = "/api/webhooks/1/token-one"
    exhausted = {
        "x-ratelimit-limit": "5",
        "x-ratelimit-remaining": "0",
        "x-ratelimit-reset-after": "2.0",
        "x-ratelimit-bucket": "abc",
    }
    fault_server.then(hook, Reply(200, exhausted))
    client = build_client("discord", metrics=Metrics())
    try:
        await client.post(f"{fault_server.url}{hook}", json={"content": "x"})
        started = time.monotonic()
        await client.post(f"{fault_server.url}{hook}", json={"content": "x"})
        waited = time.monotonic() - started
    finally:
        await client.aclose()
    assert waited < 1.0


@pytest.mark.slow
async def test_a_rate_key_paces_each_client_of_a_host_in_its_own_bucket(
    fault_server: FaultServer,
) -> None:
    # 2 requests a second, burst 1: four requests of one key take 1.5 s at least; four keys
    # with one request each are not held by each other's bucket.
    settings = SETTINGS.model_copy(update={"rate_per_second": 2.0, "burst": 1})
    client = build_client("map", settings, metrics=Metrics())
    try:
        started = time.monotonic()
        for key in ("map-a", "map-b", "map-c", "map-d"):
            assert (await client.get(f"{fault_server.url}/k", rate_key=key)).status == 200
        separate = time.monotonic() - started
        started = time.monotonic()
        for _ in range(4):
            assert (await client.get(f"{fault_server.url}/k", rate_key="map-e")).status == 200
        shared = time.monotonic() - started
    finally:
        await client.aclose()
    assert shared >= 1.4, shared  # one key: the bucket's 2/s (3 waits of 0.5 s)
    assert separate < shared / 2, (separate, shared)


@pytest.mark.slow
async def test_event_streams_of_several_maps_connect_each_in_its_own_bucket(
    fault_server: FaultServer,
) -> None:
    # A thousand maps on one host used to open their streams through the host's one bucket
    # (10/s: 100 s before the last map streamed). Each stream's connect has its map's key.
    fault_server.always("/s", Reply(200, {"content-type": "text/event-stream"}, b": ok\n\n"))
    settings = SETTINGS.model_copy(update={"rate_per_second": 2.0, "burst": 1})
    client = build_client("map", settings, metrics=Metrics())

    async def connect(key: str) -> None:
        async with open_sse(client, f"{fault_server.url}/s", rate_key=key) as stream:
            assert stream.status == 200

    try:
        started = time.monotonic()
        await asyncio.gather(*(connect(f"map-{n}") for n in range(6)))
        separate = time.monotonic() - started
        started = time.monotonic()
        await asyncio.gather(*(connect("one-map") for _ in range(4)))
        shared = time.monotonic() - started
    finally:
        await client.aclose()
    assert shared >= 1.4, shared  # one key: the bucket's 2/s (3 waits of 0.5 s)
    assert separate < shared / 2, (separate, shared)


@pytest.mark.parametrize("reset", ["inf", "1e999", "nan"])
async def test_an_esi_error_limit_reset_that_is_not_a_number_of_seconds_pauses_a_minute(
    fault_server: FaultServer, reset: str
) -> None:
    """``X-ESI-Error-Limit-Reset: inf`` (or an overflowing number) paused the host for ever:
    every later ESI call waited in the limiter until a restart. Not a finite number, it is
    treated as absent: the documented one-minute pause."""
    fault_server.then(
        "/a", Reply(420, {"x-esi-error-limit-remain": "0", "x-esi-error-limit-reset": reset})
    )
    clock = FrozenClock()
    client = build_client("esi", SETTINGS, metrics=Metrics(), clock=clock)
    try:
        assert (await client.get(f"{fault_server.url}/a")).status == 420
        assert (await client.get(f"{fault_server.url}/b")).status == 200
    finally:
        await client.aclose()
    assert clock.sleeps == [60.0]


class _HeldClock:
    """A clock whose ``sleep`` really waits, until the test moves the time past its end (a
    waiter can then be cancelled in the middle of its wait, as a timeout or a stop does)."""

    def __init__(self) -> None:
        self.mono = 0.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self.mono

    def wall(self) -> float:
        return 1_700_000_000.0 + self.mono

    async def sleep(self, seconds: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (self.mono + seconds, wake)
        self.sleepers.append(entry)
        try:
            await wake
        finally:
            self.sleepers.remove(entry)

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        for until, wake in self.sleepers:
            if until <= self.mono and not wake.done():
                wake.set_result(None)


async def test_a_request_abandoned_while_waiting_for_its_slot_gives_the_slot_back() -> None:
    """A request cancelled while it waited for its token (its timeout, a stop) kept the slot it
    had reserved: after three abandoned waiters, the next request waited three intervals more
    than the rate asks. Now the abandoned slots are free again: at 1 request/s, one second on,
    one request goes through at once, then one a second."""
    clock = _HeldClock()
    limiter = RateLimiter(
        HttpServiceSettings(rate_per_second=1.0, burst=2), clock=clock, service="esi"
    )
    await limiter.acquire("h", "/a")
    await limiter.acquire("h", "/a")  # the burst is spent
    abandoned = [asyncio.create_task(limiter.acquire("h", "/a")) for _ in range(3)]
    await wait_for(lambda: clock.sleepers, 5, "the requests waiting for a slot")
    await cancel_and_wait(abandoned)
    assert clock.sleepers == []

    through: list[float] = []

    async def request() -> None:
        await limiter.acquire("h", "/a")
        through.append(clock.mono)

    clock.advance(1.0)
    later = [asyncio.create_task(request()) for _ in range(3)]
    for seen in (1, 2, 3):
        # Each second lets one more through; the others still wait (for the clock).
        await wait_for(
            lambda seen=seen: len(through) >= seen and (len(through) == 3 or clock.sleepers),
            5,
            f"{seen} requests through at {clock.mono:g} s",
        )
        clock.advance(1.0)
    await cancel_and_wait(later)
    assert through == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(
    ("status", "headers"),
    [
        (420, {"x-esi-error-limit-remain": "0", "x-esi-error-limit-reset": "1e9"}),
        (429, {"retry-after": "1e9"}),
        (429, {"retry-after": "Fri, 31 Dec 9999 23:59:59 GMT"}),
        (200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset-after": "1e9"}),
        (429, {"retry-after": "1e9", "x-ratelimit-global": "true"}),
    ],
)
async def test_a_huge_pause_asked_by_a_header_is_cut_to_the_longest_pause(
    fault_server: FaultServer, status: int, headers: dict[str, str]
) -> None:
    """A finite but absurd ``Retry-After`` (or reset) paused the host or route for years: every
    later call waited in the limiter until a restart. A pause is now at most 10 minutes (no real
    window is that long; if the server still means it, its next answer says so again)."""
    fault_server.then("/a", Reply(status, headers))
    clock = FrozenClock()
    client = build_client("esi", SETTINGS, metrics=Metrics(), clock=clock)
    try:
        assert (await client.get(f"{fault_server.url}/a")).status == status
        assert (await client.get(f"{fault_server.url}/a")).status == 200
    finally:
        await client.aclose()
    assert clock.sleeps == [LONGEST_PAUSE] == [600.0]


async def test_requests_queued_through_an_esi_pause_go_at_the_rate_after_it() -> None:
    """ESI said stop (its error limit) while four requests queued for their turn at 1/s. They
    took their tokens during the pause, each at its second, then all waited the pause out and
    went together the moment it ended: four at once, the burst that trips the limit again. A
    token is now taken only once the host's pause is over, so after it they go one a second."""
    clock = _HeldClock()
    limiter = RateLimiter(
        HttpServiceSettings(rate_per_second=1.0, burst=1), clock=clock, service="esi"
    )
    await limiter.acquire("h", "/a")  # the burst is spent
    through: list[float] = []

    async def request() -> None:
        await limiter.acquire("h", "/a")
        through.append(clock.mono)

    queued = [asyncio.create_task(request()) for _ in range(4)]
    await wait_for(lambda: clock.sleepers, 5, "a request waiting for its slot")
    limiter.observe(
        "h",
        "/a",
        httpx.Response(
            420, headers={"x-esi-error-limit-remain": "0", "x-esi-error-limit-reset": "5"}
        ),
    )

    def settled() -> bool:
        """Every request is through, or one sleeps on the clock and none is woken and running."""
        waiting = [wake for _until, wake in clock.sleepers]
        return len(through) == 4 or (bool(waiting) and not any(w.done() for w in waiting))

    while len(through) < 4 and clock.mono < 20:
        await wait_for(settled, 5, f"the requests at {clock.mono:g} s")
        clock.advance(1.0)
    await cancel_and_wait(queued)
    assert through == [5.0, 6.0, 7.0, 8.0]
