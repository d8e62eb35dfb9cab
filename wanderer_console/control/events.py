"""The events browser's answers, built from the engine's store, settings and tracking.

:func:`event_page` lists recent events (the store's bounded reads, :mod:`~wanderer_console.store.
browse`) with their outcome and notifications; :func:`event_detail` explains one: each map's
verdict, and the message as it looks in Discord.

A notified event's verdicts are what happened: each notification's map, route, target and state.
An event that notified nothing is explained by the rules as they stand now, by the code the
``kill ID`` command runs (:func:`~wanderer_console.pipeline.diagnose.explain_kill`,
:func:`~wanderer_console.pipeline.diagnose.explain_map_event`), age gate ignored as there. The
message shown is the one stored in the outbox (delivered or queued); for a kill that notified no
map it is rendered by :mod:`~wanderer_console.delivery.embeds` as the first map would get it.

Everything shown passes :func:`~wanderer_console.telemetry.logging.redact`, and a target is shown
by its key and routes, never its webhook URL.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
from pydantic import ValidationError

from wanderer_console.config.model import Settings
from wanderer_console.console_api import (
    EmbedFieldView,
    EmbedView,
    EventDetail,
    EventPage,
    EventQuery,
    EventRow,
    MapVerdict,
    MessageView,
    NotificationView,
)
from wanderer_console.control.explain import target_names
from wanderer_console.delivery import embeds
from wanderer_console.delivery.formatting import format_isk
from wanderer_console.domain.killmail import Killmail
from wanderer_console.domain.map_events import (
    AddSystem,
    CharacterAdded,
    MapEnvelope,
    RallyPointAdded,
    UnknownEventType,
    parse_payload,
)
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.pipeline.diagnose import explain_kill, explain_map_event
from wanderer_console.pipeline.kill_facts import SystemInfo
from wanderer_console.store.base import SHARED_TENANT, Store
from wanderer_console.store.browse import BrowsedEvent, EventNotification, outcome_of
from wanderer_console.telemetry.logging import redact

__all__ = ["WINDOW", "EventSource", "event_detail", "event_page"]

WINDOW: Final = 5_000
"""How many of the newest events the browser looks through."""
PAYLOAD_LIMIT: Final = 4_000
"""The event's payload is cut at this many characters in the detail."""


class EventSource(Protocol):
    """What the browser reads of the engine (the runtime)."""

    store: Store
    index: TrackingIndex

    @property
    def settings(self) -> Settings:
        """The running configuration."""
        ...


def event_page(source: EventSource, query: EventQuery) -> EventPage:
    """The page of recent events ``query`` asks for (one more is read to know if there are
    more)."""
    store = source.store
    rows = store.browse_events(
        search=query.search,
        tenant=query.map,
        event_type=query.type,
        outcome=query.outcome,
        target=query.target,
        window=WINDOW,
        limit=query.limit + 1,
        offset=query.offset,
    )
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    found = store.event_notifications([(row.tenant_id, row.event_id) for row in rows])
    labels = _labels(source.settings)
    events = tuple(
        _row(row, found.get((row.tenant_id, row.event_id), []), labels, source.index)
        for row in rows
    )
    return EventPage(
        query=query,
        events=events,
        more=more,
        window=WINDOW,
        maps=tuple(sorted(source.settings.maps)),
        types=tuple(store.recent_event_types(window=WINDOW)),
    )


def event_detail(
    source: EventSource, row_id: int, *, info: SystemInfo | None = None
) -> EventDetail | None:
    """Event ``row_id`` in full, or ``None`` once it is gone (pruned)."""
    store = source.store
    stored = store.event_by_row(row_id)
    if stored is None:
        return None
    notes = store.event_notifications([(stored.tenant_id, stored.event_id)]).get(
        (stored.tenant_id, stored.event_id), []
    )
    settings = source.settings
    row = _row(stored, notes, _labels(settings), source.index)
    if notes:
        verdicts = tuple(
            MapVerdict(
                map=note.tenant_id,
                notify=True,
                route=_route(note),
                target=note.target_key,
                explanation=_state_words(note),
            )
            for note in notes
        )
        note_text = "what happened: each notification the event was queued as"
        shown = next((n for n in notes if n.status == "sent"), notes[0])
        message = _message(shown.body)
        how = "as delivered to" if shown.status == "sent" else "as queued for"
        message_note = f"{how} {_target_text(shown.target_key, _labels(settings))}"
    else:
        verdicts, note_text, message, message_note = _explain_filtered(stored, source, info)
    return EventDetail(
        event=row,
        verdicts=verdicts,
        verdict_note=note_text,
        message=message,
        message_note=message_note,
        payload=_payload_text(stored.payload),
    )


