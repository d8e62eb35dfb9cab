"""Server-sent events over the shared client (:mod:`~wanderer_console.http.sse_decoder` frames).

The decoder reassembles lines across chunks, so an event split anywhere in the byte stream is
never dropped, and it bounds what it holds: a line or event over its limit is skipped (and told
through ``on_oversize``) while the stream goes on. The read timeout doubles as the keepalive
watchdog: a stream that sends no byte for ``idle_timeout`` seconds raises
:class:`TransportError` (``timeout``).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

import httpx

from wanderer_console.http.chain_base import retry_after_seconds
from wanderer_console.http.client import NO_RETRY, HttpClient, TransportError, classify_error
from wanderer_console.http.errors import RATE_KEY, STREAM
from wanderer_console.http.sse_decoder import (
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    SseDecoder,
    SseEvent,
    SseOversize,
)

__all__ = ["SseEvent", "SseOversize", "SseStream", "open_sse"]


class SseStream:
    """An open event stream; check :attr:`status` before iterating :meth:`events`."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.retry_after = retry_after_seconds(response.headers, time.time())
        """The answer's ``Retry-After`` in seconds (a number or an HTTP date), else ``None``:
        how long a server that refused the stream (429, 503) asked to be left alone."""

    async def error_body(self, limit: int = 500) -> str:
        """The body of a non-200 answer (the server's error message)."""
        try:
            body = await self._response.aread()
        except httpx.HTTPError:
            return ""
        return body[:limit].decode("utf-8", errors="replace")

    async def events(
        self,
        *,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        on_oversize: Callable[[SseOversize], None] | None = None,
        on_comment: Callable[[], None] | None = None,
    ) -> AsyncIterator[SseEvent]:
        """Yield events until the server closes the stream; raise :class:`TransportError`.

        An event with a line over ``max_line_bytes`` or data over ``max_event_bytes`` is not
        yielded: ``on_oversize`` hears of it (also when the stream ends inside it), and the
        events after it still come. At most about the two limits are held in memory.
        ``on_comment`` is told once per chunk that held a comment (a keepalive), after that
        chunk's events were taken: every byte the server sent before it has been read.
        """
        media_type = self.content_type.partition(";")[0]
        if "text/event-stream" not in media_type:
            raise TransportError("other", f"expected text/event-stream, got {media_type!r}")
        decoder = SseDecoder(max_line_bytes, max_event_bytes)
        try:
            # Chunks as they are read off the socket (decompressed if need be), so nothing
            # here waits for a whole line: the decoder alone decides what is kept.
            async for chunk in self._response.aiter_bytes():
                comments = decoder.comments
                for item in decoder.feed(chunk):
                    if isinstance(item, SseEvent):
                        yield item
                    elif on_oversize is not None:
                        on_oversize(item)
                if on_comment is not None and decoder.comments != comments:
                    on_comment()
        except httpx.HTTPError as exc:
            raise classify_error(exc) from None
        finally:
            # A stream that ends (or fails) inside an oversize line or event still reports it.
            report = decoder.finish()
            if report is not None and on_oversize is not None:
                on_oversize(report)


@asynccontextmanager
async def open_sse(
    client: HttpClient,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    connect_timeout: float = 30.0,
    idle_timeout: float = 75.0,
    rate_key: str | None = None,
) -> AsyncIterator[SseStream]:
    """Open ``GET url`` as an event stream on ``client`` (``rate_key``: pace the connect in its
    own token bucket on the host, as :meth:`HttpClient.request` does)."""
    send_headers = {"accept": "text/event-stream", "cache-control": "no-cache", **(headers or {})}
    timeout = httpx.Timeout(connect_timeout, read=idle_timeout)
    # STREAM: pooled apart from the client's short requests (http/split.py).
    extensions: dict[str, object] = {NO_RETRY: True, STREAM: True}
    if rate_key is not None:
        extensions[RATE_KEY] = rate_key
    try:
        async with client.raw.stream(
            "GET",
            url,
            headers=send_headers,
            params=params,
            timeout=timeout,
            # A stream lives for hours: never under the retry layer's attempt and time caps.
            extensions=extensions,
        ) as response:
            yield SseStream(response)
    except httpx.HTTPError as exc:
        raise classify_error(exc) from None


# Re-export for callers that catch stream failures.
StreamError = TransportError
