"""An enrichment service that accepts connections and never answers costs a few kills their look-up
bound, not every kill: the engine awaits each kill's look-ups before the next event, so a silent
Janice or ESI waited out kill after kill holds the whole pipeline (and, the queue full, the
sources). The look-ups' HTTP requests must end within the look-up's own bound, so the host's
circuit breaker sees them fail and opens; from then on the look-ups fail at once.

Each test counts the kills that waited (requests that were sent, not failed fast by the open
breaker) on a real socket on 127.0.0.1 that reads requests and answers none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import SecretStr

from wanderer_console.config.model import JaniceSettings
from wanderer_console.domain.killmail import Killmail
from wanderer_console.enrich.cache import CacheFacade
from wanderer_console.enrich.esi import EsiClient
from wanderer_console.enrich.kills import CacheSystemInfo, KillEnricher
from wanderer_console.enrich.notable import NotableItems
from wanderer_console.enrich.recent_kills import RecentKills
from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import settings_for
from wanderer_console.http.telemetry import http_metrics
from wanderer_console.sim.janice import FakeJanice
from wanderer_console.sim.server import AppServer
from wanderer_console.telemetry.metrics import Metrics

from .conftest import USER_AGENT, EsiEnv

KILLS = 6
OPENS_AFTER = 2
"""Failures that open the test clients' breakers (fewer kills to wait out on the old code)."""
REASONS = ("timeout", "circuit_open", "unreachable", "esi", "refused", "status", "invalid")


class SilentServer:
    """Accepts connections, reads each request head, answers nothing (until stopped)."""

    def __init__(self) -> None:
        self.requests = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def silent() -> AsyncIterator[SilentServer]:
    server = SilentServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def _client(service: str, metrics: Metrics) -> HttpClient:
    settings = settings_for(service).model_copy(update={"breaker_failures": OPENS_AFTER})
    return build_client(service, settings, metrics=metrics)


def _waited(metrics: Metrics, service: str) -> int:
    """Requests of ``service`` that were sent (any outcome but the open breaker's fast fail)."""
    by_status = Metrics.split(http_metrics(metrics).requests, "status")
    return int(sum(n for status, n in by_status.items() if status != "circuit_open"))


def _state(http: HttpClient) -> str:
    (breaker,) = http.breakers_snapshot().values()
    return breaker["state"]


async def test_a_silent_janice_opens_its_breaker_and_later_kills_do_not_wait(
    esi_env: EsiEnv, silent: SilentServer
) -> None:
    metrics = Metrics()
    janice = _client("janice", metrics)
    settings = JaniceSettings(enabled=True, api_token=SecretStr("t"), url=silent.url)
    notable = NotableItems(
        lambda: settings,
        CacheFacade(esi_env.client()),
        esi_env.client(),
        janice,
        timeout=1.0,
        registry=metrics.registry,
    )
    kills = []
    for _ in range(KILLS):
        wire = esi_env.gen.make_killmail()
        kid = int(wire["killmail_id"])
        esi_env.fake.killmails[kid] = {
            "killmail_id": kid,
            "victim": {"items": [{"item_type_id": 587, "quantity_dropped": 1}]},
        }
        kills.append(Killmail.from_wire(wire))
    try:
        for km in kills:
            await asyncio.wait_for(notable.prefetch(km), 30)  # a safety net, not the bound
            assert notable.peek(km) == []
        assert notable.failures == KILLS
        assert _waited(metrics, "janice") == OPENS_AFTER
        assert _state(janice) == "open"
        # What an operator sees: the failures by reason, the timeouts, then the open breaker.
        failed = {r: metrics.value("wc_notable_failures_total", reason=r) for r in REASONS}
        assert failed == {
            **dict.fromkeys(REASONS, 0.0),
            "timeout": OPENS_AFTER,
            "circuit_open": KILLS - OPENS_AFTER,
        }
    finally:
        await janice.aclose()


async def test_a_refused_janice_token_is_counted_as_refused(
    esi_env: EsiEnv, caplog: pytest.LogCaptureFixture
) -> None:
    janice = FakeJanice("the-right-key")
    server = AppServer(janice.app)
    await server.start()
    metrics = Metrics()
    http = _client("janice", metrics)
    settings = JaniceSettings(enabled=True, api_token=SecretStr("a-wrong-key"), url=server.url)
    notable = NotableItems(
        lambda: settings,
        CacheFacade(esi_env.client()),
        esi_env.client(),
        http,
        registry=metrics.registry,
    )
    wire = esi_env.gen.make_killmail()
    kid = int(wire["killmail_id"])
    esi_env.fake.killmails[kid] = {
        "killmail_id": kid,
        "victim": {"items": [{"item_type_id": 587, "quantity_dropped": 1}]},
    }
    try:
        await asyncio.wait_for(notable.prefetch(Killmail.from_wire(wire)), 30)
    finally:
        await http.aclose()
        await server.stop()
    assert metrics.value("wc_notable_failures_total", reason="refused") == 1
    (record,) = [r for r in caplog.records if r.name == "wanderer_console.enrich.notable"]
    ctx = record.ctx  # type: ignore[attr-defined]
    assert ctx["reason"] == "refused"
    assert "check JANICE_API_TOKEN" in ctx["error"]
    assert "a-wrong-key" not in str(ctx)