# -- rows ---------------------------------------------------------------------------------------


def _labels(settings: Settings) -> dict[str, str]:
    return {key: label for key, (label, _where) in target_names(settings).items()}


def _target_text(key: str, labels: Mapping[str, str]) -> str:
    label = labels.get(key)
    return f"{label} ({key})" if label else key


def _route(note: EventNotification) -> str:
    """The route from the notification's key (``kill:1:system_kill``, ``system:<ulid>``)."""
    if note.dedup_key.startswith("kill:"):
        return note.dedup_key.rsplit(":", 1)[-1]
    return note.dedup_key.partition(":")[0]


def _state_words(note: EventNotification) -> str:
    attempts = f"{note.attempts} attempt{'s' * (note.attempts != 1)}"
    if note.status == "sent":
        when = "" if note.sent_at is None else f" at {_iso(note.sent_at)}"
        message = f", message {note.message_id}" if note.message_id else ""
        return f"delivered{when}{message} ({attempts})"
    if note.status in ("pending", "sending"):
        error = f"; last error: {redact(note.last_error)}" if note.last_error else ""
        return f"waiting to be delivered ({attempts}{error})"
    error = f": {redact(note.last_error)}" if note.last_error else ""
    return f"{note.status} after {attempts}{error}"


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def _view(note: EventNotification, labels: Mapping[str, str]) -> NotificationView:
    return NotificationView(
        id=note.id,
        map=note.tenant_id,
        route=_route(note),
        target=note.target_key,
        target_label=labels.get(note.target_key, ""),
        status=note.status,
        attempts=note.attempts,
        created_at=note.created_at,
        sent_at=note.sent_at,
        message_id=note.message_id,
        last_error=None if note.last_error is None else redact(note.last_error),
    )


def _row(
    stored: BrowsedEvent,
    notes: Sequence[EventNotification],
    labels: Mapping[str, str],
    index: TrackingIndex,
) -> EventRow:
    system, summary = _describe(stored, index)
    return EventRow(
        id=stored.id,
        event_id=stored.event_id,
        source=stored.source,
        type=stored.type,
        map=stored.tenant_id,
        system=system,
        received_at=stored.received_at,
        summary=redact(summary),
        outcome=outcome_of([note.status for note in notes]),
        notifications=tuple(_view(note, labels) for note in notes),
    )


def _killmail(stored: BrowsedEvent) -> Killmail | None:
    if stored.type != "killmail":
        return None
    try:
        return Killmail.from_wire(orjson.loads(stored.payload))
    except (ValueError, ValidationError):
        return None


def _system_name(system_id: int, index: TrackingIndex, given: str | None) -> str:
    if given:
        return given
    for tenant in sorted(index.maps_for_system(system_id)):
        system = index.map(tenant).systems.get(system_id)
        if system is not None and system.name:
            return system.name
    return str(system_id)


def _describe(stored: BrowsedEvent, index: TrackingIndex) -> tuple[str, str]:
    """``(system, summary)`` of an event, from its payload (blank when it does not parse)."""
    km = _killmail(stored)
    if km is not None:
        victim = km.victim
        who = victim.character_name or (
            f"character {victim.character_id}" if victim.character_id else "a structure or NPC"
        )
        ship = victim.ship_name or (f"type {victim.ship_type_id}" if victim.ship_type_id else "")
        value = "" if km.total_value is None else f" · {format_isk(km.total_value)} ISK"
        lost = f" ({ship})" if ship else ""
        summary = f"{who} lost{lost}{value} · {km.attacker_total} attacker(s)"
        return _system_name(km.system_id, index, km.solar_system_name), summary
    try:
        envelope = MapEnvelope.model_validate(orjson.loads(stored.payload))
        payload = parse_payload(envelope)
    except (ValueError, ValidationError, UnknownEventType):
        return "", ""
    if isinstance(payload, AddSystem):
        name = _system_name(payload.solar_system_id, index, payload.name)
        return name, f"system {name} added to the map"
    if isinstance(payload, RallyPointAdded):
        name = _system_name(payload.solar_system_id, index, payload.system_name)
        return name, f"rally by {payload.character_name or '?'}: {payload.message or ''}".strip()
    if isinstance(payload, CharacterAdded):
        return "", f"{stored.type.replace('_', ' ')}: {payload.name or payload.id or '?'}"
    system_id = getattr(payload, "solar_system_id", None)
    if isinstance(system_id, int):
        name = _system_name(system_id, index, getattr(payload, "name", None))
        return name, f"{stored.type.replace('_', ' ')}: {name}"
    return "", stored.type.replace("_", " ")


