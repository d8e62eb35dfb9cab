"""``POST /api/v1/maps/{map}/webhook``: Wanderer's webhook delivery of map events.

The body is one event envelope (or, defensively, ``{"events": [...]}``) signed with the map's
webhook secret: ``X-Wanderer-Signature: sha256=<hex>`` over ``<X-Wanderer-Timestamp>.<raw body>``
(PROTOCOLS.md §1.8). Verified events are queued exactly like the SSE stream's, so an event that
arrives both ways is notified once (the engine dedups on the ULID). The answer is immediate: the
sender retries on anything but 2xx and expects an answer within seconds.

Every refusal is counted (``wc_server_refusals_total{endpoint="webhook"}`` and, as before,
``wc_events_invalid_total``) and logged, throttled per client, without the signature or the body.
Metric labels name a configured map or ``unknown``: the path is the client's to choose, so a flood
of posts to made-up map names must not create a series per name.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any, Final

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from wanderer_console.domain.map_events import MapEnvelope
from wanderer_console.ingest.items import MapEventItem
from wanderer_console.server.body import TooLarge, read_body
from wanderer_console.server.ports import EngineSurface
from wanderer_console.server.refusals import Refusals, clip
from wanderer_console.telemetry import tracing

__all__ = ["MAX_WEBHOOK_BYTES", "REPLAY_WINDOW_SECONDS", "UNKNOWN_MAP", "WebhookEndpoint", "sign"]

MAX_WEBHOOK_BYTES: Final = 1024 * 1024
"""Wanderer never sends a body over 1 MiB."""
REPLAY_WINDOW_SECONDS: Final = 300
"""Timestamps further than this from our clock are refused (the sender sets no window)."""
_NOT_OURS: Final = (
    "map {tenant!r} is worked by another engine on this database now; it reads the event from"
    " the map's stream"
)
_BAD_STAMP: Final = (
    "missing or malformed X-Wanderer-Timestamp: send the Unix time in whole seconds at which"
    " the body was signed"
)
_BAD_SIGNATURE: Final = (
    "invalid signature: send X-Wanderer-Signature: sha256=<hex HMAC-SHA256 of"
    " '<X-Wanderer-Timestamp>.<raw body>'>, keyed with the map's webhook_secret; check the map"
    " key in the URL and that the sender and this console hold the same secret"
)
UNKNOWN_MAP: Final = "unknown"
"""The label every path naming no configured map shares."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Wanderer-Signature`` value for a body (also used by tests and the simulator)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookEndpoint:
    """Verifies and queues webhook deliveries for every map with a ``webhook_secret``."""

    def __init__(
        self,
        engine: EngineSurface,
        *,
        clock: Callable[[], float] = time.time,
        refusals: Refusals | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._refusals = refusals or Refusals(engine.metrics)

    def _reject(
        self, request: Request, label: str, reason: str, message: str, status: int = 401
    ) -> Response:
        self._engine.metrics.events_invalid.labels(source=f"webhook:{label}", reason=reason).inc()
        self._refusals.refused(request, "webhook", reason, status, map=label)
        return JSONResponse({"error": message}, status_code=status)

    async def receive(self, request: Request) -> Response:
        """Check timestamp and signature, then queue each envelope; answer at once.

        While tracing is on and the sender passes a W3C ``traceparent`` header, the delivery is
        a server span, child of the sender's span, and each event's trace goes on from it (as
        an ingest API request's); without one, each event's trace starts at its source span.
        """
        parent = tracing.incoming(request.headers.get("traceparent")) if tracing.enabled() else None
        if parent is None:
            return await self._receive(request)
        attributes = {"http.request.method": "POST", "url.path": request.url.path}
        with tracing.event_span(
            "POST /api/v1/maps/{map}/webhook", parent, attributes, kind="server"
        ) as current:
            response = await self._receive(request)
            current.set_attribute("http.response.status_code", response.status_code)
            return response

    async def _receive(self, request: Request) -> Response:
        tenant = str(request.path_params["map"])
        map_settings = self._engine.settings.maps.get(tenant)
        label = tenant if map_settings is not None else UNKNOWN_MAP
        secret = map_settings.webhook_secret if map_settings is not None else None
        try:
            body = await read_body(request, MAX_WEBHOOK_BYTES)
        except TooLarge as exc:
            return self._reject(request, label, "too_large", str(exc), 413)
        except ClientDisconnect:
            self._refusals.disconnected(request, "webhook")
            return Response(status_code=400)  # never sent: the client is gone
        stamp = request.headers.get("x-wanderer-timestamp", "")
        try:
            skew = abs(self._clock() - int(stamp))
        except (ValueError, OverflowError):  # not a number, or too large to compare (1e400)
            return self._reject(request, label, "timestamp", _BAD_STAMP)
        if skew > REPLAY_WINDOW_SECONDS:
            return self._reject(
                request,
                label,
                "timestamp",
                f"X-Wanderer-Timestamp is {int(skew)} s away from now;"
                f" the window is {REPLAY_WINDOW_SECONDS} s: sign with the time of sending,"
                " and check the sender's clock and this host's (NTP)",
            )
        given = request.headers.get("x-wanderer-signature", "")
        # Same answer for an unknown map, a map without a secret and a wrong signature.
        expected = sign(secret.get_secret_value(), stamp, body) if secret else None
        if expected is None or not hmac.compare_digest(given.encode(), expected.encode()):
            return self._reject(request, label, "signature", _BAD_SIGNATURE)
        if not self._engine.works_map(tenant):
            # Several engines on one database (behind one address): the map's owner tracks it
            # from its own stream. Taken here, the event would be stored and tracked by an
            # engine that does not send the map, and the owner would skip its stream's copy
            # as a duplicate, never tracking what it added.
            return JSONResponse(
                {"queued": 0, "ignored": _NOT_OURS.format(tenant=tenant)}, status_code=202
            )
        return self._enqueue(request, tenant, body)

    def _enqueue(self, request: Request, tenant: str, body: bytes) -> Response:
        source = f"webhook:{tenant}"
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            message = clip(f"body is not valid JSON: {exc}")  # the parser may quote the body
            return self._reject(request, tenant, "json", message, 400)
        batch = isinstance(data, dict) and isinstance(data.get("events"), list)
        candidates: list[Any] = data["events"] if batch else [data]
        items: list[MapEventItem] = []
        # The map's load at arrival, as the stream stamps its events: one decided after a later
        # reload is older than that reload's state and must not undo it (engine.py).
        generation = self._engine.map_generation(tenant)
        invalid = 0
        for candidate in candidates:
            try:
                envelope = MapEnvelope.model_validate(candidate)
            except ValidationError:
                invalid += 1
                self._engine.metrics.events_invalid.labels(source=source, reason="envelope").inc()
                continue
            raw = body.decode() if not batch else orjson.dumps(candidate).decode()
            trace = None
            if tracing.enabled():
                attributes = {"map": tenant, "event.id": envelope.id, "event.type": envelope.type}
                trace = tracing.source_span("webhook.event", attributes)
            items.append(
                MapEventItem(
                    tenant, envelope, raw, source, trace_parent=trace, generation=generation
                )
            )
        if not self._engine.offer(items):
            # Let the sender retry later rather than block its delivery task.
            self._refusals.refused(request, "webhook", "busy", 503, map=tenant)
            return JSONResponse(
                {"error": "busy: event queue full"}, status_code=503, headers={"retry-after": "2"}
            )
        if invalid and not items:
            self._refusals.refused(request, "webhook", "envelope", 400, map=tenant)
            return JSONResponse({"error": "no valid event envelope", "invalid": invalid}, 400)
        return JSONResponse({"queued": len(items), "invalid": invalid}, status_code=202)
