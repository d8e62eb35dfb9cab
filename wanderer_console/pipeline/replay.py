"""Replay the event log through the rules again and print what would be sent (dry run only).

``wanderer-console replay --since 2h --dry-run`` reads the events stored since then, rebuilds each
map's tracking (from the map's REST API, else from the stored map events alone), runs every event
through the same decisions as the live pipeline — :meth:`Engine.kill_notifications` for kills,
:meth:`Engine.custom_notifications` for events posted through the ingest API, the map-event path
for the rest — and prints one JSON line per notification. Nothing is written to
the store and nothing is sent: the outbox already holds what was sent live.

The engine's clock is set to each event's receipt time, so kill age limits, de-duplication
windows and rally timestamps decide as they did live; start-up suppression does not apply.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
from pydantic import ValidationError

from wanderer_console.command import Command, refuse_json
from wanderer_console.config.model import Settings
from wanderer_console.config.paths import store_arguments
from wanderer_console.domain.clock import iso_utc
from wanderer_console.domain.ingest_event import IngestEvent
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import MapEnvelope, UnknownEventType, parse_payload
from wanderer_console.domain.notification import Notification
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.http.client import HttpClient, TransportError
from wanderer_console.ingest.items import CustomItem
from wanderer_console.ingest.map_rest import MapApiError, MapRestClient
from wanderer_console.pipeline.engine import Engine
from wanderer_console.pipeline.map_updates import MapHooks
from wanderer_console.store.backends import open_store
from wanderer_console.store.base import Store, StoredEvent
from wanderer_console.telemetry.metrics import Metrics

__all__ = ["COMMAND", "ReplayResult", "add_arguments", "parse_since", "replay", "run"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

NEEDS_DRY_RUN = (
    "replay only shows what the rules would send; it never sends. Run it with --dry-run (the"
    " outbox already holds what was sent live)."
)


def parse_since(text: str, *, now: float | None = None) -> float:
    """Unix time from ISO 8601 (naive = UTC) or a relative age such as ``15m``, ``2h``, ``1d``."""
    current = time.time() if now is None else now
    match = _RELATIVE.match(text)
    outside = ValueError(
        f"{text!r} is outside the calendar (the years 1 to 9999, UTC): give e.g. 30d or"
        " 2026-01-10T18:00:00Z"
    )
    if match:
        since = current - float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
    else:
        try:
            parsed = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(
                f"not a time: {text!r} (use ISO 8601 like 2026-01-10T18:00:00Z, or 15m, 2h, 1d)"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            since = parsed.timestamp()  # 0001-01-01T00:00:00+14:00 is the year 0 in UTC
        except (OverflowError, ValueError):
            raise outside from None
    try:
        datetime.fromtimestamp(since, UTC)  # the summary names it: a UTC date it must be
    except (OverflowError, OSError, ValueError):
        raise outside from None
    return since


@dataclass
class ReplayResult:
    """What a replay decided."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    """One JSON-ready object per notification, in event order."""
    events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    """Events that could not be replayed, by reason."""
    tracking: dict[str, str] = field(default_factory=dict)
    """Per map: where tracking came from (``rest`` or ``events``)."""

    def skip(self, reason: str) -> None:
        """Count one event not replayed."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _line(event: StoredEvent, notification: Notification) -> dict[str, Any]:
    return {
        "event_id": event.event_id,
        "event_type": event.type,
        "schema_version": event.schema_version,
        "received_at": iso_utc(event.received_at),
        "tenant": notification.tenant,
        "type": notification.type.value,
        "dedup_key": notification.dedup_key,
        "target": notification.target.key,
        "body": notification.body,
    }


def _replay_settings(settings: Settings) -> Settings:
    copy = settings.model_copy(deep=True)
    copy.console.startup_suppression_seconds = 0
    copy.console.dry_run = True
    return copy


async def replay(
    settings: Settings,
    store: Store,
    since: float,
    *,
    use_rest: bool = True,
    http: HttpClient | None = None,
    limit: int = 100_000,
) -> ReplayResult:
    """Decide again, without side effects, every notification for events stored since ``since``."""
    settings = _replay_settings(settings)
    result = ReplayResult()
    index = TrackingIndex()
    now = [since]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731 - the engine reads the event's time
    engine = Engine(settings, store, index, Metrics(), clock=clock)
    own_http = http is None and use_rest
    client = http or (HttpClient("map", timeout=10.0) if use_rest else None)
    try:
        for tenant, map_settings in settings.maps.items():
            index.map(tenant)
            result.tracking[tenant] = "events"
            if client is None or not map_settings.enabled:
                continue
            rest = MapRestClient(client, map_settings)
            try:
                index.replace(tenant, await rest.systems(), await rest.tracked_characters())
            except (MapApiError, TransportError) as exc:
                print(
                    f"replay: map {tenant}: REST not reachable ({exc}); "
                    "tracking rebuilt from stored map events only",
                    file=sys.stderr,
                )
                continue
            result.tracking[tenant] = "rest"
            engine.set_hooks(
                tenant,
                MapHooks(rest.static_info, functools.partial(_refresh, rest, index, tenant)),
            )
        for event in store.events_since(since, limit=limit):
            now[0] = event.received_at
            result.events += 1
            for notification in await _decide(engine, event, result):
                result.lines.append(_line(event, notification))
    finally:
        if own_http and client is not None:
            await client.aclose()
    return result


