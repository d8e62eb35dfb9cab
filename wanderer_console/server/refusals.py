"""What the HTTP surface turns away, counted and logged without letting a client flood the log.

Every refused request (bad key, bad signature, too large, malformed, unknown route, ...), every
client that disconnects mid-request and every connection the server closes to protect itself is
counted in a metric whose labels come from fixed sets, and logged once per client per interval:
further occurrences in the interval are only counted, and the next line that client gets says
how many were suppressed. Log lines carry the reason, status and client address, never the
credential (ingest key, signature) nor the payload.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from starlette.requests import Request

from wanderer_console.telemetry.metrics import Metrics

__all__ = ["MAX_ECHO", "Refusals", "ThrottledLog", "clip", "endpoint_of"]

log = logging.getLogger(__name__)

MAX_ECHO: Final = 200
"""At most this many characters of a client's input are echoed in an error body."""
OTHER_CLIENTS: Final = "(other clients)"
"""Shared throttle key once :attr:`ThrottledLog.max_keys` distinct clients are being tracked."""


def clip(text: str, limit: int = MAX_ECHO, *, tail: int = 0) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut.

    ``tail`` characters of the end are kept, for messages that quote the input first and say
    what is wrong with it last.
    """
    if len(text) <= limit:
        return text
    tail = min(tail, limit // 2)
    return text[: limit - 1 - tail] + "…" + (text[-tail:] if tail else "")


def endpoint_of(path: str) -> str:
    """The ``endpoint`` label for a request path: ``ingest``, ``webhook`` or ``other``."""
    if path.startswith("/api/v1/events"):
        return "ingest"
    if path.startswith("/api/v1/maps/"):
        return "webhook"
    return "other"


def client_of(request: Request) -> str:
    """The client's address as the server sees it (after trusted proxy headers)."""
    return request.client.host if request.client else "unknown"


class ThrottledLog:
    """Logs at most one line per key per interval; the next line carries the suppressed count.

    The table of keys is bounded (``max_keys``): entries whose interval has passed are pruned
    when it is full, and if it is still full the newcomers share one key, so a flood from many
    addresses costs bounded memory and still yields a line per interval.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        interval: float = 60.0,
        max_keys: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self.max_keys = max_keys
        self.clock = clock
        # key -> [time of the last line, occurrences suppressed since]
        self._seen: dict[str, list[float]] = {}

    def emit(self, key: str, level: int, message: str, ctx: dict[str, Any]) -> bool:
        """Log ``message`` for ``key`` unless it was logged within the interval; True if logged."""
        now = self.clock()
        if key not in self._seen and len(self._seen) >= self.max_keys:
            self._prune(now)
            if len(self._seen) >= self.max_keys:
                key = OTHER_CLIENTS
        entry = self._seen.get(key)
        if entry is not None and now - entry[0] < self.interval:
            entry[1] += 1
            return False
        suppressed = int(entry[1]) if entry is not None else 0
        if suppressed:
            ctx = {**ctx, "suppressed": suppressed}
        self.logger.log(level, message, extra={"ctx": ctx})
        self._seen[key] = [now, 0]
        return True

    def _prune(self, now: float) -> None:
        stale = [k for k, (at, _) in self._seen.items() if now - at >= self.interval]
        for key in stale:
            del self._seen[key]


class Refusals:
    """Counts and logs refusals, client disconnects and server-closed connections."""

    def __init__(self, metrics: Metrics, *, interval: float = 60.0) -> None:
        self._metrics = metrics
        self.log = ThrottledLog(log, interval=interval)

    def refused(
        self, request: Request, endpoint: str, reason: str, status: int, **ctx: str
    ) -> None:
        """A request was answered ``status`` for ``reason`` (a fixed word, not client input)."""
        self._metrics.server_refusals.labels(endpoint=endpoint, reason=reason).inc()
        client = client_of(request)
        self.log.emit(
            f"refused:{client}",
            logging.WARNING,
            "http request refused",
            {"endpoint": endpoint, "reason": reason, "status": status, "client": client, **ctx},
        )

    def disconnected(self, request: Request, endpoint: str) -> None:
        """The client went away before its body was read (no traceback: nothing is wrong here)."""
        self._metrics.server_disconnects.labels(endpoint=endpoint).inc()
        client = client_of(request)
        self.log.emit(
            f"disconnected:{client}",
            logging.INFO,
            "http client disconnected mid-request",
            {"endpoint": endpoint, "client": client},
        )

    def connection_closed(self, reason: str, host: str) -> None:
        """The server closed or refused a connection (read deadline passed, connection cap)."""
        self._metrics.server_connections_closed.labels(reason=reason).inc()
        self.log.emit(
            f"closed:{host}",
            logging.WARNING,
            "http connection closed by the server",
            {"reason": reason, "client": host},
        )
