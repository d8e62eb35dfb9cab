"""An httpx transport over aiohttp's connection pool: httpx stays the client API, aiohttp moves
the bytes.

Per request, httpx's own transport (httpcore) costs about twice the CPU of aiohttp's HTTP/1.1
client on the same request (measured for issue 24: ~0.6-0.8 ms against ~0.35 ms per Discord post
on the benchmark VM, the middleware chain included), and the Discord client sends one request per
delivered message. :class:`AiohttpTransport` is an ``httpx.AsyncBaseTransport``: the middleware
chain, :class:`~wanderer_console.http.client.HttpClient` and every caller are unchanged; only the
bottom of the chain differs. Connections are HTTP/1.1, kept alive per host for
``keepalive_seconds``.

The third-party ``httpx-aiohttp`` package does the same, but maps aiohttp's errors onto httpx's in
a way the outbox cannot use: a server that drops the connection after the request was written
(``ServerDisconnectedError``) or a reset comes out as ``httpx.ConnectTimeout``, which reads as
"never sent", so a webhook post that may have gone through would be retried as if it had not.
Here every aiohttp failure maps onto the httpx error that says the same about the request:

- nothing was sent: could not connect (``ConnectError``), or no connection within the connect/pool
  timeout (``ConnectTimeout``);
- it may have been sent: a read timeout (``ReadTimeout``), the server closing the connection
  (``RemoteProtocolError``), a reset or a broken body (``ReadError``).

Each response is read whole before it is handed up (the Discord API answers a few KiB of JSON;
streaming it through two layers of async iterators cost more than the read), so this transport is
not for streams (the map's and the killstream's keep httpx's own). Responses are not decompressed
here (httpx decodes ``Content-Encoding`` itself, as with its own transport), cookies are not kept
(the client's business), redirects are not followed.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Final

import aiohttp
import httpx
import yarl

from wanderer_console.http.tls import shared_ssl_context

__all__ = ["AiohttpTransport", "map_error"]

_URL_CACHE: Final = 4096
"""Parsed URLs kept (one per webhook or route; cleared when full)."""
_TIMEOUT_CACHE: Final = 64


def map_error(exc: BaseException, request: httpx.Request | None = None) -> httpx.TransportError:
    """The httpx error that says what ``exc`` (raised by aiohttp) means for the request."""
    message = str(exc) or type(exc).__name__
    error: httpx.TransportError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout(message)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError(message)
    elif isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
        error = httpx.ReadTimeout(message)
    elif isinstance(exc, aiohttp.ServerDisconnectedError):
        error = httpx.RemoteProtocolError(message)
    elif isinstance(exc, aiohttp.InvalidURL):
        error = httpx.UnsupportedProtocol(message)
    else:  # a reset, a broken body, an OS error after connecting: it may have been sent
        error = httpx.ReadError(message)
    if request is not None:
        error.request = request
    return error


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over an aiohttp connection pool, opened on the first request (in its loop)."""

    def __init__(
        self,
        *,
        max_connections: int = 100,
        keepalive_seconds: float = 5.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._limit = max_connections
        self._keepalive = keepalive_seconds
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, yarl.URL] = {}
        self._timeouts: dict[tuple[Any, Any, Any], aiohttp.ClientTimeout] = {}

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._limit,
            keepalive_timeout=self._keepalive,
            # The same certificate bundle as httpx's own transport (certifi), parsed once.
            ssl=self._ssl or shared_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            trust_env=False,
        )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and answer with its response, read whole."""
        session = self._session or self._open()
        timeout: dict[str, Any] = request.extensions.get("timeout") or {}
        headers = request.headers
        if isinstance(request.stream, httpx.ByteStream):
            body: Any = request.content or None
        else:  # an async iterable of bytes: aiohttp frames it (chunked) itself
            body = request.stream
            headers = headers.copy()
            headers.pop("transfer-encoding", None)
        try:
            response = await session.request(
                request.method,
                self._yarl(request.url),
                headers=headers.multi_items(),
                data=body,
                allow_redirects=False,
                timeout=self._timeout(timeout),
            )
            try:
                content = await response.read()
            finally:
                # Back to the pool when the body was read to its end; closed otherwise.
                response.release()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise map_error(exc, request) from exc
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode("latin-1", errors="replace")
        # The body as a stream, not ``content=``: httpx would add a Content-Length header the
        # server did not send and run the body through its decoders here, at a tenth of the
        # CPU of the whole request.
        answer = httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=httpx.ByteStream(content),
            request=request,
            extensions=extensions,
        )
        if "Content-Encoding" not in response.headers:
            # Nothing to decode: the bytes are the content, so the response is read already
            # (what ``Response.read`` leaves behind). An encoded body is decoded by httpx when
            # the client reads it, as with its own transport.
            answer._content = content
            answer.is_stream_consumed = True
            answer.is_closed = True
        return answer

    def _yarl(self, url: httpx.URL) -> yarl.URL:
        """``url`` as aiohttp's URL type, parsed once per distinct URL (one per webhook)."""
        raw = str(url)
        found = self._urls.get(raw)
        if found is None:
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            found = self._urls[raw] = yarl.URL(raw, encoded=True)
        return found

    def _timeout(self, timeout: dict[str, Any]) -> aiohttp.ClientTimeout:
        """httpx's per-request timeouts as aiohttp's, built once per distinct set."""
        key = (timeout.get("pool"), timeout.get("connect"), timeout.get("read"))
        found = self._timeouts.get(key)
        if found is None:
            found = aiohttp.ClientTimeout(
                total=None, connect=key[0], sock_connect=key[1], sock_read=key[2]
            )
            if len(self._timeouts) < _TIMEOUT_CACHE:
                self._timeouts[key] = found
        return found

    async def aclose(self) -> None:
        """Close every pooled connection."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
            # Let the transports finish closing before the loop may end (aiohttp's advice).
            await asyncio.sleep(0)
