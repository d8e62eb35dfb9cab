"""What every layer of the HTTP middleware chain shares: host keys, header parsing, the base.

Time comes from the engine's one :class:`~wanderer_console.domain.clock.Clock`.

The layers themselves live in :mod:`~wanderer_console.http.middleware` (telemetry, retry and the
assembly), :mod:`~wanderer_console.http.breaker` and :mod:`~wanderer_console.http.ratelimit`.
"""

from __future__ import annotations

import email.utils

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
    """A header's value as a number (``None`` when absent or not a number)."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def retry_after_seconds(headers: httpx.Headers, now_wall: float) -> float | None:
    """``Retry-After`` as seconds (number or HTTP date), else None."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now_wall)


class Wrapper(httpx.AsyncBaseTransport):
    """A layer around ``inner``; closing it closes the inner transport."""

    _inner: httpx.AsyncBaseTransport

    async def aclose(self) -> None:
        """Close the wrapped transport (the pooled network transport at the bottom)."""
        await self._inner.aclose()
