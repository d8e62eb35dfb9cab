"""Stopping child tasks without swallowing the caller's own cancellation.

The obvious way to stop a helper task, ``task.cancel()`` then
``with suppress(CancelledError): await task``, has a trap: when the *caller* is cancelled while
it waits there (a supervisor stopping the engine just as a socket session ends), the caller's
cancellation is the one suppressed, and the caller carries on as if nothing happened (a
killstream socket reconnecting forever under a test's teardown). :func:`cancel_and_wait` tells
the two apart: the children's cancellations are absorbed, the caller's goes through.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_and_wait"]


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel ``tasks`` and wait until every one has finished.

    Their outcomes (cancelled, an exception, a result) are collected, never raised: a helper
    failing on the way out has been logged where it failed. A cancellation of the *caller* while
    it waits here propagates (the children stay cancelled and finish on their own).
    """
    tasks = list(tasks)
    pending = [task for task in tasks if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        # asyncio.wait never raises the children's outcomes, and raises the caller's own
        # CancelledError when the caller is cancelled while waiting.
        await asyncio.wait(pending)
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit
