"""The one HTTP client: every outbound call of the console goes through :class:`HttpClient`.

Callers outside this package never see httpx types: they get :class:`HttpResponse` or a
:class:`TransportError`, so a later move to another HTTP library is one package's change.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import orjson

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
    "NO_RETRY",
    "HttpClient",
    "HttpResponse",
    "TransportError",
    "classify_error",
]

log = logging.getLogger(__name__)

# httpx logs every request URL at INFO, and a webhook URL carries its token: whatever logging the
# host sets up, those lines reach its handlers redacted.
logging.getLogger("httpx").addFilter(RedactingFilter())


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
        """
        extensions: dict[str, Any] = {}
        if idempotent is not None:
            extensions[IDEMPOTENT] = idempotent
        if rate_key is not None:
            extensions[RATE_KEY] = rate_key
        started = time.perf_counter()
        if json is not None:
            content = orjson.dumps(json)
        send_headers = dict(headers or {})
        if json is not None:
            send_headers.setdefault("content-type", "application/json")
        try:
            response = await self._client.request(
                method,
                url,
                content=content,
                params=params,
                headers=send_headers,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
                extensions=extensions or None,
            )
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
