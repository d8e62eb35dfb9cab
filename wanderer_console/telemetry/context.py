"""Correlation ids that follow one request or event through the console's log lines.

The HTTP surface binds the caller's ``X-Request-ID`` (or a generated id) for each request; the
pipeline binds an event's correlation id, tenant and source while it processes that event. The
JSON log formatter adds whatever is bound here to every line, so one id can be followed from the
request that brought an event in to the Discord delivery that sent its notification.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token

__all__ = [
    "REQUEST_ID",
    "SOURCE",
    "TENANT",
    "bind_event",
    "bind_request_id",
    "correlation_id",
    "current_request_id",
    "new_request_id",
    "sanitise",
]

REQUEST_ID: ContextVar[str | None] = ContextVar("wanderer_console_request_id", default=None)
"""The correlation id of the work in progress (``None`` outside any request or event)."""
TENANT: ContextVar[str | None] = ContextVar("wanderer_console_tenant", default=None)
"""The tenant (map key) of the event in progress, when known."""
SOURCE: ContextVar[str | None] = ContextVar("wanderer_console_source", default=None)
"""Where the event in progress came from (``sse:<map>``, ``killstream``, ``api``, …)."""

_MAX_LENGTH = 128


def new_request_id() -> str:
    """A fresh correlation id (uuid4 hex)."""
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The correlation id bound in this context, if any."""
    return REQUEST_ID.get()


_EVENT_PREFIX = os.urandom(6).hex()
_EVENT_SEQUENCE = itertools.count(1)


def correlation_id() -> str:
    """The id a new event takes: the one bound in this context (a request's), else a fresh one.

    A fresh id is this process's random 48-bit prefix and a sequence number (32 hex digits,
    like a uuid4's): unique per event without reading the system's randomness for each
    (that cost 10 µs per kill, a tenth of the ingest path's budget).
    """
    return REQUEST_ID.get() or f"{_EVENT_PREFIX}{next(_EVENT_SEQUENCE):020x}"


def sanitise(given: str | None) -> str:
    """A caller-supplied id made safe for logs (printable, no quotes, bounded); may be empty."""
    value = "".join(ch for ch in (given or "") if ch.isprintable() and ch not in '"\\')
    return value.strip()[:_MAX_LENGTH]


@contextlib.contextmanager
def bind_request_id(given: str | None = None) -> Iterator[str]:
    """Bind ``given`` (sanitised; generated when empty) for the duration of the block."""
    value = sanitise(given) or new_request_id()
    token = REQUEST_ID.set(value)
    try:
        yield value
    finally:
        REQUEST_ID.reset(token)


class bind_event:  # lower case: called like the context-manager function it replaced
    """Bind an event's correlation id, tenant and source while it is processed.

    A plain class rather than ``@contextmanager``: it runs once per event on the pipeline's
    hot path, where the generator machinery cost more than the three context variables.
    """

    __slots__ = ("_tokens", "_values")

    def __init__(
        self, correlation: str | None, *, tenant: str | None = None, source: str | None = None
    ) -> None:
        self._values = (correlation, tenant, source)
        self._tokens: tuple[Token[str | None], ...] = ()

    def __enter__(self) -> None:
        correlation, tenant, source = self._values
        self._tokens = (REQUEST_ID.set(correlation), TENANT.set(tenant), SOURCE.set(source))

    def __exit__(self, *exc: object) -> None:
        request, tenant, source = self._tokens
        SOURCE.reset(source)
        TENANT.reset(tenant)
        REQUEST_ID.reset(request)
