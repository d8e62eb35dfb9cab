"""``POST /api/v1/events``: other tools post events through the console's routing.

A request carries one event or ``{"events": [...]}`` and a tenant's ingest key as a Bearer token
(in one ``Authorization`` header: a request with more is refused, ``400``, whatever their order).
Each event is validated on its own and gets its own result: ``accepted`` (stored, and notified if
the tenant's switches and targets allow), ``duplicate`` (that ``event_id`` was already stored for
the tenant) or ``rejected`` with the reason. Accepted events go through the same queue, engine,
outbox and dispatcher as map events, so rate limits and dedup apply to them too. A valid event
the pipeline did not confirm within the request's ``timeout`` (queueing included) is
``rejected`` with a reason that says to retry with the same ``event_id``: one that found no room
in a full queue was not queued; a queued one is kept by the engine and may still be stored (the
retry is then answered ``duplicate``). A request still waiting as the server stops is answered
the same way, its reason saying the console is stopping. When no event of the request was
confirmed the answer is ``503`` with ``Retry-After``, never the ``422`` of invalid input. So is
a request whose key the database could not look up (a PostgreSQL restart or failover): not a
``401``, nor a bare ``500``.

Every refusal of a whole request is counted in ``wc_server_refusals_total{endpoint="ingest"}``
with its reason and logged (throttled per client, without the key or the payload). A key writes
only to its own tenant: a request or event naming another (a string) is answered as a bad key,
``401``; a ``tenant`` that is no string is malformed input, ``422`` naming the field. An error
body echoes at most :data:`~wanderer_console.server.refusals.MAX_ECHO` characters of input.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any, Final

import orjson
from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from wanderer_console.domain.ingest_event import IngestEvent
from wanderer_console.ingest.items import CustomItem
from wanderer_console.server.body import TooLarge, read_body
from wanderer_console.server.ports import EngineSurface
from wanderer_console.server.refusals import MAX_ECHO, Refusals, ThrottledLog, clip
from wanderer_console.server.tenants import TenantRegistry, TenantStoreError
from wanderer_console.telemetry import tracing
from wanderer_console.telemetry.logging import redact

__all__ = ["MAX_BATCH_EVENTS", "MAX_BODY_BYTES", "IngestEndpoint", "IngestEvent"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 256 * 1024
"""Largest accepted request body."""
MAX_BATCH_EVENTS: Final = 50
"""Most events in one request."""
EVENT_ID_PREFIX: Final = "api:"
"""Ingest event ids are stored under this prefix so they never collide with map event ULIDs."""

_UNAUTHORISED: Final = {
    "error": "invalid or unauthorised ingest key: send Authorization: Bearer <the tenant's key>;"
    " a new one: `wanderer-console tenant rotate-key SLUG` on the console's host"
}
_AUTH_HEADERS: Final = (
    "send one Authorization header (Authorization: Bearer <the tenant's key>); this request had"
    " {count}: which one counts would depend on who reads it (a proxy may read the last)"
)
_MAX_ERRORS: Final = 3
"""Validation errors spelled out per event; the rest are only counted."""
_UNCONFIRMED: Final = (
    "not confirmed in time (the pipeline is busy or the store cannot write); it may still be"
    " stored: retry with the same event_id (answered 'duplicate' if it was)"
)
_NOT_QUEUED: Final = (
    "not queued: the pipeline's queue is full (the pipeline is busy or the store cannot"
    " write); retry with the same event_id"
)
_STOPPING_UNCONFIRMED: Final = (
    "not confirmed: the console is stopping; it may still be stored: retry with the same"
    " event_id (answered 'duplicate' if it was)"
)
_STOPPING_NOT_QUEUED: Final = "not queued: the console is stopping; retry with the same event_id"
_TENANT_TYPE: Final = (
    "{field} must be a string (the map's slug: the key's own tenant) or left out; this one is"
    " {kind}"
)
_JSON_KINDS: Final = ((bool, "a boolean"), (int, "a number"), (float, "a number"), (list, "a list"))
_RETRY_AFTER: Final = "5"
_STORE_DOWN: Final = {
    "error": "the ingest key cannot be checked now: the console's database did not answer;"
    " retry shortly (Retry-After), with the same event_id"
}


def _reason(exc: ValidationError) -> str:
    # A location may be a client's key and a message may quote the value: both are clipped, so a
    # rejected event never echoes more than a short prefix of what was sent.
    errors = exc.errors(include_url=False, include_input=False)
    parts = []
    for error in errors[:_MAX_ERRORS]:
        where = clip(".".join(str(p) for p in error["loc"]) or "(event)", 64)
        parts.append(
            f"{where}: {clip(str(error['msg']).removeprefix('Value error, '), 160, tail=60)}"
        )
    if len(errors) > _MAX_ERRORS:
        parts.append(f"and {len(errors) - _MAX_ERRORS} more")
    return "; ".join(parts)


def _echo_id(value: object) -> str | None:
    """A rejected event's ``event_id`` as it may be echoed: a string, clipped."""
    return clip(value, MAX_ECHO) if isinstance(value, str) else None


