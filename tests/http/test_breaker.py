"""Circuit breaker against a real loopback server: open, single probe, close, reopen."""

from __future__ import annotations

import asyncio

import pytest

from tests.http.conftest import FaultServer, Reply
from wanderer_console.http import (
    BreakerEvent,
    CircuitOpenError,
    HttpServiceSettings,
    TransportError,
    build_client,
)
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.timeout(20)

SETTINGS = HttpServiceSettings(
    timeout_seconds=2.0,
    retry_attempts=1,
    rate_per_second=0,
    breaker_failures=3,
    breaker_window_seconds=10.0,
    breaker_cooldown_seconds=0.3,
)


async def test_breaker_opens_after_threshold(fault_server: FaultServer) -> None:
    events: list[BreakerEvent] = []
    fault_server.always("/x", Reply(500))
    client = build_client("esi", SETTINGS, metrics=Metrics(), on_breaker_transition=events.append)
    try:
        for _ in range(3):
            assert (await client.get(f"{fault_server.url}/x")).status == 500
        with pytest.raises(TransportError) as caught:
            await client.get(f"{fault_server.url}/x")
        assert isinstance(caught.value, CircuitOpenError)
        assert caught.value.kind == "circuit_open"
        assert fault_server.count("/x") == 3
        snapshot = client.breakers_snapshot()
        (state,) = snapshot.values()
        assert state["state"] == "open"
        assert state["failures"] == 3
        assert state["opened_at"] is not None
        assert state["next_probe_at"] == pytest.approx(state["opened_at"] + 0.3)
        assert [(e.from_state, e.to_state) for e in events] == [("closed", "open")]
        assert client.breaker_events == events
    finally:
        await client.aclose()


async def test_client_errors_do_not_open_the_breaker(fault_server: FaultServer) -> None:
    fault_server.always("/missing", Reply(404))
    client = build_client("esi", SETTINGS, metrics=Metrics())
    try:
        for _ in range(6):
            assert (await client.get(f"{fault_server.url}/missing")).status == 404
        (state,) = client.breakers_snapshot().values()
        assert state["state"] == "closed"
    finally:
        await client.aclose()


async def _fifty_in_half_open(
    fault_server: FaultServer, probe_reply: Reply
) -> tuple[list[object], list[BreakerEvent], dict[str, object]]:
    events: list[BreakerEvent] = []
    fault_server.always("/x", Reply(500))
    client = build_client("esi", SETTINGS, metrics=Metrics(), on_breaker_transition=events.append)
    try:
        for _ in range(3):
            await client.get(f"{fault_server.url}/x")
        await asyncio.sleep(0.35)  # cool-down elapsed
        fault_server.always("/x", probe_reply)
        before = fault_server.count("/x")
        results = await asyncio.gather(
            *(client.get(f"{fault_server.url}/x") for _ in range(50)), return_exceptions=True
        )
        assert fault_server.count("/x") - before == 1  # exactly one probe reached the server
        (state,) = client.breakers_snapshot().values()
        return list(results), events, dict(state)
    finally:
        await client.aclose()


@pytest.mark.slow
async def test_half_open_lets_one_probe_through_and_success_closes(
    fault_server: FaultServer,
) -> None:
    results, events, state = await _fifty_in_half_open(fault_server, Reply(200, delay=0.2))
    ok = [r for r in results if not isinstance(r, BaseException)]
    rejected = [r for r in results if isinstance(r, CircuitOpenError)]
    assert len(ok) == 1
    assert len(rejected) == 49
    assert state["state"] == "closed"
    assert [(e.from_state, e.to_state) for e in events] == [
        ("closed", "open"),
        ("open", "half_open"),
        ("half_open", "closed"),
    ]


@pytest.mark.slow
async def test_failed_probe_reopens(fault_server: FaultServer) -> None:
    results, events, state = await _fifty_in_half_open(fault_server, Reply(503, delay=0.2))
    assert sum(1 for r in results if isinstance(r, CircuitOpenError)) == 49
    assert state["state"] == "open"
    assert [(e.from_state, e.to_state) for e in events][-1] == ("half_open", "open")
    assert events[-1].reason.startswith("probe failed")
    assert all(e.host.startswith("127.0.0.1:") for e in events)
