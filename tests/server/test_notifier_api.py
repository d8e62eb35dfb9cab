"""Wanderer Notifier's ``/api/health`` and ``/api/status``, answered by the running engine."""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.server.notifier_api import extended_status
from wanderer_console.sim import Simulator


async def test_api_health_answers_as_the_notifiers(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"status", "timestamp"}
    assert body["status"] == "ok"
    assert datetime.fromisoformat(body["timestamp"].replace("Z", "+00:00")).tzinfo is not None


async def test_api_status_has_the_notifiers_sections_filled_from_the_engine(
    runtime: Runtime, sim: Simulator, client: httpx.AsyncClient
) -> None:
    system = sorted(sim.tracked_system_ids)[0]
    await sim.killstream.push_kill(sim.generator.make_killmail(system_id=system))
    counters = runtime.metrics.notifications_delivered
    await wait_for(lambda: runtime.metrics.split(counters, "type").get("kill"), 20, "a kill sent")

    response = await client.get("/api/status")

    assert response.status_code == 200
    status = response.json()
    for section in (
        "tracking",
        "notifications",
        "processing",
        "performance",
        "websocket",
        "sse",
        "connections",
        "memory_detailed",
        "cache_stats",
        "gc_stats",
        "killmail_activity",
        "discord_health",
    ):
        assert section in status, section
    tracked = runtime.index.map(sim.map_slug)
    assert status["tracking"]["systems_count"] == len(tracked.systems)
    assert status["tracking"]["characters_count"] == len(tracked.characters)
    assert status["tracking"]["killmails_received"] >= 1
    assert status["notifications"]["kills"] >= 1
    assert status["notifications"]["total"] >= status["notifications"]["kills"]
    assert status["websocket"]["client_alive"] is True
    assert status["websocket"]["connection_status"] == "connected"
    assert status["sse"] == status["sse"] | {
        "mode": "env_var",
        "map_count": 1,
        "clients_running": 1,
        "connected": 1,
        "disconnected": 0,
    }
    assert status["sse"]["maps"][0]["map"] == sim.map_slug
    assert status["performance"]["uptime_seconds"] >= 0
    assert 0 <= status["performance"]["success_rate"] <= 100
    assert status["discord_health"]["healthy"] is True
    assert status["memory_detailed"]["rss_bytes"] > 1_000_000


def test_status_reports_what_is_wrong() -> None:
    snapshot = {
        "started_at": 1000.0,
        "connections": [
            {"name": "map:a", "kind": "map_sse", "state": "connected", "since": 1000.0},
            {"name": "map:b", "kind": "map_sse", "state": "reconnecting", "since": 1050.0},
            {"name": "killstream:systems", "kind": "killstream", "state": "failed"},
        ],
        "delivery": {
            "targets": {
                "webhook:1": {"disabled": "404 Unknown Webhook", "last_error": "404 Unknown"}
            }
        },
        "counters": {
            "notifications_delivered": {"kill": 3},
            "delivery_failures": {"dead_target": 1},
        },
    }
    status = extended_status(snapshot, maps=["a", "b"], now=1060.0)
    assert status["sse"]["mode"] == "multi_map"
    assert status["sse"]["disconnected"] == 1
    assert status["websocket"] == status["websocket"] | {
        "client_alive": False,
        "connection_status": "disconnected",
    }
    assert status["discord_health"]["healthy"] is False
    assert status["discord_health"]["dead_targets"] == {"webhook:1": "404 Unknown Webhook"}
    assert status["performance"]["success_rate"] == 75.0
