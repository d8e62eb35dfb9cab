"""``/health``, ``/ready`` and ``/metrics`` over real loopback sockets."""

from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest

from wanderer_console.runtime import Runtime

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
