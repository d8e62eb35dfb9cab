"""``POST /api/v1/events``: other tools post events through the console's routing.

A request carries one event or ``{"events": [...]}`` and a tenant's ingest key as a Bearer token.
Each event is validated on its own and gets its own result: ``accepted`` (stored, and notified if
the tenant's switches and targets allow), ``duplicate`` (that ``event_id`` was already stored for
the tenant) or ``rejected`` with the reason. Accepted events go through the same queue, engine,
outbox and dispatcher as map events, so rate limits and dedup apply to them too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING, Any, Final

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from wanderer_console.domain.ingest_event import IngestEvent
from wanderer_console.pipeline.items import CustomItem
from wanderer_console.server.body import TooLarge, read_body
from wanderer_console.server.tenants import TenantRegistry

if TYPE_CHECKING:
    from wanderer_console.runtime import Runtime

__all__ = ["MAX_BATCH_EVENTS", "MAX_BODY_BYTES", "IngestEndpoint", "IngestEvent"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 256 * 1024
"""Largest accepted request body."""
MAX_BATCH_EVENTS: Final = 50
"""Most events in one request."""
EVENT_ID_PREFIX: Final = "api:"
"""Ingest event ids are stored under this prefix so they never collide with map event ULIDs."""

_UNAUTHORISED: Final = {"error": "invalid or unauthorised ingest key"}


def _reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "(event)"
        parts.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    return "; ".join(parts)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _unauthorised() -> Response:
    return JSONResponse(_UNAUTHORISED, status_code=401, headers={"www-authenticate": "Bearer"})


class IngestEndpoint:
    """The ingest handler, bound to a runtime and a tenant registry."""

    def __init__(self, runtime: Runtime, tenants: TenantRegistry, *, timeout: float = 10.0):
        self._runtime = runtime
        self._tenants = tenants
        self._timeout = timeout

    async def post_events(self, request: Request) -> Response:
        """Authenticate, check limits, validate each event and report one result per event."""
        key = _bearer(request)
        tenant = self._tenants.authenticate(key) if key else None
        if tenant is None:
            return _unauthorised()
        try:
            raw = await read_body(request, MAX_BODY_BYTES)
        except TooLarge as exc:
            return JSONResponse(
                {"error": str(exc), "limit_bytes": exc.limit, "size_bytes": exc.size},
                status_code=413,
            )
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return JSONResponse({"error": f"body is not valid JSON: {exc}"}, status_code=400)
        if isinstance(data, dict) and "events" in data:
            events = data["events"]
            if not isinstance(events, list):
                return JSONResponse({"error": "'events' must be a list"}, status_code=400)
            if data.get("tenant") not in (None, tenant):
                return _unauthorised()
        elif isinstance(data, dict):
            events = [data]
        else:
            return JSONResponse(
                {"error": 'body must be one event object or {"events": [...]}'}, status_code=400
            )
        if len(events) > MAX_BATCH_EVENTS:
            return JSONResponse(
                {
                    "error": f"batch has {len(events)} events; the limit is {MAX_BATCH_EVENTS}",
                    "limit_events": MAX_BATCH_EVENTS,
                    "events": len(events),
                },
                status_code=422,
            )
        # A key may only write to its own tenant; the answer is the same as for a bad key, so
        # it never tells whether another tenant exists.
        if any(isinstance(e, dict) and e.get("tenant") not in (None, tenant) for e in events):
            return _unauthorised()
        results = await self._submit(tenant, events)
        counts = {status: 0 for status in ("accepted", "duplicate", "rejected")}
        for result in results:
            counts[result["status"]] += 1
        status = 422 if results and counts["rejected"] == len(results) else 200
        return JSONResponse({"tenant": tenant, **counts, "results": results}, status_code=status)

    async def _submit(self, tenant: str, events: list[Any]) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        results: list[dict[str, Any]] = []
        pending: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        for index, candidate in enumerate(events):
            result: dict[str, Any] = {"index": index}
            results.append(result)
            if not isinstance(candidate, dict):
                result.update(status="rejected", reason="event must be a JSON object")
                continue
            try:
                event = IngestEvent.model_validate(candidate)
            except ValidationError as exc:
                result.update(
                    event_id=candidate.get("event_id"), status="rejected", reason=_reason(exc)
                )
                self._runtime.metrics.events_invalid.labels(source="api", reason="schema").inc()
                continue
            event_id = event.event_id or uuid.uuid4().hex
            result["event_id"] = event_id
            stored = event.model_dump(mode="json", exclude_none=True)
            stored.update(event_id=event_id, tenant=tenant)
            done: asyncio.Future[bool] = loop.create_future()
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
            )
            await self._runtime.queue.put(item)
            pending.append((result, done))
        for result, done in pending:
            try:
                new = await asyncio.wait_for(done, self._timeout)
            except (TimeoutError, RuntimeError) as exc:
                log.warning(
                    "ingest event not processed",
                    extra={"ctx": {"tenant": tenant, "error": str(exc) or "timeout"}},
                )
                result.update(status="rejected", reason="not processed: internal error")
                continue
            result["status"] = "accepted" if new else "duplicate"
        return results
