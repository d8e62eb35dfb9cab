"""The only package that imports httpx: the shared client and SSE streaming."""

from wanderer_console.http.client import HttpClient, HttpResponse, TransportError
from wanderer_console.http.sse import SseEvent, SseStream, open_sse

__all__ = ["HttpClient", "HttpResponse", "SseEvent", "SseStream", "TransportError", "open_sse"]