def _other_tenant(named: object, tenant: str) -> bool:
    """``named`` (a request's or an event's ``tenant``) is another tenant than the key's."""
    return isinstance(named, str) and named != tenant


def _malformed_tenant(named: object, field: str) -> dict[str, str] | None:
    """The ``422`` body for a ``tenant`` that is neither a string nor left out (``null``).

    It is malformed input, not another tenant's name: answered as the key's refusal (``401``)
    it told a client whose key is right to fix its key.
    """
    if named is None or isinstance(named, str):
        return None
    kind = next((word for kind, word in _JSON_KINDS if isinstance(named, kind)), "an object")
    return {"error": _TENANT_TYPE.format(field=field, kind=kind), "field": field}


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class IngestEndpoint:
    """The ingest handler, bound to the engine and a tenant registry."""

    def __init__(
        self,
        engine: EngineSurface,
        tenants: TenantRegistry,
        *,
        timeout: float = 10.0,
        refusals: Refusals | None = None,
    ):
        self._engine = engine
        self._tenants = tenants
        self._timeout = timeout
        self._refusals = refusals or Refusals(engine.metrics)
        self._unconfirmed_log = ThrottledLog(log)
        """"Not processed" said once per tenant a minute: a store that cannot write fails every
        event of every request until it writes again."""
        self._stopped: asyncio.Future[None] | None = None
        """Done once the server stops (:meth:`stop_waiting`): requests still waiting for the
        pipeline are answered then, before the server's own stop cancels them."""
        self._waiting: set[asyncio.Future[bool]] = set()
        """The events requests wait for now (the engine's verdicts)."""

    async def stop_waiting(self, grace: float) -> None:
        """Give the events waiting for the pipeline ``grace`` seconds, then answer every request
        still waiting, and stop waiting for the pipeline.

        Called before the server stops: a request still waiting when uvicorn's own grace
        period ended was cancelled, and its client got a bare ``500`` (no ``Retry-After``, no
        event's reason) while an "Exception in ASGI application" traceback went to the log. An
        event not confirmed is answered as after the request's own ``timeout``: ``503``, retry
        with the same ``event_id``.
        """
        waiting = [done for done in self._waiting if not done.done()]
        if waiting:
            await asyncio.wait(waiting, timeout=grace)
        stopped = self._stopped_future()
        if not stopped.done():
            stopped.set_result(None)

    def _stopped_future(self) -> asyncio.Future[None]:
        if self._stopped is None:
            self._stopped = asyncio.get_running_loop().create_future()
        return self._stopped

    async def _queued(self, item: CustomItem, deadline: float) -> bool:
        """Wait for room in the queue until ``deadline``; False when there was none (or the
        server stopped meanwhile) and the item was not queued."""
        stopped = self._stopped_future()
        if stopped.done():
            return False
        put = asyncio.ensure_future(self._engine.enqueue(item))
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        finished, _ = await asyncio.wait(
            (put, stopped), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if put in finished:
            put.result()
            return True
        put.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await put
        return False

    async def _confirmed(self, done: asyncio.Future[bool], deadline: float) -> bool:
        """The engine's verdict on an event (True: stored as new); :class:`TimeoutError` past
        ``deadline`` or once the server stops, :class:`RuntimeError` when the write failed."""
        stopped = self._stopped_future()
        timeout = max(0.0, deadline - asyncio.get_running_loop().time())
        if not done.done():
            await asyncio.wait(
                (done, stopped), timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        if not done.done():
            done.cancel()  # the engine settles it no more; a repeat no longer follows it
            raise TimeoutError
        return done.result()

    def _refuse(
        self, request: Request, reason: str, status: int, body: dict[str, Any], **ctx: str
    ) -> Response:
        self._refusals.refused(request, "ingest", reason, status, **ctx)
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        if status == 503:
            headers = {"retry-after": _RETRY_AFTER}
        return JSONResponse(body, status_code=status, headers=headers)

    async def post_events(self, request: Request) -> Response:
        """Authenticate, check limits, validate each event and report one result per event.

        While tracing is on the request is a server span, child of the caller's W3C
        ``traceparent`` header when it sends one; each accepted event's trace goes on from it.
        An unparented request is drawn once, for itself and all its events: an event of a request
        left out is not drawn again (each is traced with the configured ratio, not more).
        """
        parent = tracing.incoming(request.headers.get("traceparent")) if tracing.enabled() else None
        if parent is None and (not tracing.enabled() or not tracing.sample()):
            return await self._post_events(request, traced=False)  # off, or not drawn
        attributes = {"http.request.method": "POST", "url.path": request.url.path}
        with tracing.event_span(
            "POST /api/v1/events", parent, attributes, kind="server"
        ) as current:
            response = await self._post_events(request, traced=True)
            current.set_attribute("http.response.status_code", response.status_code)
            return response

    async def _post_events(self, request: Request, *, traced: bool) -> Response:
        given = len(request.headers.getlist("authorization"))
        if given > 1:
            # The first would win here, the last behind a proxy that reads that one: which
            # tenant (if any) a request is from must not depend on the order of its headers.
            refusal = {"error": _AUTH_HEADERS.format(count=given)}
            return self._refuse(request, "auth_headers", 400, refusal)
        key = _bearer(request)
        try:
            tenant = self._tenants.authenticate(key) if key else None
        except TenantStoreError as exc:
            # Nothing was read or queued: a retry is safe. The database's words go to the log.
            error = redact(str(exc))[:300]
            return self._refuse(request, "store", 503, _STORE_DOWN, error=error)
        if tenant is None:
            reason = "bad_key" if key else "no_key"
            return self._refuse(request, reason, 401, _UNAUTHORISED)
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except TooLarge as exc:
            body = {"error": str(exc), "limit_bytes": exc.limit, "size_bytes": exc.size}
            return self._refuse(request, "too_large", 413, body, tenant=tenant)
        except ClientDisconnect:
            self._refusals.disconnected(request, "ingest")
            return Response(status_code=400)  # never sent: the client is gone
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            body = {"error": clip(f"body is not valid JSON: {exc}")}
            return self._refuse(request, "json", 400, body, tenant=tenant)
        if isinstance(data, dict) and "events" in data:
            events = data["events"]
            if not isinstance(events, list):
                body = {"error": "'events' must be a list"}
                return self._refuse(request, "shape", 400, body, tenant=tenant)
            if _other_tenant(data.get("tenant"), tenant):
                return self._refuse(request, "other_tenant", 401, _UNAUTHORISED, tenant=tenant)
            malformed = _malformed_tenant(data.get("tenant"), "tenant")
            if malformed is not None:
                return self._refuse(request, "tenant_type", 422, malformed, tenant=tenant)
            field = "events[{index}].tenant"
        elif isinstance(data, dict):
            events, field = [data], "tenant"
        else:
            body = {"error": 'body must be one event object or {"events": [...]}'}
            return self._refuse(request, "shape", 400, body, tenant=tenant)
        if len(events) > MAX_BATCH_EVENTS:
            body = {
                "error": f"batch has {len(events)} events; the limit is {MAX_BATCH_EVENTS}",
                "limit_events": MAX_BATCH_EVENTS,
                "events": len(events),
            }
            return self._refuse(request, "too_many_events", 422, body, tenant=tenant)
        # A key may only write to its own tenant; the answer is the same as for a bad key, so
        # it never tells whether another tenant exists.
        named = [e.get("tenant") if isinstance(e, dict) else None for e in events]
        if any(_other_tenant(other, tenant) for other in named):
            return self._refuse(request, "other_tenant", 401, _UNAUTHORISED, tenant=tenant)
        # A tenant that is no string refuses the whole request, as another tenant's name does:
        # an event that names its tenant is not submitted unless the name is right.
        for index, other in enumerate(named):
            malformed = _malformed_tenant(other, field.format(index=index))
            if malformed is not None:
                return self._refuse(request, "tenant_type", 422, malformed, tenant=tenant)
        results, unconfirmed = await self._submit(tenant, events, traced=traced)
        counts = {status: 0 for status in ("accepted", "duplicate", "rejected")}
        for result in results:
            counts[result["status"]] += 1
        body = {"tenant": tenant, **counts, "results": results}
        if results and counts["rejected"] == len(results):
            # Valid events the pipeline did not confirm in time are no client error: the engine
            # keeps them, and the client's retry (same event_id) is answered accurately.
            if unconfirmed:
                return self._refuse(request, "not_processed", 503, body, tenant=tenant)
            return self._refuse(request, "invalid_events", 422, body, tenant=tenant)
        return JSONResponse(body, status_code=200)

    async def _submit(
        self, tenant: str, events: list[Any], *, traced: bool
    ) -> tuple[list[dict[str, Any]], int]:
        """One result per event, and how many valid ones were not confirmed in time.

        The whole request, queueing included, gets ``timeout`` seconds: a full queue or a busy
        pipeline is answered in that time (not once per event, and never left hanging).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        unconfirmed = 0
        results: list[dict[str, Any]] = []
        pending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        for index, candidate in enumerate(events):
            result: dict[str, Any] = {"index": index}
            results.append(result)
            if not isinstance(candidate, dict):
                result.update(status="rejected", reason="event must be a JSON object")
                self._engine.metrics.events_invalid.labels(source="api", reason="shape").inc()
                continue
            try:
                event = IngestEvent.model_validate(candidate)
            except ValidationError as exc:
                result.update(
                    event_id=_echo_id(candidate.get("event_id")),
                    status="rejected",
                    reason=_reason(exc),
                )
                self._engine.metrics.events_invalid.labels(source="api", reason="schema").inc()
                continue
            event_id = event.event_id or uuid.uuid4().hex
            result["event_id"] = event_id
            stored = event.model_dump(mode="json", exclude_none=True)
            stored.update(event_id=event_id, tenant=tenant)
            done: asyncio.Future[bool] = loop.create_future()
            trace = None
            if traced:
                attributes = {"tenant": tenant, "event.id": event_id}
                trace = tracing.source_span("ingest.event", attributes)
            item = CustomItem(
                tenant=tenant,
                event_id=EVENT_ID_PREFIX + event_id,
                notification_type=event.notification_type,
                title=event.title,
                body=event.body,
                severity=event.severity,
                raw=orjson.dumps(stored).decode(),
                source="api",
                done=done,
                schema_version=event.schema_version,
                trace_parent=trace,
            )
            # No room now: wait, within the request's time.
            if not self._engine.offer([item]) and not await self._queued(item, deadline):
                stopping = self._stopped_future().done()
                result.update(
                    status="rejected", reason=_STOPPING_NOT_QUEUED if stopping else _NOT_QUEUED
                )
                unconfirmed += 1
                continue
            pending.append((result, done))
        if unconfirmed:
            log.warning(
                "ingest events not queued: the pipeline's queue is full",
                extra={"ctx": {"tenant": tenant, "events": unconfirmed}},
            )
        failed: list[str] = []
        for result, done in pending:
            try:
                new = await self._confirmed(done, deadline)
            except (TimeoutError, RuntimeError) as exc:
                stopping = self._stopped_future().done()
                failed.append(str(exc) or ("the console is stopping" if stopping else "timeout"))
                result.update(
                    status="rejected", reason=_STOPPING_UNCONFIRMED if stopping else _UNCONFIRMED
                )
                unconfirmed += 1
                continue
            result["status"] = "accepted" if new else "duplicate"
            if not new:
                # Counted by the engine (wc_events_duplicate_total{source="api"}); the line says
                # which tenant sent which id again (a client retrying, or two tools colliding).
                log.info(
                    "ingest event refused as duplicate",
                    extra={"ctx": {"tenant": tenant, "event_id": clip(result["event_id"], 128)}},
                )
        if failed:
            # One line for the request's events, and at most one per tenant a minute (the
            # next says how many were left out): not one per event while the store is full.
            self._unconfirmed_log.emit(
                tenant,
                logging.WARNING,
                "ingest event not processed",
                {"tenant": tenant, "events": len(failed), "error": failed[0]},
            )
        return results, unconfirmed
