"""Correlation ids follow an event from the request (or stream) that brought it to delivery."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from tests.support import wait_for
from tests.telemetry.conftest import JsonCapture
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.telemetry.context import bind_event, bind_request_id
from wanderer_console.telemetry.logging import ContextFilter, JsonFormatter

pytestmark = pytest.mark.timeout(60)


def _with(lines: list[dict[str, Any]], correlation_id: str, logger: str) -> list[dict[str, Any]]:
    return [
        line
        for line in lines
        if line.get("correlation_id") == correlation_id and line["logger"].startswith(logger)
    ]


@pytest.mark.slow
async def test_request_id_follows_an_ingest_event_to_delivery(
    sim: Simulator,
    runtime: Runtime,
    client: httpx.AsyncClient,
    ingest_key: str,
    json_logs: JsonCapture,
) -> None:
    response = await client.post(
        "/api/v1/events",
        json={"title": "Fleet forming", "body": "now", "event_id": "corr-1"},
        headers={"authorization": f"Bearer {ingest_key}", "x-request-id": "abc123"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == "abc123"

    delivered = await wait_for(
        lambda: _with(json_logs.lines(), "abc123", "wanderer_console.delivery")
    )
    assert delivered[0]["event"] == "notification delivered"
    assert delivered[0]["tenant"] == sim.map_slug
    assert delivered[0]["dedup_key"] == "custom:api:corr-1"
    engine = _with(json_logs.lines(), "abc123", "wanderer_console.pipeline")
    assert engine, json_logs.text
    assert engine[0]["event"] == "event decided"
    assert engine[0]["event_id"] == "api:corr-1"
    assert engine[0]["source"] == "api"
    for line in engine + delivered:
        assert {"time", "level", "event", "tenant"} <= line.keys()


@pytest.mark.slow
async def test_sse_event_gets_a_generated_id_that_reaches_delivery(
    sim: Simulator, runtime: Runtime, json_logs: JsonCapture
) -> None:
    system = sim.generator.new_system(wormhole=True)
    sim.map.add_system(system.system_id, name=system.name)

    def decided() -> list[dict[str, Any]]:
        return [
            line
            for line in json_logs.lines()
            if line["event"] == "event decided"
            and line.get("type") == "add_system"
            and line.get("notifications")
        ]

    (line,) = await wait_for(decided)
    correlation_id = line["correlation_id"]
    assert len(correlation_id) == 32
    int(correlation_id, 16)  # uuid4 hex
    assert line["source"] == f"sse:{sim.map_slug}"
    assert line["tenant"] == sim.map_slug
    delivered = await wait_for(
        lambda: _with(json_logs.lines(), correlation_id, "wanderer_console.delivery")
    )
    assert delivered[0]["event"] == "notification delivered"
    assert delivered[0]["dedup_key"] == line["notifications"][0]


def test_formatter_adds_bound_values_and_explicit_context_wins() -> None:
    logger = logging.getLogger("wanderer_console.test.correlation")
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(ContextFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with bind_request_id("req-9"):
            logger.info("inside a request")
        with bind_event("evt-1", tenant="home", source="sse:home"):
            logger.info("inside an event", extra={"ctx": {"tenant": "other"}})
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    formatter = JsonFormatter()
    first, second, third = (formatter.format(r) for r in records)
    assert '"correlation_id":"req-9"' in first
    assert '"tenant"' not in first
    assert '"correlation_id":"evt-1"' in second
    assert '"source":"sse:home"' in second
    assert '"tenant":"other"' in second
    assert "correlation_id" not in third


def test_a_hostile_request_id_is_sanitised() -> None:
    with bind_request_id('a"b\\c\nd' + "x" * 500) as value:
        assert value.startswith("abcd")
        assert len(value) == 128
    with bind_request_id("  ") as value:
        assert len(value) == 32
