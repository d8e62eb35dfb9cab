"""``POST /api/v1/events`` while the engine stops: a request still waiting for the pipeline is
answered before the HTTP server's own stop cuts it off, and its retry after the restart stores
and posts the event once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import server_settings
from tests.support import connected, wait_for
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.sqlite import DB_NAME

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def _event(event_id: str) -> dict[str, str]:
    return {"event_id": event_id, "title": f"Stop {event_id}", "notification_type": "system"}


async def _started(sim: Simulator, data: Path) -> Runtime:
    runtime = Runtime(server_settings(sim, data), data_dir=data)
    await runtime.start()
    await connected(runtime)
    assert runtime.http is not None, runtime.http_error
    return runtime


async def test_a_request_waiting_for_the_pipeline_at_stop_gets_503_and_its_retry_posts_once(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A stop while a request waited for its event (the store held by another process) ended
    uvicorn's grace period with the request cancelled: a bare ``500 Internal Server Error``
    (text, no ``Retry-After``) and "Exception in ASGI application" with a traceback in the
    log. The ingest API answers it first: 503, ``Retry-After``, the event's reason."""
    runtime = await _started(sim, tmp_path)
    assert runtime.http is not None
    key = runtime.http.tenants.add(sim.map_slug)
    auth = {"authorization": f"Bearer {key}"}
    holder = sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # an sqlite3 shell left in a transaction
    stop = None
    try:
        async with httpx.AsyncClient(base_url=runtime.http.url, timeout=30.0) as client:
            kept = await client.post("/api/v1/events", json=_event("kept"), headers=auth)
            waiting = asyncio.create_task(
                client.post("/api/v1/events", json=_event("waiting"), headers=auth)
            )
            await wait_for(lambda: not runtime.queue.empty(), 10, "the second event queued")
            stop = asyncio.create_task(runtime.stop())
            answer = await waiting
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        if stop is not None:
            await stop
    assert kept.status_code == 503, kept.text
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("retry-after")
    [result] = answer.json()["results"]
    assert result["event_id"] == "waiting"
    assert "stopping" in result["reason"]
    assert "retry with the same event_id" in result["reason"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert not [m for m in errors if "ASGI" in m], errors

    again = await _started(sim, tmp_path)
    try:
        assert again.http is not None
        async with httpx.AsyncClient(base_url=again.http.url, timeout=30.0) as client:
            for event_id in ("kept", "waiting"):
                retried = await client.post("/api/v1/events", json=_event(event_id), headers=auth)
                assert retried.status_code == 200, retried.text
        expected = {"Stop kept", "Stop waiting"}
        titles = lambda: Counter(str(e.get("title")) for e in sim.discord.embeds)  # noqa: E731
        await wait_for(lambda: expected <= set(titles()), 20, "both events posted")
        await again.drain(timeout=3.0)
    finally:
        await again.stop()
    assert {t: titles()[t] for t in expected} == dict.fromkeys(expected, 1)
