"""Delivery when the store cannot be read: PostgreSQL restarted under a running dispatcher.

A restart ends every connection of the engine's pool at once. Writes already said so
(:class:`~wanderer_console.store.writes.StoreWriteError`, a fault delivery waits out); the
dispatcher's reads (what is due, when the next row is) raised the driver's own error, which ended
the delivery loop: the supervisor restarted it after a backoff that doubled with each dead pooled
connection drawn, and the traceback said nothing an operator could act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator

import pytest

from tests.store.pgtest import end_connections, named_schema
from tests.support import wait_for
from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.sim import AppServer, FakeDiscord, webhook_url
from wanderer_console.store.base import DatabaseUrl
from wanderer_console.store.postgres import PostgresStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.postgresql, pytest.mark.timeout(60)]


@pytest.fixture
def url() -> Iterator[DatabaseUrl]:
    """A fresh schema, its connections named so the test can end them (a server restart)."""
    with named_schema() as named:
        yield named


async def test_a_server_restart_under_the_dispatcher_delays_delivery_and_never_ends_it(
    url: DatabaseUrl, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="wanderer_console.delivery.dispatcher")
    store = PostgresStore(url)
    fake = FakeDiscord(webhook_limit=100, webhook_window=1.0)
    server = AppServer(fake.app)
    await server.start()
    metrics = Metrics()
    http = HttpClient("discord", metrics=metrics, timeout=5.0)
    target = Target(TargetKind.WEBHOOK, webhook_url(server.url, 7), "home")
    dispatcher = Dispatcher(
        store,
        DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="test"),
        metrics,
        lambda: {("home", target.key): ResolvedTarget(target)},
        poll_interval=0.05,
        policy=DeliveryPolicy(stop_grace=1.0),
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        pool = store._pg._pool
        with pool.connection(), pool.connection(), pool.connection():
            pass  # three idle connections, as after a few concurrent reads
        due = time.time() + 1.0  # due once the server has restarted
        notes = [
            Notification("home", NotificationType.KILL, f"k{i}", target, {"content": f"k{i}"})
            for i in range(3)
        ]
        store.enqueue(notes, now=due)
        dispatcher.wake()
        await asyncio.sleep(0.2)  # the dispatcher has read when they are due, and waits
        end_connections(url)

        import psycopg

        # Read beside the engine (its own pool's next read would repair it for the dispatcher).
        with psycopg.connect(url.secret(), autocommit=True) as beside:

            def statuses() -> dict[str, int]:
                rows = beside.execute("SELECT status, COUNT(*) FROM outbox GROUP BY 1")
                return {str(status): int(count) for status, count in rows.fetchall()}

            await wait_for(lambda: statuses() == {"sent": 3} or task.done(), 20.0)
        assert not task.done(), task.exception()
        posted = [m.body["content"] for m in fake.messages_for(target.key)]
        assert sorted(posted) == ["k0", "k1", "k2"]
        warned = [r for r in caplog.records if "cannot read the outbox" in r.getMessage()]
        assert warned, [r.getMessage() for r in caplog.records]
        assert metrics.value("wc_errors_total", component="delivery:store_read") >= 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()
        await server.stop()
        store.close()
