"""What the benchmarks share: a running console over a running simulator, and kill frames.

Every scenario that measures the real path starts the same way (temporary data directory,
simulator, demo settings, runtime, wait for both killstream sockets) and stops the same way;
this module is that one place.
"""

from __future__ import annotations

import asyncio
import gc
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from wanderer_console.config.model import Settings
from wanderer_console.domain.tasks import cancel_and_wait
from wanderer_console.gcpolicy import IdleCollector, freeze_startup_objects
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim.simulator import Simulator

__all__ = ["Rig", "console_over_simulator", "kill_frame", "numbered_frames", "wait_joined"]


@dataclass(frozen=True, slots=True)
class Rig:
    """A started simulator and a started runtime pointed at it."""

    sim: Simulator
    runtime: Runtime
    data_dir: Path


async def wait_joined(sim: Simulator, sockets: int = 2, timeout: float = 10.0) -> None:
    """Wait (bounded) until the console's killstream sockets have joined."""
    for _ in range(int(timeout / 0.025)):
        if sim.killstream.joined_clients >= sockets:
            return
        await asyncio.sleep(0.025)


def kill_frame(killmail: dict[str, Any]) -> str:
    """A pre-encoded V2 ``killmail_update`` broadcast frame for one kill."""
    payload = {"system_id": killmail["system_id"], "killmails": [killmail], "preload": False}
    return orjson.dumps([None, None, "killmails:lobby", "killmail_update", payload]).decode()


def numbered_frames(templates: list[dict[str, Any]], first_id: int, count: int) -> list[str]:
    """``count`` broadcast frames for copies of ``templates`` (in turn) with killmail ids
    ``first_id``, ``first_id + 1``, …: many distinct kills without generating each one."""
    frames = []
    for i in range(count):
        kill = dict(templates[(first_id + i) % len(templates)])
        kill["killmail_id"] = first_id + i
        frames.append(kill_frame(kill))
    return frames


@asynccontextmanager
async def console_over_simulator(
    *,
    seed: int,
    unlimited_discord: bool = False,
    configure: Callable[[Settings], None] | None = None,
    prefix: str = "wc-bench-",
) -> AsyncIterator[Rig]:
    """Start the simulator and a runtime against it; stop both on exit.

    ``unlimited_discord`` lifts Discord's limits on both sides (the fake's buckets, the
    client's rate limit and channel pacing) so a run measures the console, not Discord.
    Real-time updates are sent once (the engine's dedup is measured elsewhere). The objects that
    exist once everything is up are frozen for the garbage collector, as in production.
    """
    limits = (
        {"discord_webhook_limit": 1_000_000, "discord_webhook_window": 1.0}
        if unlimited_discord
        else {}
    )
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data = Path(tmp)
        async with Simulator(seed=seed, **limits) as sim:  # type: ignore[arg-type]
            sim.killstream.duplicate_realtime = False
            settings = demo_settings(sim, data_dir=data)
            if unlimited_discord:
                settings.discord.channel_messages_per_minute = 1_000_000
                settings.http = {"discord": {"rate_per_second": 0}}
            if configure is not None:
                configure(settings)
            runtime = Runtime(settings, data_dir=data)
            await runtime.start()
            thresholds = gc.get_threshold()
            collector: asyncio.Task[None] | None = None
            try:
                await wait_joined(sim)
                # As `wanderer-console --no-ui` does once started (see gcpolicy): start-up
                # objects frozen, collections when the engine is idle; undone on exit so the
                # next scenario starts with nothing of this one frozen.
                freeze_startup_objects()
                collector = asyncio.create_task(
                    IdleCollector(runtime.has_work_in_hand).run(), name="gc-idle"
                )
                yield Rig(sim, runtime, data)
            finally:
                if collector is not None:
                    await cancel_and_wait([collector])
                gc.unfreeze()
                gc.set_threshold(*thresholds)
                await runtime.stop()
