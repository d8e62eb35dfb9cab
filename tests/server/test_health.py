"""``/health``, ``/ready`` and ``/metrics`` over real loopback sockets."""

from __future__ import annotations

import asyncio
import gc
import shutil
import weakref

import httpx
import pytest
from prometheus_client import Gauge

from tests.support import wait_for
from wanderer_console import __version__
from wanderer_console.runtime import Runtime
from wanderer_console.server.app import HttpSurface
from wanderer_console.server.health import ALERTS_FIRING_METRIC, metrics_summary
from wanderer_console.sim import Simulator
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(60)


@pytest.mark.slow
async def test_health_and_ready(client: httpx.AsyncClient) -> None:
    health = await client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert health.headers["x-request-id"]
    ready = await client.get("/ready", headers={"x-request-id": "abc-123"})
    assert ready.status_code == 200, ready.text
    body = ready.json()
    cluster = body.pop("cluster", None)  # on PostgreSQL: this engine and its leases
    assert body == {"ready": True, "status": "ok", "reasons": [], "dead_targets": []}
    if cluster is not None:
        assert cluster["maps"] == ["demo"]
        assert [i["this"] for i in cluster["instances"]] == [True]
        assert cluster["unowned"] == []
    assert ready.headers["x-request-id"] == "abc-123"


@pytest.mark.slow
async def test_ready_names_the_reasons_when_the_store_is_gone(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    runtime.store.close()
    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert "store: database not reachable" in ready.json()["reasons"]


@pytest.mark.slow
async def test_metrics_exposition_passes_promtool(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "wc_events_received_total" in response.text
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'); .ci/run installs it")
    process = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(response.content), 30)
    assert process.returncode == 0, output.decode()


async def test_server_is_loopback_by_default() -> None:
    from wanderer_console.config.model import ServerSettings

    defaults = ServerSettings()
    assert defaults.host == "127.0.0.1"
    assert defaults.port == 8787


@pytest.mark.slow
async def test_health_carries_a_metrics_summary_next_to_version_and_uptime(
    sim: Simulator, runtime: Runtime, client: httpx.AsyncClient, ingest_key: str
) -> None:
    event = {"title": "Fleet forming", "notification_type": "system"}
    auth = {"authorization": f"Bearer {ingest_key}"}
    posted = await client.post("/api/v1/events", json=event, headers=auth)
    assert posted.status_code == 200, posted.text
    await wait_for(lambda: runtime.metrics.total("wc_notifications_delivered_total") >= 1)
    await runtime.drain(timeout=5.0)
    body = (await client.get("/health")).json()
    assert body["version"] == __version__
    assert body["uptime_seconds"] >= 0
    summary = body["metrics"]
    assert set(summary) == {"events_in", "notifications_out", "outbox_depth", "alerts_firing"}
    assert summary["events_in"] == int(runtime.metrics.total("wc_events_received_total")) >= 1
    delivered = int(runtime.metrics.total("wc_notifications_delivered_total"))
    assert summary["notifications_out"] == delivered >= 1
    assert summary["outbox_depth"] == int(runtime.metrics.value("wc_outbox_pending"))
    assert summary["alerts_firing"] == 0  # no alert fires on a healthy engine
    cache = body["cache"]
    assert cache == {
        "score": runtime.cache_report()["score"],
        "recommendations": runtime.cache_report()["recommendations"],
        "memory_bytes": runtime.cache_report()["memory_bytes"]["total"],
    }
    assert 0 <= cache["score"] <= 100
    assert isinstance(cache["memory_bytes"], int)


def test_alerts_firing_sums_the_alert_gauge_once_one_is_registered() -> None:
    metrics = Metrics()
    assert metrics_summary(metrics)["alerts_firing"] == 0
    firing = Gauge(ALERTS_FIRING_METRIC, "Alert firing", ["rule"], registry=metrics.registry)
    firing.labels(rule="outbox_depth").set(1)
    firing.labels(rule="source_down").set(1)
    firing.labels(rule="breaker_open").set(0)
    metrics.outbox_pending.set(7)
    metrics.events_received.labels(source="api").inc(3)
    metrics.notifications_delivered.labels(type="kill").inc(2)
    assert metrics_summary(metrics) == {
        "events_in": 3,
        "notifications_out": 2,
        "outbox_depth": 7,
        "alerts_firing": 2,
    }


@pytest.mark.slow
async def test_the_connections_gauge_leaves_a_stopped_server(runtime: Runtime) -> None:
    """``wc_server_connections`` kept reading the stopped server's connection guard: the gauge
    held the old surface alive (and its count). Stopped, it reads 0 and holds nothing; a server
    started again is counted."""
    old = runtime.http
    assert old is not None, runtime.http_error
    async with httpx.AsyncClient(base_url=old.url, timeout=10.0) as http:
        assert (await http.get("/health")).status_code == 200
        await wait_for(lambda: runtime.metrics.value("wc_server_connections") == 1, 5)
    await old.stop()
    runtime.http = None
    guard = weakref.ref(old.guard)
    del old
    gc.collect()
    assert guard() is None, "the gauge still holds the stopped server"
    assert runtime.metrics.value("wc_server_connections") == 0

    again = HttpSurface(runtime, host="127.0.0.1", port=0)
    await again.start()
    runtime.http = again  # the runtime's stop stops it
    async with httpx.AsyncClient(base_url=again.url, timeout=10.0) as http:
        assert (await http.get("/health")).status_code == 200
        await wait_for(lambda: runtime.metrics.value("wc_server_connections") == 1, 5)
