"""A dispatcher on a real socket to the fake Discord, shared by the delivery tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import wait_for
from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.delivery.spill import ConfirmationSpill
from wanderer_console.domain.clock import Clock, SystemClock
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.http.factory import build_client
from wanderer_console.http.settings import resolve_settings
from wanderer_console.sim import AppServer, FakeDiscord, webhook_url
from wanderer_console.store import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["BOT_TOKEN", "FAST", "Rig", "count_reads", "make_rig", "until"]

BOT_TOKEN = "test-bot-token"
FAST = DeliveryPolicy(backoff_base=0.05, backoff_cap=0.2, uncertain_window=0.5, stop_grace=2.0)


@dataclass
class Rig:
    discord: FakeDiscord
    server: AppServer
    store: SqliteStore
    metrics: Metrics
    dispatcher: Dispatcher
    targets: dict[tuple[str, str], ResolvedTarget]
    http: HttpClient
    """The dispatcher's client (its breaker events, with ``chain``)."""
    clock: Clock = field(default_factory=SystemClock)
    """The dispatcher's clock: :meth:`enqueue` stamps the rows with its time, so that they are
    due for a dispatcher whose clock stands still."""

    def hook(self, webhook_id: int) -> Target:
        target = Target(TargetKind.WEBHOOK, webhook_url(self.server.url, webhook_id), "home")
        self.targets[("home", target.key)] = ResolvedTarget(target)
        return target

    def channel(self, channel_id: str, token: str = BOT_TOKEN) -> Target:
        target = Target(TargetKind.BOT_CHANNEL, channel_id, "home")
        self.targets[("home", target.key)] = ResolvedTarget(target, token)
        return target

    def enqueue(
        self, target: Target, count: int, *, content: str | None = None, tag: str = ""
    ) -> None:
        notes = []
        for i in range(count):
            body: dict[str, object] = {"embeds": [{"title": f"{tag}note {i}", "description": "x"}]}
            if content:
                body["content"] = content
            key = f"n:{target.key}:{i}:{content}:{tag}"
            notes.append(Notification("home", NotificationType.KILL, key, target, body))
        self.store.enqueue(notes, now=self.clock.wall())
        self.dispatcher.wake()

    def titles(self, target: str) -> Counter[str]:
        return Counter(
            embed["title"]
            for message in self.discord.messages_for(target)
            for embed in message.body["embeds"]
        )


@contextlib.asynccontextmanager
async def make_rig(
    tmp_path: Path,
    *,
    policy: DeliveryPolicy = FAST,
    timeout: float = 5.0,
    chain: bool = False,
    cooldown: float = 0.2,
    poll_interval: float = 0.05,
    webhook_limit: int = 50,
    webhook_window: float = 1.0,
    spill: ConfirmationSpill | None = None,
    discord_clock: Clock | None = None,
    clock: Clock | None = None,
) -> AsyncIterator[Rig]:
    """The rig, torn down afterwards. ``chain`` puts the real middleware (retry, rate limit,
    breaker with ``cooldown``) in front of the sender; otherwise a plain client. ``spill``: where
    the dispatcher's stop keeps confirmations the store refuses (none by default).
    ``discord_clock``: the fake Discord's clock (its rate-limit windows), for a test that ends a
    window itself instead of racing the wall clock (the system clock by default). ``clock``: the
    dispatcher's (the system clock by default); a test that gives both the same frozen clock
    decides alone when a window or a pause is over, the dispatcher's and the fake's alike."""
    fake = FakeDiscord(
        webhook_limit=webhook_limit,
        webhook_window=webhook_window,
        bot_token=BOT_TOKEN,
        clock=discord_clock,
    )
    server = AppServer(fake.app)
    await server.start()
    store = SqliteStore(tmp_path / "db.sqlite")
    metrics = Metrics()
    if chain:
        # The breaker opens after 5 failures and lets a probe through every ``cooldown`` s.
        settings = resolve_settings("discord", None).model_copy(
            update={"timeout_seconds": timeout, "breaker_cooldown_seconds": cooldown}
        )
        http = build_client("discord", settings, metrics=metrics)
    else:
        http = HttpClient("discord", metrics=metrics, timeout=timeout)
    targets: dict[tuple[str, str], ResolvedTarget] = {}
    sender = DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="test")
    dispatcher = Dispatcher(
        store,
        sender,
        metrics,
        lambda: targets,
        poll_interval=poll_interval,
        policy=policy,
        clock=clock,
        spill=spill,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield Rig(fake, server, store, metrics, dispatcher, targets, http, clock or SystemClock())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()
        await server.stop()
        store.close()


async def until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """:func:`tests.support.wait_for` with the delivery tests' longer default and 20 ms polls."""
    await wait_for(predicate, timeout, interval=0.02)


def count_reads(rig: Rig) -> list[float]:
    """Record every read of due rows (a look) from now on; the reads themselves unchanged."""
    reads: list[float] = []
    due_outbox = rig.store.due_outbox

    def counting(now: float, **kwargs: object) -> object:
        reads.append(now)
        return due_outbox(now, **kwargs)  # type: ignore[arg-type]

    rig.store.due_outbox = counting  # type: ignore[method-assign,assignment]
    return reads
