"""An operator's retry restarts a notification's maximum age, on both backends.

``outbox retry TARGET`` (and the console's retry) re-queues a target's failed notifications and
the ones a dead target held. Their age was counted from ``created_at``: one past
``discord.max_delivery_age_hours`` (it expired, or a dead target held it that long) failed again
as "expired: undelivered" at the first transient answer after the retry. The store now stamps
the rows it re-queues (``aged_from``) and the expiry counts from that stamp; ``created_at``
keeps the time the notification was queued (latency, history, the events browser).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from tests.support import wait_for
from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.sim import AppServer, FakeDiscord, webhook_url
from wanderer_console.store.base import OutboxRow, Store
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.timeout(60)]

HOUR = 3600.0
POLICY = DeliveryPolicy(backoff_base=0.05, backoff_cap=0.2, uncertain_window=0.5, max_age=HOUR)


def _note(target: Target, key: str, tenant: str = "home") -> Notification:
    return Notification(tenant, NotificationType.KILL, key, target, {"content": key})


def _rows(store: Store) -> dict[str, OutboxRow]:
    return {row.dedup_key: row for row in store.due_outbox(now=1e12, limit=1000)}


def _hook(key: int) -> Target:
    return Target(TargetKind.WEBHOOK, f"https://discord.com/api/webhooks/{key}/tok", "home")


def test_a_retry_stamps_the_rows_it_re_queues_and_keeps_their_created_at(store: Store) -> None:
    """Failed rows and the rows a dead target held get a fresh age; rows the operator did not
    re-queue (another map's rows on the same key, a target's rows still waiting out a backoff)
    keep counting from ``created_at``."""
    failing, dead = _hook(1), _hook(2)
    queued_at = 1_000.0
    store.enqueue(
        [
            _note(failing, "failed"),
            _note(failing, "waiting"),
            _note(dead, "held"),
            _note(dead, "other map", tenant="other"),
        ],
        now=queued_at,
    )
    store.mark_failed(_rows(store)["failed"].id, error="expired: undelivered after 1 h")
    store.set_dead_target("home", dead.key, reason="HTTP 404", fingerprint="fp", now=queued_at)
    before = time.time()

    assert store.revive_target(failing.key).requeued == 1
    assert store.revive_target(dead.key) == (True, 1, 0)  # "held"; not "other map"'s row

    rows = _rows(store)
    assert {key: row.created_at for key, row in rows.items()} == dict.fromkeys(rows, queued_at)
    aged = {key: row.aged_from for key, row in rows.items()}
    assert {key for key, at in aged.items() if at is not None and at >= before} == {
        "failed",
        "held",
    }
    assert aged["waiting"] is None
    assert aged["other map"] is None


@dataclass
class Delivery:
    store: Store
    discord: FakeDiscord
    dispatcher: Dispatcher
    target: Target

    def posted(self) -> list[str]:
        return [str(m.body.get("content")) for m in self.discord.messages_for(self.target.key)]

    async def settled(self) -> dict[str, int]:
        """The outbox once nothing is pending or in flight."""
        await wait_for(
            lambda: not {"pending", "sending"} & set(self.store.outbox_counts()), 30, "settled"
        )
        return self.store.outbox_counts()


@contextlib.asynccontextmanager
async def _delivery(store: Store) -> AsyncIterator[Delivery]:
    fake = FakeDiscord(webhook_limit=50, webhook_window=1.0)
    server = AppServer(fake.app)
    await server.start()
    metrics = Metrics()
    http = HttpClient("discord", metrics=metrics, timeout=5.0)
    target = Target(TargetKind.WEBHOOK, webhook_url(server.url, 81), "home")
    targets = {("home", target.key): ResolvedTarget(target)}
    dispatcher = Dispatcher(
        store,
        DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="test"),
        metrics,
        lambda: targets,
        poll_interval=0.05,
        policy=POLICY,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield Delivery(store, fake, dispatcher, target)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()
        await server.stop()


async def test_an_expired_notification_retried_by_the_operator_survives_a_503(
    store: Store,
) -> None:
    """Queued two hours ago with a one-hour maximum age: its first 503 expires it (failed).
    The operator retries it and Discord answers 503 once more: it waits and goes out after
    the 503, posted once, instead of failing again as "expired: undelivered"."""
    async with _delivery(store) as d:
        store.enqueue([_note(d.target, "late")], now=time.time() - 2 * HOUR)
        d.discord.fail_next(503)
        d.dispatcher.wake()
        assert await d.settled() == {"failed": 1}
        d.discord.fail_next(503)
        assert d.dispatcher.retry_target(d.target.key) == 1
        assert await d.settled() == {"sent": 1}
        assert d.discord.pending_faults() == 0  # the retry met the 503 first
    assert d.posted() == ["late"]


async def test_notifications_a_dead_target_held_past_their_age_survive_a_503_after_a_retry(
    store: Store,
) -> None:
    """A target answered 404 and held its notification (queued two hours ago, one-hour maximum
    age). Fixed and retried by the operator, it answers 503 once: the notification goes out
    after it, posted once, instead of failing as "expired: undelivered"."""
    async with _delivery(store) as d:
        store.enqueue([_note(d.target, "held")], now=time.time() - 2 * HOUR)
        d.discord.disable_webhook(81)
        d.dispatcher.wake()
        await wait_for(lambda: store.dead_targets(), 30, "the target held as dead")
        d.discord.enable_webhook(81)
        d.discord.fail_next(503)
        revived = d.dispatcher.revive(d.target.key)
        assert (revived.was_dead, revived.held) == (True, 1)
        assert await d.settled() == {"sent": 1}
        assert d.discord.pending_faults() == 0
    assert d.posted() == ["held"]
