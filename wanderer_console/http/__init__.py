"""The only package that imports httpx: the shared client, its middleware chain and SSE.

Every outbound call goes through :class:`HttpClient`, which answers :class:`HttpResponse` or
raises :class:`TransportError` (never an httpx type). :func:`build_client` builds a service's
client with the chain ``telemetry → retry → circuit breaker → rate limit`` configured by its
:class:`HttpServiceSettings` (resolved per service in :mod:`~.settings`); an open breaker raises
:class:`CircuitOpenError`. :func:`open_sse` streams server-sent events (:class:`SseEvent`)
through a bounded decoder. :mod:`~.bench_support` is the bare-httpx loop the benchmarks compare
against.
"""

from wanderer_console.http.client import HttpClient, HttpResponse, TransportError
from wanderer_console.http.factory import build_client
from wanderer_console.http.middleware import BreakerEvent, CircuitOpenError
from wanderer_console.http.settings import HttpServiceSettings
from wanderer_console.http.sse import SseEvent, SseStream, open_sse

__all__ = [
    "BreakerEvent",
    "CircuitOpenError",
    "HttpClient",
    "HttpResponse",
    "HttpServiceSettings",
    "SseEvent",
    "SseStream",
    "TransportError",
    "build_client",
    "open_sse",
]
