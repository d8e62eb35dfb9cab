"""Helpers shared by the tests that run real servers: bounded waits on a condition."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

__all__ = ["connected", "headless_config", "start_headless", "wait_for"]


async def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "condition",
    *,
    interval: float = 0.01,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met within {timeout} s")


async def connected(runtime: Runtime, sources: int = 3, timeout: float = 10.0) -> None:
    """Wait until at least ``sources`` connections exist and every one reports connected."""

    def ready() -> bool:
        states = [c["state"] for c in runtime.snapshot()["connections"]]
        return len(states) >= sources and all(s == "connected" for s in states)

    await wait_for(ready, timeout)


def headless_config(sim: Simulator, path: Path) -> Path:
    """Write a minimal config for a ``--no-ui`` subprocess: one map, every kill to one webhook."""
    path.write_text(
        f"""
[console]
startup_suppression_seconds = 0
[killstream]
websocket_url = "{sim.killstream_url}"
[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.home.discord]
webhook_url = "{sim.webhook_url("primary")}"
"""
    )
    return path


async def start_headless(config: Path, data: Path) -> asyncio.subprocess.Process:
    """The engine as a real process (``python -m wanderer_console --no-ui``), stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wanderer_console",
        "--no-ui",
        "--config",
        str(config),
        "--data-dir",
        str(data),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
