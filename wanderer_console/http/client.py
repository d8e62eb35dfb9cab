"""The one HTTP client: every outbound call of the console goes through :class:`HttpClient`.

Callers outside this package never see httpx types: they get :class:`HttpResponse` or a
:class:`TransportError`, so a later move to another HTTP library is one package's change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx
import orjson

from wanderer_console.http.deadline import time_left
from wanderer_console.http.errors import (
    ATTEMPTS,
    IDEMPOTENT,
    NO_RETRY,
    RATE_KEY,
    TransportError,
    classify_error,
)
from wanderer_console.http.tls import shared_ssl_context
from wanderer_console.telemetry.logging import RedactingFilter, redact
from wanderer_console.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from wanderer_console.http.breaker import BreakerEvent, BreakerSnapshot, CircuitBreakers


class Chain(Protocol):
    """The middleware chain a client sends through (built by :mod:`.middleware`)."""

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        """The outermost transport."""

    @property
    def breakers(self) -> CircuitBreakers:
        """The per-host circuit breakers, for inspection."""


__all__ = [
    "ATTEMPTS",
    "IDEMPOTENT",
    "JSON_HEADERS",
    "NO_RETRY",
    "HttpClient",
    "HttpResponse",
    "TransportError",
    "classify_error",
]

log = logging.getLogger(__name__)

# httpx logs every request URL at INFO, and a webhook URL carries its token: whatever logging the
# host sets up, those lines reach its handlers redacted.
_httpx_log = logging.getLogger("httpx")
_httpx_log.addFilter(RedactingFilter())

JSON_HEADERS: Final = MappingProxyType({"content-type": "application/json"})
"""The headers of a JSON body (what ``json=`` sends; for a body passed encoded)."""
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_OWN_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding"})
"""Headers httpx fills in itself; a caller setting one takes httpx's own path."""
_URL_CACHE: Final = 4096
"""Parsed URLs kept per client (one per webhook or route; cleared when full)."""
_TIMEOUT_CACHE: Final = 64


