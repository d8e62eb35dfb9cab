"""A claim that finds the cluster paused, before this engine's heartbeat has read the pause.

A dispatcher behind a lease (the test's gate, holding a real lease of the store) and the
engine's delivery hold on the shared store; the cluster is paused in the database behind their
back, as another engine does. Whether the sends start alone (one worker) or through the
turnstile (a fan-out: their claims in one transaction), nothing is claimed, marked or
journaled, the engine holds, and a resume followed as a heartbeat follows it sends every row
once, without a restart. A dry run (rows logged and marked sent, never posted) claims its rows
too, and so marks nothing under the pause.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import wait_for
from wanderer_console.cluster import resource_of
from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.delivery.hold import DeliveryHold, SharedPause
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.sim import AppServer, FakeDiscord
from wanderer_console.store.base import LeaseFence, Store
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.timeout(60)]

BOT = "test-bot-token"
TENANT = "one"


class Gate:
    """The :class:`~wanderer_console.delivery.dispatcher.SendGate` of an instance holding one
    map's lease for the whole test."""

    instance_id = "a"

    def __init__(self, fence: LeaseFence) -> None:
        self._fence = fence

    def tenants(self) -> set[str]:
        return {TENANT}

    def fence(self, tenant: str) -> LeaseFence | None:
        return self._fence if tenant == TENANT else None

    def holds(self, fence: LeaseFence) -> bool:
        return fence == self._fence

    def carried(self, tenant: str) -> list[str]:
        return [tenant]


@dataclass
class Engine:
    store: Store
    discord: FakeDiscord
    dispatcher: Dispatcher
    hold: DeliveryHold
    targets: list[Target]

    def enqueue(self, tag: str) -> None:
        self.store.enqueue(
            [
                Notification(TENANT, NotificationType.KILL, f"{tag}:{i}", t, {"content": tag})
                for i, t in enumerate(self.targets)
            ]
        )
        self.dispatcher.wake({t.key for t in self.targets})

    def untouched(self) -> bool:
        """Every row pending, never claimed (no send id, no claimer)."""
        rows = self.store.due_outbox(now=1e12)
        return len(rows) == len(self.targets) and all(r.send_id is None for r in rows)


@contextlib.asynccontextmanager
async def _engine(
    store: Store, tmp_path: Path, targets: int, *, dry_run: bool = False
) -> AsyncIterator[Engine]:
    fake = FakeDiscord(webhook_limit=100, webhook_window=1.0, bot_token=BOT)
    server = AppServer(fake.app)
    await server.start()
    metrics = Metrics()
    http = HttpClient("discord", metrics=metrics, timeout=5.0)
    channels = [
        Target(TargetKind.BOT_CHANNEL, f"1000000000000{i:05d}", TENANT) for i in range(targets)
    ]
    resolved = {(TENANT, t.key): ResolvedTarget(t, BOT) for t in channels}
    grant = store.acquire_lease(resource_of(TENANT), "a", 600.0)
    assert grant is not None
    dispatcher = Dispatcher(
        store,
        DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="test"),
        metrics,
        lambda: resolved,
        poll_interval=30.0,
        policy=DeliveryPolicy(backoff_base=0.05, backoff_cap=0.2, uncertain_window=0.5),
        gate=Gate(LeaseFence(resource_of(TENANT), "a", grant.lease.token)),
        dry_run=lambda: dry_run,
    )
    hold = DeliveryHold(dispatcher, tmp_path, shared=SharedPause(store, "a"))
    hold.restore()
    dispatcher.on_cluster_paused = hold.follow
    task = asyncio.create_task(dispatcher.run())
    try:
        await wait_for(lambda: dispatcher.waiting, 10)
        yield Engine(store, fake, dispatcher, hold, channels)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()
        await server.stop()


@pytest.mark.parametrize("targets", [1, 20], ids=["alone", "turnstile"])
async def test_a_claim_under_the_clusters_pause_touches_nothing_and_a_resume_sends_it_once(
    store: Store, tmp_path: Path, targets: int
) -> None:
    async with _engine(store, tmp_path, targets) as engine:
        engine.enqueue("wired")
        await wait_for(lambda: store.outbox_counts() == {"sent": targets}, 20)

        store.pause_cluster("tui:alice", "b")  # sent to another engine; not read here yet
        engine.enqueue("held")
        await wait_for(lambda: engine.dispatcher.paused, 20, "the claim to find the pause")
        assert engine.hold.pause is not None
        assert engine.hold.pause.cluster
        await engine.dispatcher.quiesce(TENANT, 10.0)
        assert engine.untouched()
        assert not engine.dispatcher._journal  # nothing to undo: nothing was claimed
        assert len(engine.discord.received) == targets

        assert store.resume_cluster()
        engine.hold.follow(store.cluster_pause())  # as the next heartbeat does
        await wait_for(lambda: store.outbox_counts() == {"sent": 2 * targets}, 20)
        sent = sorted(m.target for m in engine.discord.received)
        assert sent == sorted(2 * [f"channel:{t.address}" for t in engine.targets])


async def test_a_dry_run_under_the_clusters_pause_marks_nothing_sent(
    store: Store, tmp_path: Path
) -> None:
    """A dry-run engine on the shared database marked its rows sent without a claim: under a
    pause it used up the backlog the pause held (posted by nobody after the resume)."""
    targets = 5
    async with _engine(store, tmp_path, targets, dry_run=True) as engine:
        engine.enqueue("wired")
        await wait_for(lambda: store.outbox_counts() == {"sent": targets}, 20)

        store.pause_cluster("tui:alice", "b")  # sent to another engine; not read here yet
        engine.enqueue("held")
        await wait_for(lambda: engine.dispatcher.paused, 20, "the claim to find the pause")
        await engine.dispatcher.quiesce(TENANT, 10.0)
        assert store.outbox_counts() == {"sent": targets, "pending": targets}
        assert engine.untouched()

        assert store.resume_cluster()
        engine.hold.follow(store.cluster_pause())
        await wait_for(lambda: store.outbox_counts() == {"sent": 2 * targets}, 20)
        assert engine.discord.received == []  # a dry run posts nothing
