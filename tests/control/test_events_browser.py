"""The events browser through the control endpoint: an attached console reads the same pages and
details as the engine's own backend, over the real socket, with nothing secret in them.

The engine runs on the simulator: a kill in a tracked system is delivered to the fake Discord
(its message id comes back), then kill notifications are switched off and a second kill notifies
nothing; the browser says so, in the kill command's words.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.control.conftest import secrets_of
from tests.support import wait_for
from wanderer_console.console_api import BackendError, EventQuery, EventRow
from wanderer_console.control import events
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.pipeline.rules import REFUSAL_REASONS
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.base import StoredEvent

pytestmark = pytest.mark.timeout(60)


def _kill_row(engine: Runtime, killmail_id: int, outcome: str) -> EventRow | None:
    page = events.event_page(engine, EventQuery(search=f"kill:{killmail_id}", type="killmail"))
    return next(
        (e for e in page.events if e.event_id == f"kill:{killmail_id}" and e.outcome == outcome),
        None,
    )


async def test_an_attached_console_browses_events_and_sees_why(
    sim: Simulator, engine: Runtime, remote: RemoteBackend
) -> None:
    system_id = sorted(sim.tracked_system_ids)[0]
    delivered = sim.generator.make_killmail(system_id=system_id)
    await sim.killstream.push_kill(delivered)
    notified = await wait_for(
        lambda: _kill_row(engine, delivered["killmail_id"], "notified"), what="kill delivered"
    )

    switched = await remote.set_flag(None, "kill", False, actor="tester")
    assert switched.ok, switched.message
    muted = sim.generator.make_killmail(system_id=system_id)
    await sim.killstream.push_kill(muted)
    filtered = await wait_for(
        lambda: _kill_row(engine, muted["killmail_id"], "filtered"), what="kill filtered"
    )

    # The same page either way.
    query = EventQuery(type="killmail", limit=20)
    assert await remote.events(query) == await engine.console.events(query)
    only_filtered = await remote.events(EventQuery(type="killmail", outcome="filtered"))
    assert [e.event_id for e in only_filtered.events] == [filtered.event_id]
    only_notified = await remote.events(EventQuery(type="killmail", outcome="notified"))
    assert [e.event_id for e in only_notified.events] == [notified.event_id]
    page = await remote.events(EventQuery(map=sim.map_slug))
    assert notified.event_id in {e.event_id for e in page.events}
    assert sim.map_slug in page.maps
    assert "killmail" in page.types

    # A delivered kill: to which target, Discord's message id, when, after how many attempts.
    detail = await remote.event_detail(notified.id)
    assert detail is not None
    assert detail == await engine.console.event_detail(notified.id)
    (note,) = detail.event.notifications
    assert note.status == "sent"
    assert note.target == sim.webhook_target("system-kills")
    assert note.message_id is not None
    assert note.message_id in {m.message_id for m in sim.discord.received}
    assert note.sent_at is not None
    assert note.attempts == 1
    assert detail.message is not None
    assert detail.message_note.startswith("as delivered to")
    footers = [embed.footer for embed in detail.message.embeds]
    assert any(f"Killmail ID: {delivered['killmail_id']}" in footer for footer in footers)
    assert detail.verdicts[0].notify is True

    # A filtered kill: the rule, in the kill command's words, and the message as it would look.
    why = await remote.event_detail(filtered.id)
    assert why is not None
    (verdict,) = why.verdicts
    assert (verdict.map, verdict.notify, verdict.reason) == (sim.map_slug, False, "disabled")
    assert verdict.explanation == REFUSAL_REASONS["disabled"]
    assert f"wanderer-console kill {muted['killmail_id']}" in why.verdict_note
    assert why.message_note == "as it would look"
    assert why.message is not None
    assert why.message.embeds
    assert str(muted["killmail_id"]) in why.payload

    assert await remote.event_detail(filtered.id + 10_000) is None

    traffic = "\n".join(
        model.model_dump_json()
        for model in (await remote.events(EventQuery(limit=200)), detail, why)
    )
    for secret in secrets_of(sim):
        assert secret not in traffic, f"secret {secret[:6]}… shown by the browser"


async def test_a_bad_query_is_refused_with_the_reason(engine: Runtime) -> None:
    import httpx

    transport = httpx.AsyncHTTPTransport(uds=str(engine.data_dir / SOCKET_NAME))
    async with httpx.AsyncClient(base_url="http://engine", transport=transport) as client:
        response = await client.get("/v1/events", params={"outcome": "lost", "limit": "5"})
    assert response.status_code == 400
    assert "bad event query" in response.json()["error"]
    assert "outcome" in response.json()["error"]


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/v1/events/99999999999999999999999", None, "event id"),
        ("/v1/events/9223372036854775808", None, "event id"),  # one past a signed 64-bit
        ("/v1/events", {"offset": "99999999999999999999999"}, "offset"),
    ],
)
async def test_a_number_past_what_the_store_holds_is_refused_not_a_500(
    engine: Runtime, path: str, params: dict[str, str] | None, named: str
) -> None:
    """SQLite binds integers as signed 64-bit: a larger one raised OverflowError, a bare 500.
    It is bad input: a 400 naming the number and the range, counted, and the engine serves on."""
    import httpx

    transport = httpx.AsyncHTTPTransport(uds=str(engine.data_dir / SOCKET_NAME))
    async with httpx.AsyncClient(base_url="http://engine", transport=transport) as client:
        response = await client.get(path, params=params)
        assert response.status_code == 400, response.text
        message = response.json()["error"]
        assert named in message
        assert "9223372036854775807" in message
        assert (await client.get("/v1/events")).status_code == 200
    refused = engine.metrics.registry.get_sample_value(
        "wc_control_refused_total", {"reason": "bad_request"}
    )
    assert refused == 1.0


async def test_an_attached_console_asking_for_a_huge_event_id_is_told_why(
    remote: RemoteBackend,
) -> None:
    with pytest.raises(BackendError, match=r"answered 400: .*event id"):
        await remote.event_detail(10**30)


async def test_a_secret_in_an_event_is_masked_in_process_and_attached(
    sim: Simulator, engine: Runtime, remote: RemoteBackend
) -> None:
    """An event's payload is whatever a source sent: a secret in it never shows."""
    tenant = next(iter(engine.settings.maps))
    leaked = " ".join(secrets_of(sim))
    payload = json.dumps({"id": "01LEAK", "type": "custom", "payload": {"note": leaked}})
    engine.store.record_event(StoredEvent(tenant, "01LEAK", "api", "custom", time.time(), payload))
    page = await engine.console.events(EventQuery(search="01LEAK"))
    (row,) = page.events
    for backend in (engine.console, remote):
        detail = await backend.event_detail(row.id)
        assert detail is not None
        assert "«redacted»" in detail.payload
        text = detail.model_dump_json() + (await backend.events(EventQuery())).model_dump_json()
        for secret in secrets_of(sim):
            assert secret not in text, f"secret {secret[:6]}… shown by the browser"