# -- verdicts and messages ---------------------------------------------------------------------


def _explain_filtered(
    stored: BrowsedEvent, source: EventSource, info: SystemInfo | None
) -> tuple[tuple[MapVerdict, ...], str, MessageView | None, str]:
    settings = source.settings
    km = _killmail(stored)
    if km is not None:
        per_map = explain_kill(
            km,
            settings,
            source.index,
            now=datetime.fromtimestamp(stored.received_at, UTC),
            info=info,
        )
        verdicts = tuple(_verdict(tenant, verdict) for tenant, verdict in sorted(per_map.items()))
        note = (
            "notified nothing; the rules and tracking now say why (as `wanderer-console kill"
            f" {km.killmail_id}` explains it)"
        )
        return verdicts, note, _kill_preview(km, settings, source.index), "as it would look"
    if stored.tenant_id == SHARED_TENANT:
        return (), "notified nothing", None, ""
    verdict = explain_map_event(settings, stored.tenant_id, stored.type)
    note = "notified nothing; the map's switches and targets now say why"
    return (_verdict(stored.tenant_id, verdict),), note, None, ""


def _verdict(tenant: str, verdict: Mapping[str, Any]) -> MapVerdict:
    return MapVerdict(
        map=tenant,
        notify=bool(verdict.get("notify")),
        route=verdict.get("route"),
        target=verdict.get("target"),
        reason=verdict.get("reason"),
        explanation=str(verdict.get("explanation", "")),
    )


def _kill_preview(km: Killmail, settings: Settings, index: TrackingIndex) -> MessageView | None:
    """The kill's message as the first configured map would get it (a system kill)."""
    if not settings.maps:
        return None
    tenant = sorted(settings.maps)[0]
    system = index.map(tenant).systems.get(km.system_id) if tenant in index.tenants() else None
    context = embeds.KillContext(
        map_name=settings.maps[tenant].name or tenant,
        role="neutral",
        system_name=(system.name if system else None) or km.solar_system_name,
    )
    body = embeds.build_message(
        [embeds.render_kill(km, context)], username=settings.discord.username
    )
    return _message_of(body)


def _message(body: str) -> MessageView | None:
    try:
        data = orjson.loads(body)
    except ValueError:
        return None
    return _message_of(data) if isinstance(data, dict) else None


def _text(value: Any) -> str:
    return redact(str(value)) if value is not None else ""


def _message_of(body: Mapping[str, Any]) -> MessageView:
    views: list[EmbedView] = []
    for embed in body.get("embeds") or ():
        if not isinstance(embed, dict):
            continue
        fields = tuple(
            EmbedFieldView(
                name=_text(f.get("name")), value=_text(f.get("value")), inline=bool(f.get("inline"))
            )
            for f in embed.get("fields") or ()
            if isinstance(f, dict)
        )
        author = embed.get("author")
        footer = embed.get("footer")
        color = embed.get("color")
        views.append(
            EmbedView(
                title=_text(embed.get("title")),
                description=_text(embed.get("description")),
                url=embed.get("url") if isinstance(embed.get("url"), str) else None,
                color=color if isinstance(color, int) else None,
                author=_text(author.get("name")) if isinstance(author, dict) else "",
                fields=fields,
                footer=_text(footer.get("text")) if isinstance(footer, dict) else "",
                timestamp=embed.get("timestamp")
                if isinstance(embed.get("timestamp"), str)
                else None,
            )
        )
    return MessageView(content=_text(body.get("content")), embeds=tuple(views))


def _payload_text(payload: str) -> str:
    try:
        text = json.dumps(orjson.loads(payload), indent=2, sort_keys=True, ensure_ascii=False)
    except ValueError:
        text = payload
    if len(text) > PAYLOAD_LIMIT:
        text = text[: PAYLOAD_LIMIT - 1] + "…"
    return redact(text)
