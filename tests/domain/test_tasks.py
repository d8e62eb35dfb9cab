"""cancel_and_wait: the children's cancellations are absorbed, the caller's goes through."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from wanderer_console.domain.tasks import cancel_and_wait


async def _slow_to_stop(stopping: asyncio.Event) -> None:
    """A child that takes a moment to finish once cancelled (a socket closing, say)."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        stopping.set()
        await asyncio.sleep(0.05)
        raise


async def _session(stopping: asyncio.Event, wait: str) -> None:
    """A session ending and stopping its helper, as a reconnect loop does before looping."""
    child = asyncio.create_task(_slow_to_stop(stopping))
    await asyncio.sleep(0)
    if wait == "helper":
        await cancel_and_wait([child])
    else:  # the pattern the helper replaces
        child.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await child


async def _reconnect_loop(stopping: asyncio.Event, wait: str) -> int:
    sessions = 0
    while sessions < 3:
        await _session(stopping, wait)
        sessions += 1
    return sessions


async def test_the_callers_cancellation_while_it_waits_is_not_swallowed() -> None:
    stopping = asyncio.Event()
    loop = asyncio.create_task(_reconnect_loop(stopping, "helper"))
    await stopping.wait()  # the loop is now waiting for its child to stop
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert loop.cancelled()


async def test_the_old_pattern_swallows_it_which_is_why_the_helper_exists() -> None:
    stopping = asyncio.Event()
    loop = asyncio.create_task(_reconnect_loop(stopping, "suppress"))
    await stopping.wait()
    loop.cancel()
    # The cancellation meant for the loop was taken as the child's: the loop ran on.
    assert await loop == 3


async def test_children_are_cancelled_and_their_failures_collected_not_raised() -> None:
    async def fails_on_the_way_out() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("closing failed")

    async def finished() -> int:
        return 1

    done = asyncio.create_task(finished())
    await done
    hanging = asyncio.create_task(asyncio.Event().wait())
    failing = asyncio.create_task(fails_on_the_way_out())
    await asyncio.sleep(0)
    await cancel_and_wait([done, hanging, failing])
    assert hanging.cancelled()
    assert isinstance(failing.exception(), RuntimeError)
    assert done.result() == 1
    await cancel_and_wait([])  # nothing to stop: returns