def _name_missing(esi_env: EsiEnv) -> Killmail:
    """A kill whose only unknown is its victim's pilot name (one ``/universe/names`` call)."""
    km = Killmail.from_wire(esi_env.gen.make_killmail())
    assert KillEnricher.complete(km)
    victim = km.victim.model_copy(update={"character_name": None})
    return km.model_copy(update={"victim": victim})


async def test_a_silent_esi_opens_its_breaker_and_later_kills_do_not_wait_for_names(
    esi_env: EsiEnv, silent: SilentServer
) -> None:
    metrics = Metrics()
    esi = _client("esi", metrics)
    cache = CacheFacade(EsiClient(esi, silent.url, USER_AGENT))
    enricher = KillEnricher(cache, timeout=1.0)
    try:
        for _ in range(KILLS):
            km = _name_missing(esi_env)
            assert not enricher.complete(km)
            await asyncio.wait_for(enricher.prefetch(km), 30)
        assert enricher.failures == KILLS
        assert _waited(metrics, "esi") == OPENS_AFTER
        assert _state(esi) == "open"
    finally:
        await cache.cancel_loads()
        await esi.aclose()


async def test_a_silent_esi_opens_its_breaker_and_later_kills_do_not_wait_for_routes(
    esi_env: EsiEnv, silent: SilentServer
) -> None:
    metrics = Metrics()
    esi = _client("esi", metrics)
    cache = CacheFacade(EsiClient(esi, silent.url, USER_AGENT))
    info = CacheSystemInfo(cache, timeout=1.0)
    try:
        for n in range(KILLS):
            # A distance clause asks a route not looked up yet (another one for every kill).
            await asyncio.wait_for(info.prefetch({(30000001, 30000100 + n)}, set()), 30)
        assert info.failures == KILLS
        assert _waited(metrics, "esi") == OPENS_AFTER
        assert _state(esi) == "open"
    finally:
        await cache.cancel_loads()
        await esi.aclose()


class _Slow:
    """An ASGI app answering ``seconds`` late: a healthy host, just not instant."""

    def __init__(self, app: Any, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(self.seconds)
        await self.app(scope, receive, send)


async def test_a_slow_esi_does_not_open_a_healthy_janices_breaker(esi_env: EsiEnv) -> None:
    # An appraisal asks ESI for the killmail, then Janice, within one bound: with ESI slow,
    # Janice's request got only what ESI left of it (a fifth of the bound) and timed out.
    # That timeout is the caller's budget running out, no verdict on Janice: counted, it
    # opened Janice's breaker, and kills went without their loot after ESI was fast again.
    janice = FakeJanice("t")
    server = AppServer(_Slow(janice.app, 0.4))
    await server.start()
    metrics = Metrics()
    http = _client("janice", metrics)
    cache = CacheFacade(esi_env.client())
    (name, _category) = (await cache.names([587]))[587]  # the item's name, known beforehand
    janice.prices[name] = 1e12
    settings = JaniceSettings(enabled=True, api_token=SecretStr("t"), url=server.url)
    notable = NotableItems(
        lambda: settings, cache, esi_env.client(), http, timeout=1.0, registry=metrics.registry
    )

    def kill() -> Killmail:
        wire = esi_env.gen.make_killmail()
        kid = int(wire["killmail_id"])
        esi_env.fake.killmails[kid] = {
            "killmail_id": kid,
            "victim": {"items": [{"item_type_id": 587, "quantity_dropped": 1}]},
        }
        return Killmail.from_wire(wire)

    try:
        esi_env.fake.latency = 0.8
        for _ in range(OPENS_AFTER + 1):
            km = kill()
            await asyncio.wait_for(notable.prefetch(km), 30)
            assert notable.peek(km) == []  # no time left for Janice: no list
        assert _state(http) == "closed"
        esi_env.fake.latency = 0.0
        km = kill()
        await asyncio.wait_for(notable.prefetch(km), 30)
        assert notable.peek(km)  # Janice was asked, and answered
    finally:
        await http.aclose()
        await server.stop()


async def test_a_silent_recent_kills_host_opens_its_breaker_and_later_systems_do_not_wait(
    silent: SilentServer,
) -> None:
    # A new system's "Recent Kills" is asked before its notification, on the pipeline's path:
    # cut by its own timeout (a cancellation, no verdict), the request never opened the
    # breaker, and every new system waited the whole timeout.
    metrics = Metrics()
    http = _client("killstream", metrics)
    recent = RecentKills(CacheFacade(), http, silent.url, timeout=1.0)
    try:
        for n in range(KILLS):
            assert await asyncio.wait_for(recent.for_system(30000100 + n), 30) is None
        assert recent.failures == KILLS
        assert _waited(metrics, "killstream") == OPENS_AFTER
        assert _state(http) == "open"
    finally:
        await http.aclose()
