"""Helpers shared by the tests that run real servers: bounded waits on a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from wanderer_console.runtime import Runtime

__all__ = ["connected", "wait_for"]


async def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, *, interval: float = 0.01
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


async def connected(runtime: Runtime, sources: int = 3, timeout: float = 10.0) -> None:
    """Wait until at least ``sources`` connections exist and every one reports connected."""

    def ready() -> bool:
        states = [c["state"] for c in runtime.snapshot()["connections"]]
        return len(states) >= sources and all(s == "connected" for s in states)

    await wait_for(ready, timeout)
