"""The only package that imports httpx: the shared client, its middleware chain and SSE."""

from wanderer_console.http.client import HttpClient, HttpResponse, TransportError
from wanderer_console.http.factory import build_client
from wanderer_console.http.middleware import BreakerEvent, CircuitOpenError, Clock
from wanderer_console.http.settings import HttpServiceSettings
from wanderer_console.http.sse import SseEvent, SseStream, open_sse

__all__ = [
    "BreakerEvent",
    "CircuitOpenError",
    "Clock",
    "HttpClient",
    "HttpResponse",
    "HttpServiceSettings",
    "SseEvent",
    "SseStream",
    "TransportError",
    "build_client",
    "open_sse",
]
