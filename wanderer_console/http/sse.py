"""Server-sent events over the shared client (httpx-sse does the framing).

httpx-sse buffers partial lines across chunks, so an event split anywhere in the byte stream is
reassembled, never dropped. The read timeout doubles as the keepalive watchdog: a stream that
sends no byte for ``idle_timeout`` seconds raises :class:`TransportError` (``timeout``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource

from wanderer_console.http.client import NO_RETRY, HttpClient, TransportError, classify_error

__all__ = ["SseEvent", "SseStream", "open_sse"]


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched SSE event (comments such as keepalives are not events)."""

    event: str
    id: str
    data: str


class SseStream:
    """An open event stream; check :attr:`status` before iterating :meth:`events`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.content_type = response.headers.get("content-type", "")

    async def error_body(self, limit: int = 500) -> str:
        """The body of a non-200 answer (the server's error message)."""
        try:
            body = await self._response.aread()
        except httpx.HTTPError:
            return ""
        return body[:limit].decode("utf-8", errors="replace")

    async def events(self) -> AsyncIterator[SseEvent]:
        """Yield events until the server closes the stream; raise :class:`TransportError`."""
        source = EventSource(self._response)
        try:
            async for sse in source.aiter_sse():
                # httpx-sse dispatches a "message" with empty data for a comment block (the
                # keepalive) once an id was seen; the SSE spec dispatches nothing without data.
                if not sse.data:
                    continue
                yield SseEvent(sse.event, sse.id, sse.data)
        except httpx.HTTPError as exc:
            raise classify_error(exc) from None


@asynccontextmanager
async def open_sse(
    client: HttpClient,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    connect_timeout: float = 30.0,
    idle_timeout: float = 75.0,
) -> AsyncIterator[SseStream]:
    """Open ``GET url`` as an event stream on ``client``."""
    send_headers = {"accept": "text/event-stream", "cache-control": "no-cache", **(headers or {})}
    timeout = httpx.Timeout(connect_timeout, read=idle_timeout)
    try:
        async with client.raw.stream(
            "GET",
            url,
            headers=send_headers,
            params=params,
            timeout=timeout,
            # A stream lives for hours: never under the retry layer's attempt and time caps.
            extensions={NO_RETRY: True},
        ) as response:
            yield SseStream(response)
    except httpx.HTTPError as exc:
        raise classify_error(exc) from None


# Re-export for callers that catch stream failures.
StreamError = TransportError
