"""``POST /api/v1/maps/{map}/webhook``: signatures, replay window, and the same pipeline as SSE."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from tests.server.conftest import WEBHOOK_SECRET
from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.server.webhook import sign
from wanderer_console.sim import Simulator
from wanderer_console.sim.ulid import new_ulid

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def envelope(sim: Simulator, system_id: int, name: str) -> dict[str, object]:
    return {
        "id": new_ulid(),
        "type": "add_system",
        "map_id": sim.map_id,
        "timestamp": "2025-01-01T00:00:00.000000Z",
        "payload": {"solar_system_id": system_id, "name": name},
    }


def signed(body: bytes, *, secret: str = WEBHOOK_SECRET, at: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {
        "content-type": "application/json",
        "x-wanderer-timestamp": stamp,
        "x-wanderer-signature": sign(secret, stamp, body),
        "x-wanderer-version": "1",
    }


def new_system_messages(sim: Simulator, name: str) -> list[object]:
    # Notifications queued together may share a message (up to 10 embeds): look at every embed.
    return [
        embed
        for m in sim.discord.received
        for embed in m.body["embeds"]
        if embed.get("title") == f"New System Tracked: {name}"
    ]


async def test_signed_event_is_notified_once_even_when_redelivered(
    sim: Simulator, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    system = sim.generator.new_system(wormhole=True)
    body = orjson.dumps(envelope(sim, system.system_id, system.name))
    url = f"/api/v1/maps/{sim.map_slug}/webhook"
    first = await client.post(url, content=body, headers=signed(body))
    assert first.status_code == 202, first.text
    again = await client.post(url, content=body, headers=signed(body))  # sender retry
    assert again.status_code == 202
    await wait_for(lambda: new_system_messages(sim, system.name))
    await runtime.drain(timeout=2.0)
    assert len(new_system_messages(sim, system.name)) == 1
    assert runtime.metrics.value("wc_events_received_total", source="webhook:demo") == 1
    assert runtime.metrics.value("wc_events_duplicate_total", source="webhook:demo") == 1


async def test_batch_form_is_accepted(
    sim: Simulator, runtime: Runtime, client: httpx.AsyncClient
) -> None:
    systems = [sim.generator.new_system() for _ in range(2)]
    body = orjson.dumps({"events": [envelope(sim, s.system_id, s.name) for s in systems]})
    response = await client.post(
        f"/api/v1/maps/{sim.map_slug}/webhook", content=body, headers=signed(body)
    )
    assert response.json() == {"queued": 2, "invalid": 0}
    for system in systems:
        await wait_for(lambda s=system: new_system_messages(sim, s.name))


async def test_bad_signature_gets_401(sim: Simulator, client: httpx.AsyncClient) -> None:
    body = orjson.dumps(envelope(sim, 31000001, "J000001"))
    headers = signed(body, secret="not-the-secret")
    response = await client.post(
        f"/api/v1/maps/{sim.map_slug}/webhook", content=body, headers=headers
    )
    assert response.status_code == 401
    # The answer says what to check (the sender sees only this), never the expected value.
    error = response.json()["error"]
    assert error.startswith("invalid signature")
    assert "webhook_secret" in error
    assert "X-Wanderer-Signature: sha256=" in error
    assert sign(WEBHOOK_SECRET, headers["x-wanderer-timestamp"], body) not in response.text
    # A tampered body with a signature over the original fails the same way.
    tampered = body.replace(b"J000001", b"J000002")
    response = await client.post(
        f"/api/v1/maps/{sim.map_slug}/webhook", content=tampered, headers=signed(body)
    )
    assert response.status_code == 401
    unknown = await client.post("/api/v1/maps/nope/webhook", content=body, headers=signed(body))
    assert unknown.status_code == 401
    assert unknown.json() == {"error": error}  # never tells whether the map exists


async def test_old_timestamp_gets_401(sim: Simulator, client: httpx.AsyncClient) -> None:
    body = orjson.dumps(envelope(sim, 31000001, "J000001"))
    response = await client.post(
        f"/api/v1/maps/{sim.map_slug}/webhook",
        content=body,
        headers=signed(body, at=time.time() - 301),
    )
    assert response.status_code == 401
    assert "300 s" in response.json()["error"]
    assert "clock" in response.json()["error"]  # what to check


@pytest.mark.parametrize(
    "stamp",
    ["9" * 400, "-" + "9" * 400, "1e9", "nan", ""],
    ids=["huge", "huge-negative", "float", "nan", "empty"],
)
async def test_an_out_of_range_or_malformed_timestamp_gets_401_not_a_server_error(
    sim: Simulator, runtime: Runtime, client: httpx.AsyncClient, stamp: str
) -> None:
    """Anyone can post here: a timestamp too large for a float must not raise (a 500 and an
    unthrottled traceback per request) but be refused like any other bad timestamp."""
    body = orjson.dumps(envelope(sim, 31000001, "J000001"))
    headers = {**signed(body), "x-wanderer-timestamp": stamp}
    response = await client.post(
        f"/api/v1/maps/{sim.map_slug}/webhook", content=body, headers=headers
    )
    assert response.status_code == 401, response.text
    assert "X-Wanderer-Timestamp" in response.json()["error"]
    assert "Unix time in whole seconds" in response.json()["error"]
    refusals = runtime.metrics.value(
        "wc_server_refusals_total", endpoint="webhook", reason="timestamp"
    )
    assert refusals == 1
