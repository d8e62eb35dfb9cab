"""``POST /api/v1/events``: limits, idempotency, tenant isolation, delivery to the fake Discord."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def event(title: str = "Structure under attack", **extra: object) -> dict[str, object]:
    return {
        "schema_version": "1.2.0",
        "title": title,
        "body": "Astrahus in J123456 is reinforced",
        "severity": "warning",
        "notification_type": "system",
        **extra,
    }


async def test_body_over_256_kib_gets_413_naming_both_sizes(
    client: httpx.AsyncClient, ingest_key: str
) -> None:
    body = b'{"title": "' + b"x" * (257 * 1024) + b'"}'
    response = await client.post("/api/v1/events", content=body, headers=auth(ingest_key))
    assert response.status_code == 413
    error = response.json()["error"]
    assert str(256 * 1024) in error
    assert str(len(body)) in error


async def test_51_events_get_422_naming_both_counts(
    client: httpx.AsyncClient, ingest_key: str
) -> None:
    events = [event(f"e{i}") for i in range(51)]
    response = await client.post(
        "/api/v1/events", json={"events": events}, headers=auth(ingest_key)
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert "51" in error
    assert "50" in error


async def test_repeated_event_id_is_duplicate_and_notified_once(
    sim: Simulator, runtime: Runtime, client: httpx.AsyncClient, ingest_key: str
) -> None:
    one = event("Fleet forming", event_id="ops-2024-001")
    first = await client.post("/api/v1/events", json=one, headers=auth(ingest_key))
    assert first.status_code == 200, first.text
    assert first.json()["results"] == [
        {"index": 0, "event_id": "ops-2024-001", "status": "accepted"}
    ]
    again = await client.post(
        "/api/v1/events", json={"events": [one, event("No id")]}, headers=auth(ingest_key)
    )
    results = again.json()["results"]
    assert results[0]["status"] == "duplicate"
    assert results[1]["status"] == "accepted"
    assert len(results[1]["event_id"]) >= 16  # generated

    def titled(title: str) -> list[object]:
        return [m for m in sim.discord.received if m.body["embeds"][0]["title"] == title]

    await wait_for(lambda: titled("Fleet forming") and titled("No id"))
    await runtime.drain(timeout=2.0)
    await asyncio.sleep(0.2)
    (message,) = titled("Fleet forming")
    assert message.target == "channel:100000000000000001"  # the map's system route
    assert message.body["embeds"][0]["description"] == "Astrahus in J123456 is reinforced"
    assert runtime.store.has_event(sim.map_slug, "api:ops-2024-001")


async def test_rejections_are_per_event_with_reasons(
    client: httpx.AsyncClient, ingest_key: str
) -> None:
    response = await client.post(
        "/api/v1/events",
        json={
            "events": [
                event(schema_version="one"),
                event(notification_type="weather"),
                event("fine"),
                "not an object",
            ]
        },
        headers=auth(ingest_key),
    )
    assert response.status_code == 200
    body = response.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["rejected", "rejected", "accepted", "rejected"]
    assert "semantic version" in body["results"][0]["reason"]
    assert "notification_type" in body["results"][1]["reason"]
    assert body["accepted"] == 1
    assert body["rejected"] == 3


async def test_a_schema_version_with_a_trailing_newline_is_rejected_not_stored(
    runtime: Runtime, sim: Simulator, client: httpx.AsyncClient, ingest_key: str
) -> None:
    """ "1.2.0\n" is no semantic version: a pattern's ``$`` also matches before a final newline,
    which let it through, stored and shown by replay with the newline."""
    response = await client.post(
        "/api/v1/events",
        json=event(event_id="ops-semver-nl", schema_version="1.2.0\n"),
        headers=auth(ingest_key),
    )
    assert response.status_code == 422, response.text
    [result] = response.json()["results"]
    assert result["status"] == "rejected"
    assert "semantic version" in result["reason"]
    assert not runtime.store.has_event(sim.map_slug, "api:ops-semver-nl")


async def test_a_blank_title_is_rejected_not_posted_without_one(
    runtime: Runtime, sim: Simulator, client: httpx.AsyncClient, ingest_key: str
) -> None:
    """A title of spaces passed ``min_length``: the embed went out with no title at all."""
    response = await client.post(
        "/api/v1/events",
        json=event(event_id="ops-blank-title", title=" \t "),
        headers=auth(ingest_key),
    )
    assert response.status_code == 422, response.text
    [result] = response.json()["results"]
    assert result["status"] == "rejected"
    assert "title" in result["reason"]
    assert not runtime.store.has_event(sim.map_slug, "api:ops-blank-title")


async def test_a_key_cannot_write_to_another_tenant(
    runtime: Runtime, client: httpx.AsyncClient, ingest_key: str
) -> None:
    assert runtime.http is not None
    runtime.http.tenants.add("other")
    to_other = await client.post(
        "/api/v1/events", json=event(tenant="other"), headers=auth(ingest_key)
    )
    to_nobody = await client.post(
        "/api/v1/events", json=event(tenant="no-such-tenant"), headers=auth(ingest_key)
    )
    bad_key = await client.post("/api/v1/events", json=event(), headers=auth("wci_nope"))
    assert to_other.status_code == to_nobody.status_code == bad_key.status_code == 401
    assert to_other.json() == to_nobody.json() == bad_key.json()
    assert not runtime.store.has_event("other", "api:x")


@pytest.mark.parametrize("where", ["event", "batch", "batch event"])
async def test_a_tenant_that_is_not_a_string_is_malformed_input_not_another_tenants_key(
    runtime: Runtime, sim: Simulator, client: httpx.AsyncClient, ingest_key: str, where: str
) -> None:
    """``"tenant": 5`` was answered ``401`` with the bad-key words and counted as
    ``other_tenant``: the client was told to fix a key that was right. It is a malformed field:
    ``422`` naming it (as the other whole-request ``422`` answers, an ``error``), counted with
    its own reason, nothing stored; a string naming another tenant is still ``401``."""
    fine = event(event_id="ops-fine")
    if where == "event":
        payload: dict[str, object] = event(event_id="ops-bad-tenant", tenant=5)
        field = "tenant"
    elif where == "batch":
        payload = {"tenant": [sim.map_slug], "events": [fine]}
        field = "tenant"
    else:
        payload = {"events": [fine, event(event_id="ops-bad-tenant", tenant=5)]}
        field = "events[1].tenant"
    response = await client.post("/api/v1/events", json=payload, headers=auth(ingest_key))
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["field"] == field
    assert answer["error"].startswith(f"{field} must be a string (the map's slug"), answer
    assert "results" not in answer  # the request was refused whole: nothing was submitted
    refused = runtime.metrics.value
    assert refused("wc_server_refusals_total", endpoint="ingest", reason="tenant_type") == 1
    assert refused("wc_server_refusals_total", endpoint="ingest", reason="other_tenant") == 0
    assert not runtime.store.has_event(sim.map_slug, "api:ops-bad-tenant")
    assert not runtime.store.has_event(sim.map_slug, "api:ops-fine")

    other = await client.post(
        "/api/v1/events", json=event(tenant="other"), headers=auth(ingest_key)
    )
    assert other.status_code == 401
    assert refused("wc_server_refusals_total", endpoint="ingest", reason="other_tenant") == 1


async def test_disabled_and_rotated_keys_stop_working(
    runtime: Runtime, sim: Simulator, client: httpx.AsyncClient, ingest_key: str
) -> None:
    assert runtime.http is not None
    new_key = runtime.http.tenants.rotate_key(sim.map_slug)
    old = await client.post("/api/v1/events", json=event(), headers=auth(ingest_key))
    new = await client.post("/api/v1/events", json=event(), headers=auth(new_key))
    assert (old.status_code, new.status_code) == (401, 200)
    runtime.http.tenants.disable(sim.map_slug)
    disabled = await client.post("/api/v1/events", json=event(), headers=auth(new_key))
    assert disabled.status_code == 401


async def test_replay_shows_what_a_posted_event_sent_and_honours_the_switches(
    sim: Simulator, runtime: Runtime, client: httpx.AsyncClient, ingest_key: str
) -> None:
    from wanderer_console.pipeline.replay import replay

    posted = event("Keepstar timer", event_id="ops-replay-1", notification_type="rally")
    response = await client.post("/api/v1/events", json=posted, headers=auth(ingest_key))
    assert response.json()["accepted"] == 1
    await wait_for(
        lambda: any(m.body["embeds"][0]["title"] == "Keepstar timer" for m in sim.discord.received)
    )
    await runtime.drain(timeout=2.0)
    (live,) = [m for m in sim.discord.received if m.body["embeds"][0]["title"] == "Keepstar timer"]

    result = await replay(runtime.settings, runtime.store, 0.0, use_rest=False)
    (line,) = [line for line in result.lines if line["event_type"] == "custom"]
    assert line["event_id"] == "api:ops-replay-1"
    assert line["type"] == "rally"
    assert line["target"] == live.target
    assert line["body"] == live.body
    assert "custom" not in result.skipped
    # The version the poster declared is kept in the event's own column, and replay shows it;
    # events that declare none (map events, kills) have none.
    assert line["schema_version"] == "1.2.0"
    stored = {e.event_id: e for e in runtime.store.events_since(0.0)}
    assert stored["api:ops-replay-1"].schema_version == "1.2.0"
    assert {e.schema_version for e in stored.values() if e.type != "custom"} <= {None}

    # With the map's rally switch off, the same event would notify nothing.
    off = runtime.settings.model_copy(deep=True)
    off.maps[sim.map_slug].notifications.rally = False
    quiet = await replay(off, runtime.store, 0.0, use_rest=False)
    assert [line for line in quiet.lines if line["event_type"] == "custom"] == []


async def test_an_event_of_a_tenant_with_no_configured_map_is_counted_as_not_routed(
    runtime: Runtime, client: httpx.AsyncClient
) -> None:
    """A tenant whose map left the configuration (or never had one): its events are stored and
    answered "accepted", and nothing goes to Discord. No counter said why: every other
    notification stopped before Discord is in wc_notifications_filtered_total by reason."""
    assert runtime.http is not None
    key = runtime.http.tenants.add("no-map-here")
    before = runtime.metrics.value("wc_notifications_filtered_total", reason="no_map")
    response = await client.post(
        "/api/v1/events", json=event(event_id="unrouted-1"), headers=auth(key)
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["status"] == "accepted"
    assert runtime.store.has_event("no-map-here", "api:unrouted-1")
    after = runtime.metrics.value("wc_notifications_filtered_total", reason="no_map")
    assert after == before + 1
