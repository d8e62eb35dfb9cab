"""The only package that imports httpx: the shared client, its middleware chain and SSE.

Every outbound call goes through :class:`HttpClient`, which answers :class:`HttpResponse` or
raises :class:`TransportError` (never an httpx type). :func:`build_client` builds a service's
client with the chain ``telemetry → retry → circuit breaker → rate limit`` configured by its
:class:`HttpServiceSettings` (resolved per service in :mod:`~.settings`); an open breaker raises
:class:`CircuitOpenError`. :func:`open_sse` streams server-sent events (:class:`SseEvent`)
through a bounded decoder. :mod:`~.bench_support` is the bare-httpx loop the benchmarks compare
against.
"""

import sys

# httpx's package imports its command-line client (``httpx._main``) on every import, and that
# pulls in rich, pygments and click's formatting: about 3.5 MB of resident memory in a headless
# engine that never runs httpx's CLI (its idle RSS is a budget line, bench ``peer``). Marked
# as absent, httpx falls back to a ``main`` that says the CLI is not installed. The TUI
# imports rich through Textual anyway; an httpx imported earlier keeps its CLI.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from wanderer_console.http.client import HttpClient, HttpResponse, TransportError  # noqa: E402
from wanderer_console.http.factory import build_client  # noqa: E402
from wanderer_console.http.middleware import BreakerEvent, CircuitOpenError  # noqa: E402
from wanderer_console.http.settings import HttpServiceSettings  # noqa: E402
from wanderer_console.http.sse import SseEvent, SseStream, open_sse  # noqa: E402

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
