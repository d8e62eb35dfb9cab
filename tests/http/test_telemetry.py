"""Telemetry: metrics by service/method/status, one redacted log line per failed request."""

from __future__ import annotations

import logging

import pytest

from tests.http.conftest import FaultServer, Reply
from wanderer_console.http import HttpClient, HttpServiceSettings, build_client, open_sse
from wanderer_console.http.telemetry import http_metrics
from wanderer_console.telemetry.logging import JsonFormatter
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(20)

SETTINGS = HttpServiceSettings(
    timeout_seconds=2.0,
    retry_attempts=3,
    retry_backoff_base_seconds=0.01,
    retry_backoff_max_seconds=0.02,
    rate_per_second=0,
    breaker_failures=100,
)
TOKEN = "sEcReT-WebhookToken_123"


async def test_failed_request_logged_once_with_token_redacted(
    fault_server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    path = f"/api/webhooks/123456/{TOKEN}"
    fault_server.always(path, Reply(500, body=b"boom"))
    client = build_client("discord", SETTINGS, metrics=Metrics())
    caplog.set_level(logging.INFO, logger="wanderer_console.http")
    try:
        response = await client.post(f"{fault_server.url}{path}", json={}, idempotent=True)
    finally:
        await client.aclose()
    assert response.status == 500
    assert fault_server.count(path) == 3  # three attempts ...
    failures = [r for r in caplog.records if r.name == "wanderer_console.http.client"]
    assert len(failures) == 1  # ... one log line
    record = failures[0]
    line = JsonFormatter().format(record)
    assert TOKEN not in line
    assert TOKEN not in str(record.__dict__)
    assert "/api/webhooks/123456/***" in line
    ctx = record.__dict__["ctx"]
    assert ctx["status"] == 500
    assert ctx["attempts"] == 3


async def test_transport_failure_logged_once_redacted(caplog: pytest.LogCaptureFixture) -> None:
    client = build_client("discord", SETTINGS, metrics=Metrics())
    caplog.set_level(logging.INFO, logger="wanderer_console.http")
    try:
        with pytest.raises(Exception, match="connect"):
            await client.get(f"http://127.0.0.1:9/api/webhooks/1/{TOKEN}")
    finally:
        await client.aclose()
    failures = [r for r in caplog.records if r.name == "wanderer_console.http.client"]
    assert len(failures) == 1
    assert TOKEN not in JsonFormatter().format(failures[0])
    assert TOKEN not in str(failures[0].__dict__)


async def test_metrics_count_requests_statuses_and_bytes(fault_server: FaultServer) -> None:
    fault_server.then("/m", Reply(200, body=b"x" * 100), Reply(404, body=b"nope"))
    metrics = Metrics()
    client = build_client("esi", SETTINGS, metrics=metrics)
    try:
        await client.get(f"{fault_server.url}/m")
        await client.get(f"{fault_server.url}/m")
        await client.post(f"{fault_server.url}/m", json=[1, 2, 3])
    finally:
        await client.aclose()
    value = metrics.value
    assert value("wc_http_requests_total", service="esi", method="GET", status="200") == 1
    assert value("wc_http_requests_total", service="esi", method="GET", status="404") == 1
    assert value("wc_http_requests_total", service="esi", method="POST", status="200") == 1
    assert value("wc_http_request_seconds_count", service="esi") == 3
    assert value("wc_http_bytes_in_total", service="esi") == 100 + 4 + len(b'{"ok": true}')
    assert value("wc_http_bytes_out_total", service="esi") == len(b"[1,2,3]")
    assert b"wc_http_requests_total" in metrics.exposition()


async def test_two_clients_share_one_registry(fault_server: FaultServer) -> None:
    metrics = Metrics()
    a = build_client("esi", SETTINGS, metrics=metrics)
    b = build_client("map", SETTINGS, metrics=metrics)
    try:
        await a.get(f"{fault_server.url}/s")
        await b.get(f"{fault_server.url}/s")
    finally:
        await a.aclose()
        await b.aclose()
    requests = http_metrics(metrics).requests
    assert Metrics.split(requests, "service") == {"esi": 1.0, "map": 1.0}


@pytest.mark.slow
async def test_sse_stream_is_not_subject_to_retry_caps(fault_server: FaultServer) -> None:
    settings = SETTINGS.model_copy(update={"retry_max_seconds": 0.05, "timeout_seconds": 1.0})
    metrics = Metrics()
    client = build_client("map", settings, metrics=metrics)
    try:
        async with open_sse(client, f"{fault_server.url}/sse", idle_timeout=2.0) as stream:
            assert stream.status == 200
            data = [event.data async for event in stream.events()]
    finally:
        await client.aclose()
    assert data == ["0", "1", "2"]
    assert fault_server.count("/sse") == 1
    assert metrics.value("wc_http_bytes_in_total", service="map") > 0


async def test_plain_client_keeps_working(fault_server: FaultServer) -> None:
    client = HttpClient("esi", timeout=2.0)
    try:
        response = await client.get(f"{fault_server.url}/plain")
    finally:
        await client.aclose()
    assert response.ok
    assert response.json() == {"ok": True}
    assert client.breakers_snapshot() == {}
    assert client.breaker_events == []


@pytest.mark.slow
async def test_cancelled_request_stays_a_cancellation_and_is_counted(
    fault_server: FaultServer,
) -> None:
    """A send cancelled at shutdown re-raises CancelledError (it used to become an
    UnboundLocalError, which the supervisor took for a crash and restarted the task)."""
    import asyncio

    fault_server.always("/slow", Reply(200, delay=5.0))
    metrics = Metrics()
    client = build_client("discord", SETTINGS, metrics=metrics)
    try:
        request = asyncio.create_task(client.post(f"{fault_server.url}/slow", json={}))
        await asyncio.sleep(0.2)
        request.cancel()
        with pytest.raises(asyncio.CancelledError):
            await request
    finally:
        await client.aclose()
    value = metrics.value
    assert (
        value("wc_http_requests_total", service="discord", method="POST", status="cancelled") == 1
    )
