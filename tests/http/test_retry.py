"""Retry layer against a real loopback server: Retry-After, idempotency, timeouts."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.http.conftest import FaultServer, Reply
from wanderer_console.http import HttpServiceSettings, TransportError, build_client
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(20)

SETTINGS = HttpServiceSettings(
    timeout_seconds=2.0,
    retry_attempts=3,
    retry_max_seconds=10.0,
    retry_backoff_base_seconds=0.01,
    retry_backoff_max_seconds=0.05,
    rate_per_second=0,
    breaker_failures=100,
)


@pytest.mark.slow
async def test_retry_waits_at_least_retry_after(fault_server: FaultServer) -> None:
    fault_server.then("/r", Reply(503, {"retry-after": "1"}))
    client = build_client("esi", SETTINGS, metrics=Metrics())
    try:
        started = time.monotonic()
        response = await client.get(f"{fault_server.url}/r")
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    assert response.status == 200
    assert elapsed >= 1.0
    first, second = (hit.at for hit in fault_server.hits)
    assert second - first >= 1.0


@pytest.mark.slow
async def test_429_retry_after_is_honoured(fault_server: FaultServer) -> None:
    fault_server.then("/r", Reply(429, {"retry-after": "0.4"}), Reply(429, {"retry-after": "0.4"}))
    client = build_client("esi", SETTINGS, metrics=Metrics())
    try:
        response = await client.get(f"{fault_server.url}/r")
    finally:
        await client.aclose()
    assert response.status == 200
    times = [hit.at for hit in fault_server.hits]
    assert len(times) == 3
    assert all(b - a >= 0.4 for a, b in itertools.pairwise(times))


async def test_retry_after_beyond_the_time_cap_returns_the_answer(
    fault_server: FaultServer,
) -> None:
    fault_server.then("/r", Reply(503, {"retry-after": "30"}))
    client = build_client("esi", SETTINGS, metrics=Metrics())
    try:
        response = await client.get(f"{fault_server.url}/r")
    finally:
        await client.aclose()
    assert response.status == 503
    assert fault_server.count("/r") == 1


async def test_post_not_marked_idempotent_is_sent_once(fault_server: FaultServer) -> None:
    fault_server.always("/p", Reply(503))
    client = build_client("discord", SETTINGS, metrics=Metrics())
    try:
        response = await client.post(f"{fault_server.url}/p", json={"a": 1})
    finally:
        await client.aclose()
    assert response.status == 503
    assert fault_server.count("/p") == 1


async def test_post_marked_idempotent_is_retried(fault_server: FaultServer) -> None:
    fault_server.then("/p", Reply(503), Reply(500))
    client = build_client("discord", SETTINGS, metrics=Metrics())
    try:
        response = await client.post(f"{fault_server.url}/p", json={"a": 1}, idempotent=True)
    finally:
        await client.aclose()
    assert response.status == 200
    assert fault_server.count("/p") == 3


async def test_get_is_not_retried_beyond_the_attempt_cap(fault_server: FaultServer) -> None:
    fault_server.always("/g", Reply(502))
    metrics = Metrics()
    client = build_client("esi", SETTINGS, metrics=metrics)
    try:
        response = await client.get(f"{fault_server.url}/g")
    finally:
        await client.aclose()
    assert response.status == 502
    assert fault_server.count("/g") == 3
    assert metrics.value("wc_http_retries_total", service="esi", reason="502") == 2


@pytest.mark.slow
async def test_timeouts_are_retried(fault_server: FaultServer) -> None:
    fault_server.always("/slow", Reply(200, delay=1.0))
    settings = SETTINGS.model_copy(update={"timeout_seconds": 0.2, "retry_attempts": 2})
    client = build_client("esi", settings, metrics=Metrics())
    try:
        with pytest.raises(TransportError) as caught:
            await client.get(f"{fault_server.url}/slow")
    finally:
        await client.aclose()
    assert caught.value.kind == "timeout"
    assert fault_server.count("/slow") == 2


async def test_connect_errors_are_retried_and_surface_as_transport_error() -> None:
    metrics = Metrics()
    client = build_client("esi", SETTINGS, metrics=metrics)
    try:
        with pytest.raises(TransportError) as caught:
            await client.get("http://127.0.0.1:9/nothing-listens-here")
    finally:
        await client.aclose()
    assert caught.value.kind == "connect"
    assert metrics.value("wc_http_retries_total", service="esi", reason="ConnectError") == 2


async def test_a_retry_after_date_beyond_any_calendar_is_ignored(
    fault_server: FaultServer,
) -> None:
    """A ``Retry-After`` date too far ahead for a timestamp (a broken proxy, a garbled header)
    is unusable like any unparseable value: the request is retried on its own backoff instead
    of an ``OverflowError`` escaping the client (callers expect a status or a TransportError)."""
    fault_server.then("/r", Reply(503, {"retry-after": "Wed, 21 Oct 9999999999 07:28:00 GMT"}))
    client = build_client("esi", SETTINGS, metrics=Metrics())
    try:
        response = await client.get(f"{fault_server.url}/r")
    finally:
        await client.aclose()
    assert response.status == 200
    assert fault_server.count("/r") == 2
