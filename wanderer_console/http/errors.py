"""What can go wrong with a request, and the request flags the middleware reads.

Kept apart from the client and the middleware so both import it and neither imports the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import httpx

from wanderer_console.telemetry.logging import redact

__all__ = [
    "ATTEMPTS",
    "IDEMPOTENT",
    "RATE_KEY",
    "NO_RETRY",
    "STREAM",
    "CircuitOpenError",
    "TransportError",
    "classify_error",
]

IDEMPOTENT: Final = "wanderer.idempotent"

RATE_KEY: Final = "wanderer.rate_key"
"""Request extension: the token bucket it draws from is ``host#key`` instead of the host's
(several clients of one server, each paced as if it were alone)."""
"""Request extension: ``True`` lets the middleware chain retry a POST/PATCH."""
NO_RETRY: Final = "wanderer.no_retry"
"""Request extension: ``True`` bypasses retry (long-lived streams)."""
STREAM: Final = "wanderer.stream"
"""Request extension: ``True`` marks a long-lived stream (an event stream held for hours),
pooled apart from short requests (:class:`~wanderer_console.http.split.SplitTransport`)."""
ATTEMPTS: Final = "wanderer.attempts"
"""Response extension set by the retry layer: attempts made."""


@dataclass(slots=True)
class TransportError(Exception):
    """The request got no HTTP answer: refused, reset, timed out."""

    kind: str
    """``connect``, ``timeout``, ``read`` or ``other``."""
    detail: str = field(default="")
    maybe_sent: bool = field(default=False)
    """The request may have reached the server (it failed after being written, e.g. a read
    timeout): a non-idempotent request must not be blindly repeated."""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind


def classify_error(exc: httpx.HTTPError) -> TransportError:
    """An httpx failure as a :class:`TransportError`, saying whether the request may have
    reached the server (only connecting and waiting for a pooled connection are sure not to)."""
    if isinstance(exc, httpx.TimeoutException):
        kind = "timeout"
    elif isinstance(exc, httpx.ConnectError):
        kind = "connect"
    elif isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError):
        kind = "read"
    else:
        kind = "other"
    not_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    detail = redact(str(exc))[:300] or type(exc).__name__
    return TransportError(kind, detail, maybe_sent=not not_sent)


class CircuitOpenError(TransportError):
    """The host's breaker is open (or a probe is already in flight): failed fast, nothing sent."""

    def __init__(self, host: str, retry_in: float | None = None) -> None:
        detail = f"{host} circuit open"
        if retry_in is not None:
            detail += f", next probe in {max(0.0, retry_in):.1f}s"
        super().__init__("circuit_open", detail)
        self.host = host
        self.retry_in = retry_in
        """Seconds until the breaker lets a probe through, when known."""