async def _refresh(rest: MapRestClient, index: TrackingIndex, tenant: str) -> None:
    try:
        characters = await rest.tracked_characters()
    except (MapApiError, TransportError):
        return
    tracking = index.map(tenant)
    for character in characters:
        if character.eve_id not in tracking.characters:
            index.put_character(tenant, character)


async def _decide(engine: Engine, event: StoredEvent, result: ReplayResult) -> list[Notification]:
    try:
        data = orjson.loads(event.payload)
    except orjson.JSONDecodeError:
        result.skip("json")
        return []
    if not isinstance(data, dict):
        result.skip("json")
        return []
    if event.type == "killmail":
        try:
            killmail = Killmail.from_wire(data)
        except (ValidationError, ValueError):
            result.skip("killmail")
            return []
        return engine.kill_notifications(killmail)
    if event.tenant_id not in engine.settings.maps:
        result.skip("unknown_map")
        return []
    if event.type == "custom":
        return _custom(engine, event, data, result)
    try:
        envelope = MapEnvelope.model_validate(data)
        payload = parse_payload(envelope)
    except UnknownEventType:
        result.skip("unknown_type")
        return []
    except ValidationError:
        result.skip("payload")
        return []
    return await engine.map_notifications(event.tenant_id, envelope, payload)


def _custom(
    engine: Engine, event: StoredEvent, data: dict[str, Any], result: ReplayResult
) -> list[Notification]:
    """An ingest-API event: stored as validated, read back through the same model."""
    try:
        posted = IngestEvent.model_validate(data)
    except ValidationError:
        result.skip("custom_payload")
        return []
    item = CustomItem(
        tenant=event.tenant_id,
        event_id=event.event_id,
        notification_type=posted.notification_type,
        title=posted.title,
        body=posted.body,
        severity=posted.severity,
        raw=event.payload,
        source=event.source,
        schema_version=event.schema_version,
    )
    return engine.custom_notifications(item)


# -- command line -------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``replay``'s options: where the store is (as for every store command), --dry-run, which
    it requires, and its own; not the engine's --no-ui or --log-level (it has no UI, and the
    level goes before a command's name: ``wanderer-console --log-level DEBUG replay``)."""
    store_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        default=argparse.SUPPRESS,
        help="required: replay only prints what the rules would send, it never sends",
    )
    parser.add_argument(
        "--since",
        required=True,
        metavar="TIME",
        help="ISO 8601 time (UTC if no offset) or an age: 30s, 15m, 2h, 1d",
    )
    parser.add_argument(
        "--no-rest",
        action="store_true",
        help="do not read the maps' REST API; rebuild tracking from stored map events only",
    )


def _config_refusal(message: str, problems: list[str]) -> None:
    refuse_json("replay", message, EXIT_INVALID, problems=problems)


def run(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """The ``replay`` sub-command."""
    from wanderer_console.config.loader import load_config
    from wanderer_console.config.paths import UnknownLocationError, command_store

    if not getattr(args, "dry_run", False):
        return refuse_json("replay", NEEDS_DRY_RUN, EXIT_USAGE)
    try:
        since = parse_since(args.since)
    except ValueError as exc:
        return refuse_json("replay", str(exc), EXIT_USAGE)
    loaded = load_config(args, refusal=_config_refusal)  # a broken one: its problems
    if loaded is None:
        return EXIT_INVALID
    settings = loaded.settings
    try:
        path = command_store(args)
    except UnknownLocationError as exc:  # the data dir's engine is on PostgreSQL: no guessing
        return refuse_json("replay", str(exc), EXIT_INVALID)
    if isinstance(path, Path) and not path.exists():
        return refuse_json(
            "replay",
            f"no database at {path}; pass --data-dir or --config (or --database URL when the"
            " engine stores in PostgreSQL)",
            EXIT_INVALID,
        )
    store = open_store(path)
    try:
        result = asyncio.run(replay(settings, store, since, use_rest=not args.no_rest))
    finally:
        store.close()
    stream = out or sys.stdout
    for line in result.lines:
        stream.write(json.dumps(line, sort_keys=True) + "\n")
    stream.flush()
    summary = {
        "replayed_events": result.events,
        "notifications": len(result.lines),
        "skipped": result.skipped,
        "tracking": result.tracking,
        "since": datetime.fromtimestamp(since, UTC).isoformat(),
        "database": str(path),  # a PostgreSQL URL's password masked
    }
    print(json.dumps({"summary": "replay", **summary}, sort_keys=True), file=sys.stderr)
    return EXIT_OK


COMMAND = Command(
    "replay",
    help="print the notifications stored events would produce (dry run)",
    description="Run events stored since TIME through the notification rules again and "
    "print, as JSON lines, the notifications that would be sent. Never sends; --dry-run "
    "is required.",
    add_arguments=add_arguments,
    run=run,
    answers_json=True,
)