class _NoCookies(httpx.Cookies):
    """A cookie store that keeps nothing: no service the console calls uses cookies, and httpx
    otherwise reads every response's ``Set-Cookie`` through ``http.cookiejar`` (two adapter
    objects and a URL parse per request, about 1.4 % of the engine's busy time delivering to a
    webhook at 200 per second: issue 24's profile)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Keep nothing."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A complete response: status, headers (lower-case names) and body bytes."""

    status: int
    headers: Mapping[str, str]
    content: bytes = b""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` when it is not JSON)."""
        return orjson.loads(self.content)

    def text(self, limit: int = 500) -> str:
        """The start of the body as text, for error messages."""
        return self.content[:limit].decode("utf-8", errors="replace")


class HttpClient:
    """An HTTP client for one service (map, esi, discord, killstream, zkillboard).

    Built plain (no middleware) by its constructor for backward compatibility; use
    :func:`wanderer_console.http.factory.build_client` to get the middleware chain (retry, rate
    limit, circuit breaker, telemetry).
    """

    def __init__(
        self,
        service: str,
        *,
        base_url: str = "",
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
        chain: Chain | None = None,
    ) -> None:
        self.service = service
        self._metrics = metrics
        self._chain = chain
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            headers=dict(headers or {}),
            follow_redirects=False,
            transport=None if chain is None else chain.transport,
            verify=shared_ssl_context(),
        )
        # Set past the constructor, which copies whatever it is given into a plain Cookies.
        self._client._cookies = _NoCookies()
        # The direct lane (see _build): the chain's transport, the client's default headers as
        # (name, lower-case name, value) and the parsed URLs and timeouts seen so far.
        self._transport = None if chain is None else chain.transport
        self._plain_base = not base_url
        self._base_headers = [
            (k, k.decode("latin-1").lower(), v) for k, v in self._client.headers.raw
        ]
        self._urls: dict[str, httpx.URL] = {}
        self._timeouts: dict[float | None, dict[str, float | None]] = {
            None: self._client.timeout.as_dict()
        }

    def breakers_snapshot(self) -> dict[str, BreakerSnapshot]:
        """Every per-host circuit breaker's state (empty without the middleware chain)."""
        return {} if self._chain is None else self._chain.breakers.snapshot()

    @property
    def breaker_events(self) -> list[BreakerEvent]:
        """Recent breaker transitions, oldest first (bounded)."""
        return [] if self._chain is None else list(self._chain.breakers.events)

    @property
    def raw(self) -> httpx.AsyncClient:
        """The underlying client, for sibling modules of this package (SSE streaming)."""
        return self._client

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        rate_key: str | None = None,
        content: bytes | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole response; raise :class:`TransportError`.

        ``idempotent=True`` lets the middleware chain retry a POST; ``False`` forbids retrying
        any method; ``None`` follows the method (GET/HEAD/PUT/DELETE are idempotent).
        ``rate_key`` paces the request in its own token bucket on the host (one per map).
        ``content`` is a raw body (its ``content-type`` header is the caller's); ``json`` wins.
        Under a caller's :func:`~wanderer_console.http.deadline.deadline` the timeout is cut to
        the time left (none left: :class:`TransportError` ``timeout``, nothing sent).
        """
        left = time_left()
        if left is not None:
            if left <= 0:
                self._count_error("timeout")
                raise TransportError("timeout", "no time left before the caller's deadline")
            default = self._client.timeout.read if timeout is None else timeout
            timeout = left if default is None else min(default, left)
        extensions: dict[str, Any] = {}
        if idempotent is not None:
            extensions[IDEMPOTENT] = idempotent
        if rate_key is not None:
            extensions[RATE_KEY] = rate_key
        started = time.perf_counter()
        if json is not None:
            content = orjson.dumps(json)
            if headers is None:
                headers = JSON_HEADERS
            elif "content-type" not in headers:
                headers = {**headers, "content-type": "application/json"}
        try:
            request = None
            if self._transport is not None and params is None:
                request = self._build(method, url, content, headers, timeout, extensions)
            if request is None:
                response = await self._client.request(
                    method,
                    url,
                    content=content,
                    params=params,
                    headers=headers,
                    timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                    extensions=extensions or None,
                )
            else:
                response = await self._send(request)
        except (httpx.HTTPError, TransportError) as exc:
            error = exc if isinstance(exc, TransportError) else classify_error(exc)
            self._count_error(error.kind)
            log.warning(
                "http request failed",
                extra={
                    "ctx": {
                        "service": self.service,
                        "method": method,
                        "url": self._log_url(url, params),
                        "error": redact(str(error)),
                        "elapsed": round(time.perf_counter() - started, 4),
                    }
                },
            )
            raise error from None
        elapsed = time.perf_counter() - started
        result = HttpResponse(response.status_code, response.headers, response.content, elapsed)
        if not result.ok:
            log.log(
                logging.WARNING if result.status >= 500 else logging.INFO,
                "http request answered with an error status",
                extra={
                    "ctx": {
                        "service": self.service,
                        "method": method,
                        "status": result.status,
                        "url": redact(str(response.request.url)),
                        "attempts": response.extensions.get(ATTEMPTS, 1),
                        "elapsed": round(elapsed, 4),
                    }
                },
            )
        return result

    def _url(self, url: str) -> httpx.URL | None:
        """``url`` parsed (once per distinct URL), or None when the direct lane cannot send it:
        relative (the client's base URL applies), carrying credentials (httpx's auth applies),
        or not parseable (httpx's own path raises the error)."""
        parsed = self._urls.get(url)
        if parsed is None:
            try:
                parsed = httpx.URL(url)
            except (httpx.InvalidURL, TypeError):
                return None
            if not self._plain_base or parsed.is_relative_url or parsed.userinfo:
                return None
            if len(self._urls) >= _URL_CACHE:
                self._urls.clear()
            self._urls[url] = parsed
        return parsed

    def _build(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
        extensions: dict[str, Any],
    ) -> httpx.Request | None:
        """The request ``AsyncClient.build_request`` would build, without its per-request URL
        parse, header merges and body encoding (about a fifth of the CPU of a webhook post):
        the URL comes parsed from :meth:`_url`, the client's headers from the constructor.

        Same headers in the same order (``Host``, the client's headers not overridden, the
        caller's, then ``Content-Length``; tests/http/test_client_fast.py compares both);
        None (httpx's own path) for what the shortcut does not cover: a body that is not bytes,
        a caller's ``Host``, ``Content-Length`` or ``Transfer-Encoding`` header, or a URL
        :meth:`_url` declines.
        """
        if content is not None and not isinstance(content, bytes):
            return None  # httpx encodes a str or a stream itself
        parsed = self._url(url)
        if parsed is None:
            return None
        items: list[tuple[bytes, bytes]] = [(b"Host", parsed.netloc)]
        method = method.upper()
        if not content and method in _BODY_METHODS:
            items.append((b"Content-Length", b"0"))
        if headers:
            names = {name.lower() for name in headers}
            if not names.isdisjoint(_OWN_HEADERS):
                return None
            items += [(k, v) for k, lower, v in self._base_headers if lower not in names]
            # ASCII, as httpx encodes a str header (a non-ASCII one fails the same way).
            items += [(k.encode("ascii"), v.encode("ascii")) for k, v in headers.items()]
        else:
            items += [(k, v) for k, _, v in self._base_headers]
        if content:
            items.append((b"Content-Length", str(len(content)).encode()))
        timeouts = self._timeouts.get(timeout)
        if timeouts is None:
            timeouts = httpx.Timeout(timeout).as_dict()
            if len(self._timeouts) < _TIMEOUT_CACHE:
                self._timeouts[timeout] = timeouts
        extensions["timeout"] = timeouts
        request = httpx.Request(
            method,
            parsed,
            headers=httpx.Headers(items),
            stream=httpx.ByteStream(content or b""),
            extensions=extensions,
        )
        request.read()  # the body as ``request.content`` (what telemetry counts)
        return request

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` down the chain and read the response whole: what
        ``AsyncClient.send`` does for us, without its auth, redirect and cookie steps (the
        console uses none of them: no client auth, URLs with credentials take httpx's path,
        redirects are not followed, cookies are not kept)."""
        assert self._transport is not None
        try:
            response = await self._transport.handle_async_request(request)
        except httpx.RequestError as exc:
            try:
                _ = exc.request
            except RuntimeError:  # as httpx's own path: the error names its request
                exc.request = request
            raise
        response.request = request
        try:
            await response.aread()
        except BaseException:
            await response.aclose()
            raise
        if _httpx_log.isEnabledFor(logging.INFO):
            _httpx_log.info(
                'HTTP Request: %s %s "%s %d %s"',
                request.method,
                request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
        return response

    def _log_url(self, url: str, params: Mapping[str, str] | None) -> str:
        try:
            full = self._client.build_request("GET", url, params=params).url
        except (httpx.HTTPError, ValueError, TypeError):
            return redact(url)
        return redact(str(full))

    def _count_error(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.errors.labels(component=f"http:{self.service}:{kind}").inc()

    async def get(
        self, url: str, *, params: Mapping[str, str] | None = None, **kwargs: Any
    ) -> HttpResponse:
        """GET ``url``."""
        return await self.request("GET", url, params=params, **kwargs)

    async def post(self, url: str, *, json: Any = None, **kwargs: Any) -> HttpResponse:
        """POST a JSON body to ``url``."""
        return await self.request("POST", url, json=json, **kwargs)

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._client.aclose()
