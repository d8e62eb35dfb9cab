"""A caller's deadline for the requests it makes: they end by then on their own.

A look-up the pipeline waits for (a kill's names, routes, appraisal) is bounded by its caller;
the service's request timeout is longer (10 s by default). A caller that gives up first cancels
the request, and a cancelled request is no verdict for the host's circuit breaker: a silent host
(connections accepted, nothing answered) never opened it, and every kill waited the whole bound.
Under :func:`deadline` every request (those of tasks started inside too: they copy the context)
times out by the deadline itself, the breaker counts the timeout, and no retry starts that could
not end before it. A request sent with less than half of its caller's bound left (the caller's
earlier requests, another host's, took the rest) that times out is no verdict on its host
(:func:`cut_short`): a slow ESI must not open a healthy Janice's breaker.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Iterator
from contextvars import ContextVar
from typing import Final, NamedTuple, TypeVar

__all__ = [
    "GRACE",
    "Deadline",
    "bounded",
    "current_deadline",
    "cut_short",
    "deadline",
    "ends_by",
    "time_left",
]

T = TypeVar("T")

GRACE: Final = 1.0
"""Seconds past its deadline before :func:`bounded` cancels the work: its requests end by the
deadline themselves, the cancellation is only the safety net."""


class Deadline(NamedTuple):
    """A context's deadline."""

    at: float
    """``time.monotonic()`` by which the requests of the context must end."""
    bound: float
    """The seconds it was set with (:func:`cut_short` compares the time left with it)."""


_DEADLINE: ContextVar[Deadline | None] = ContextVar("wanderer_http_deadline", default=None)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Requests sent inside end within ``seconds`` from now (or an outer, earlier deadline)."""
    at = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(Deadline(at, seconds) if outer is None or at < outer.at else outer)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@contextlib.contextmanager
def ends_by(limit: Deadline | None) -> Iterator[None]:
    """Requests sent inside end by ``limit`` (``None``: no deadline) in place of this context's
    deadline: for work done for several callers (a load they share), which ends by the latest
    of their deadlines, not by the one of the caller that started it."""
    token = _DEADLINE.set(limit)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def current_deadline() -> Deadline | None:
    """This context's deadline (``None``: none)."""
    return _DEADLINE.get()


def time_left() -> float | None:
    """Seconds left before this context's deadline (``None``: no deadline)."""
    current = _DEADLINE.get()
    return None if current is None else current.at - time.monotonic()


def cut_short() -> bool:
    """True when less than half of this context's bound is left: a request that times out now
    had only what the caller's earlier work left it, which says nothing of its host."""
    current = _DEADLINE.get()
    return current is not None and current.at - time.monotonic() < current.bound / 2


async def bounded(work: Awaitable[T], seconds: float) -> T:
    """``work``'s result, its requests under a ``seconds`` deadline (``TimeoutError`` when it
    is not done :data:`GRACE` seconds after it)."""
    with deadline(seconds):
        return await asyncio.wait_for(work, seconds + GRACE)
