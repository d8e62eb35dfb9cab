"""Delivery under Discord's limits: a burst to one webhook, against the fake Discord.

The fake enforces a per-webhook bucket (5 requests per 2 s) and a per-channel budget (30
messages per minute). The theoretical ceiling is the earliest moment both limits allow the last
message of the burst, with 10 embeds per message; the figure that matters is the share of that
ceiling the dispatcher reaches, and that nothing is lost or provokes a 429.

Run: ``python -m wanderer_console.bench.delivery [--quick] [--json PATH]``. ``--quick`` divides
both windows by 10 so the run takes seconds instead of a minute; the ratios are the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.sim.discord import FakeDiscord, webhook_url
from wanderer_console.sim.server import AppServer
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["ceiling_seconds", "main", "run_delivery_bench"]


def ceiling_seconds(
    notifications: int,
    *,
    per_message: int,
    webhook_limit: int,
    webhook_window: float,
    channel_limit: int,
    channel_window: float,
) -> float:
    """Earliest time the last message of the burst may be sent under both sliding windows.

    Each message goes at the first moment both the webhook bucket and the channel budget have
    room, measured from the first message (t = 0).
    """
    times: list[float] = []
    for _ in range(math.ceil(notifications / per_message)):
        t = times[-1] if times else 0.0
        while True:
            in_hook = [x for x in times if x > t - webhook_window]
            in_channel = [x for x in times if x > t - channel_window]
            if len(in_hook) < webhook_limit and len(in_channel) < channel_limit:
                break
            hook_free = (
                in_hook[-webhook_limit] + webhook_window if len(in_hook) >= webhook_limit else t
            )
            chan_free = (
                in_channel[-channel_limit] + channel_window
                if len(in_channel) >= channel_limit
                else t
            )
            t = max(hook_free, chan_free)
        times.append(t)
    return times[-1] if times else 0.0


async def run_delivery_bench(
    notifications: int = 500,
    *,
    webhook_limit: int = 5,
    webhook_window: float = 2.0,
    channel_limit: int = 30,
    channel_window: float = 60.0,
) -> dict[str, Any]:
    """Deliver one burst and report throughput against the ceiling."""
    discord = FakeDiscord(
        webhook_limit=webhook_limit,
        webhook_window=webhook_window,
        channel_per_minute=channel_limit,
        channel_window=channel_window,
    )
    async with AppServer(discord.app) as server:
        with tempfile.TemporaryDirectory(prefix="wc-bench-") as tmp:
            store = SqliteStore(Path(tmp) / "bench.db")
            metrics = Metrics()
            http = HttpClient("discord", metrics=metrics)
            target = Target(TargetKind.WEBHOOK, webhook_url(server.url, 1), "bench")
            targets = {("bench", target.key): ResolvedTarget(target)}
            dispatcher = Dispatcher(
                store,
                DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="bench"),
                metrics,
                lambda: targets,
                poll_interval=0.05,
                channel_per_minute=channel_limit,
                channel_window=channel_window,
            )
            store.enqueue(
                [
                    Notification(
                        "bench",
                        NotificationType.KILL,
                        f"kill:{i}",
                        target,
                        {"embeds": [{"title": f"Kill {i}", "description": "x" * 200}]},
                    )
                    for i in range(notifications)
                ]
            )
            started = time.perf_counter()
            task = asyncio.create_task(dispatcher.run())
            deadline = started + 10 * channel_window + 60
            while store.outbox_counts().get("sent", 0) < notifications:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.01)
            first_at = discord.received[0].at if discord.received else 0.0
            last_at = discord.received[-1].at if discord.received else 0.0
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await http.aclose()
            sent = store.outbox_counts().get("sent", 0)
            store.close()
    elapsed = max(last_at - first_at, 1e-9)
    ceiling = ceiling_seconds(
        notifications,
        per_message=10,
        webhook_limit=webhook_limit,
        webhook_window=webhook_window,
        channel_limit=channel_limit,
        channel_window=channel_window,
    )
    return {
        "scenario": "delivery_under_discord_limits",
        "notifications": notifications,
        "delivered": sent,
        "lost": notifications - sent,
        "messages": len(discord.received),
        "rejected_429": discord.rejected_429,
        "seconds": round(elapsed, 3),
        "ceiling_seconds": round(ceiling, 3),
        "delivered_per_second": round(notifications / elapsed, 2),
        "ceiling_per_second": round(notifications / ceiling, 2) if ceiling else None,
        "share_of_ceiling": round(min(ceiling / elapsed, 1.0), 3) if ceiling else 1.0,
        "limits": {
            "webhook": f"{webhook_limit}/{webhook_window}s",
            "channel": f"{channel_limit}/{channel_window}s",
        },
    }


def main(argv: list[str] | None = None) -> int:
    """Command line entry: print the JSON result (and write it with ``--json``)."""
    parser = argparse.ArgumentParser(prog="python -m wanderer_console.bench.delivery")
    parser.add_argument("--quick", action="store_true", help="windows divided by 10")
    parser.add_argument("--notifications", type=int, default=500)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result here")
    args = parser.parse_args(argv)
    scale = 10.0 if args.quick else 1.0
    result = asyncio.run(
        run_delivery_bench(
            args.notifications, webhook_window=2.0 / scale, channel_window=60.0 / scale
        )
    )
    result["quick"] = bool(args.quick)
    text = json.dumps(result, sort_keys=True)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
