"""Correlation ids that follow one request or event through the console's log lines."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

__all__ = ["REQUEST_ID", "bind_request_id", "current_request_id", "new_request_id"]

REQUEST_ID: ContextVar[str | None] = ContextVar("wanderer_console_request_id", default=None)
"""The correlation id of the work in progress (``None`` outside any request or event)."""

_MAX_LENGTH = 128


def new_request_id() -> str:
    """A fresh correlation id."""
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The correlation id bound in this context, if any."""
    return REQUEST_ID.get()


@contextlib.contextmanager
def bind_request_id(given: str | None = None) -> Iterator[str]:
    """Bind ``given`` (sanitised; generated when empty) for the duration of the block."""
    value = "".join(ch for ch in (given or "") if ch.isprintable() and ch not in '"\\')
    value = value.strip()[:_MAX_LENGTH] or new_request_id()
    token = REQUEST_ID.set(value)
    try:
        yield value
    finally:
        REQUEST_ID.reset(token)
