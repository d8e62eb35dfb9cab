"""What every layer of the HTTP middleware chain shares: host keys, header parsing, the base.

Time comes from the engine's one :class:`~wanderer_console.domain.clock.Clock`.

The layers themselves live in :mod:`~wanderer_console.http.middleware` (telemetry, retry and the
assembly), :mod:`~wanderer_console.http.breaker` and :mod:`~wanderer_console.http.ratelimit`.
"""

from __future__ import annotations

import email.utils
import math

import httpx

from wanderer_console.http.errors import CircuitOpenError

__all__ = [
    "CircuitOpenError",
    "Wrapper",
    "float_header",
    "host_key",
    "retry_after_seconds",
]


def host_key(url: httpx.URL) -> str:
    """``host`` or ``host:port`` (the unit of rate limits and breakers)."""
    return f"{url.host}:{url.port}" if url.port else url.host


def float_header(headers: httpx.Headers, name: str) -> float | None:
    """A header's value as a finite number (``None`` when absent or not one).

    ``inf`` (or ``1e999``) would pause a host for ever and ``nan`` would not pause it at all:
    such a value is as unusable as a word, and the caller's fallback applies.
    """
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def retry_after_seconds(headers: httpx.Headers, now_wall: float) -> float | None:
    """``Retry-After`` as seconds (finite number or HTTP date), else None (also for a date too
    far ahead for a timestamp: ``OverflowError`` must not escape the chain)."""
    number = float_header(headers, "retry-after")
    if number is not None:
        return max(0.0, number)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - now_wall)


class Wrapper(httpx.AsyncBaseTransport):
    """A layer around ``inner``; closing it closes the inner transport."""

    _inner: httpx.AsyncBaseTransport

    async def aclose(self) -> None:
        """Close the wrapped transport (the pooled network transport at the bottom)."""
        await self._inner.aclose()
