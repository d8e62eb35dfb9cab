"""Wanderer Notifier's ``/api/status`` while the console's database does not answer (a
PostgreSQL restart or failover ended the store's connections): the uptime monitors polling it get
a short 503 that says to retry, not a bare 500 and a traceback in the log at every poll."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.store.pgtest import end_connections, named_schema
from wanderer_console.runtime import Runtime
from wanderer_console.store.base import DatabaseUrl, StoreLocation

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.postgresql]


@pytest.fixture
def store_location() -> Iterator[StoreLocation]:
    """The runtime's store on PostgreSQL, its connections named so the test can end them."""
    with named_schema() as url:
        yield url


async def test_api_status_answers_503_with_retry_after_while_the_database_is_restarting(
    runtime: Runtime,
    client: httpx.AsyncClient,
    store_location: DatabaseUrl,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert (await client.get("/api/status")).status_code == 200
    caplog.clear()
    assert end_connections(store_location) >= 1  # the server restarts
    during = await client.get("/api/status")
    after = await client.get("/api/status")
    assert during.status_code == 503, during.text
    assert during.headers.get("retry-after")
    error = during.json()["error"]
    assert "database" in error
    assert "retry" in error
    assert "terminating connection" not in error  # the database's own words go to the log
    refused = runtime.metrics.value("wc_server_refusals_total", endpoint="other", reason="store")
    assert refused == 1
    [line] = [r for r in caplog.records if r.getMessage() == "http request refused"]
    assert "terminating connection" in line.__dict__["ctx"]["error"]
    assert not [r for r in caplog.records if r.exc_info], "no traceback for a database restart"
    assert after.status_code == 200, after.text  # the pool reconnected
