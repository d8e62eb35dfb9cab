"""A caller's deadline for the requests it makes: they end by then on their own.

A look-up the pipeline waits for (a kill's names, routes, appraisal) is bounded by its caller;
the service's request timeout is longer (10 s by default). A caller that gives up first cancels
the request, and a cancelled request is no verdict for the host's circuit breaker: a silent host
(connections accepted, nothing answered) never opened it, and every kill waited the whole bound.
Under :func:`deadline` every request (those of tasks started inside too: they copy the context)
times out by the deadline itself, the breaker counts the timeout, and no retry starts that could
not end before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterator
from contextvars import ContextVar
from typing import Final, TypeVar

__all__ = ["GRACE", "bounded", "deadline", "time_left"]

T = TypeVar("T")

GRACE: Final = 1.0
"""Seconds past its deadline before :func:`bounded` cancels the work: its requests end by the
deadline themselves, the cancellation is only the safety net."""

_DEADLINE: ContextVar[float | None] = ContextVar("wanderer_http_deadline", default=None)
"""``time.monotonic()`` by which the requests of this context must end."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Requests sent inside end within ``seconds`` from now (or an outer, earlier deadline)."""
    at = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(at if outer is None else min(outer, at))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def time_left() -> float | None:
    """Seconds left before this context's deadline (``None``: no deadline)."""
    at = _DEADLINE.get()
    return None if at is None else at - time.monotonic()


async def bounded(work: Awaitable[T], seconds: float) -> T:
    """``work``'s result, its requests under a ``seconds`` deadline (``TimeoutError`` when it
    is not done :data:`GRACE` seconds after it)."""
    with deadline(seconds):
        return await asyncio.wait_for(work, seconds + GRACE)
