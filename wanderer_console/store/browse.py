"""The events browser's reads: recent events, filtered and searched, and what each one notified.

An event and its notifications are linked by the keys the pipeline gives the notifications
(:mod:`wanderer_console.pipeline.engine`, :mod:`~wanderer_console.pipeline.map_updates`): a kill
``kill:<id>`` notifies each map as ``kill:<id>:<route>`` (any map: kills are stored once, under
``*``), a map or posted event ``<event_id>`` of a map as ``system:``, ``character:``, ``rally:``
or ``custom:<event_id>`` on that map. The outbox is indexed by ``dedup_key`` (migration 9), so the
link is an index look-up per key.

Every read is bounded: a query looks only at the newest ``window`` events (those received no
earlier than the window's oldest: a walk of the received-time index, newest first, that stops
once ``limit`` match) and returns at most ``limit`` of them; a search is a case-insensitive
substring of the event's id, type, source, map or raw payload.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Final, Literal, NamedTuple, Protocol, cast

from wanderer_console.store.base import SHARED_TENANT, DbConnection
from wanderer_console.store.dialect import Dialect

__all__ = [
    "EVENT_OUTCOMES",
    "MAX_LIMIT",
    "MAX_WINDOW",
    "BrowseMixin",
    "BrowsedEvent",
    "EventNotification",
    "Outcome",
    "link_keys",
    "tracker_key_range",
    "outcome_of",
]

Outcome = Literal["notified", "pending", "failed", "filtered"]
EVENT_OUTCOMES: Final[tuple[Outcome, ...]] = ("notified", "pending", "failed", "filtered")
"""What became of an event: a notification of it was delivered; one still waits (none
delivered yet); every one of it failed (or was dropped, or its outcome is unknown); it notified
nothing (the rules filtered it)."""

KILL_ROUTES: Final = ("system_kill", "character_kill")
"""The routes a kill notifies through (``kill:<id>:<route>``)."""
EVENT_PREFIXES: Final = ("system", "character", "rally", "custom")
"""The prefixes of a map or posted event's notification keys (``<prefix>:<event_id>``)."""
WAITING: Final = ("pending", "sending")
"""Outbox states of a notification still to be delivered."""

MAX_WINDOW: Final = 50_000
"""The most recent events a query may look through."""
MAX_LIMIT: Final = 500
"""The most events one page may hold."""
_OUTCOME_SQL: dict[str, dict[str, str]] = {}
"""Each dialect's outcome clauses (by its name), built once."""
_CHUNK = 100
"""Events whose notifications are read in one statement (6 keys each)."""

_KILL_KEYS = "o.dedup_key IN (e.event_id || ':system_kill', e.event_id || ':character_kill')"
_EVENT_KEYS = (
    "o.dedup_key IN ('system:' || e.event_id, 'character:' || e.event_id,"
    " 'rally:' || e.event_id, 'custom:' || e.event_id) AND o.tenant_id = e.tenant_id"
)
"""An outbox row ``o`` is a notification of the kill / the map event ``e`` (see
:func:`link_keys`): two or four index look-ups, whichever the event is."""
_EVENT_COLUMNS = "id, tenant_id, event_id, source, type, received_at, payload"
_NOTIFICATION_COLUMNS = (
    "id, tenant_id, dedup_key, type, target_key, status, attempts, created_at, sent_at,"
    " last_error, message_id, body"
)


class BrowsedEvent(NamedTuple):
    """One stored event, with its row id (the browser's handle on it)."""

    id: int
    tenant_id: str
    event_id: str
    source: str
    type: str
    received_at: float
    payload: str


class EventNotification(NamedTuple):
    """One outbox row of an event: where it went, in what state, and the message itself."""

    id: int
    tenant_id: str
    dedup_key: str
    type: str
    target_key: str
    status: str
    attempts: int
    created_at: float
    sent_at: float | None
    last_error: str | None
    message_id: str | None
    body: str


TRACKER_KEY: Final = ":tracker:"
"""What follows a kill's event id in the keys of its messages to trackers' own targets."""


def tracker_key_range(event_id: str) -> tuple[str, str]:
    """``[low, high)`` of the keys of a kill's messages to trackers' targets
    (``kill:<id>:tracker:<target key>``)."""
    low = f"{event_id}{TRACKER_KEY}"
    return low, low[:-1] + chr(ord(low[-1]) + 1)


def link_keys(tenant_id: str, event_id: str) -> tuple[str, ...]:
    """The outbox keys a notification of this event would have."""
    if tenant_id == SHARED_TENANT:
        return tuple(f"{event_id}:{route}" for route in KILL_ROUTES)
    return tuple(f"{prefix}:{event_id}" for prefix in EVENT_PREFIXES)


def outcome_of(statuses: Sequence[str]) -> Outcome:
    """An event's outcome from its notifications' outbox states (see :data:`EVENT_OUTCOMES`)."""
    if not statuses:
        return "filtered"
    if "sent" in statuses:
        return "notified"
    if any(status in WAITING for status in statuses):
        return "pending"
    return "failed"


def _like(text: str) -> str:
    """A ``LIKE`` pattern (``ESCAPE '\\'``) matching ``text`` anywhere, lower-cased."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


_RANKS: Final[dict[str, int]] = {"filtered": 0, "failed": 1, "pending": 2, "notified": 3}
"""Each outcome as the rank :func:`_outcome_sql` computes (see :func:`outcome_of`)."""


def _outcome_sql(hint: str) -> dict[str, str]:
    """The clauses of the browser's filters (the map's ``?`` appears twice, the target's twice,
    the outcome's rank once), the outbox looked up with index ``hint``.

    An event's outcome is one correlated look-up of its notifications (two or four keys, no
    other condition, so no planner takes a status index for it: PostgreSQL without statistics
    did, and walked every sent row per event): the best state among them, ranked as
    :data:`_RANKS`.
    """
    rank = (
        "max(CASE o.status WHEN 'sent' THEN 3 WHEN 'pending' THEN 2 WHEN 'sending' THEN 2"
        " ELSE 1 END)"
    )

    def per_event(select: str, condition: str = "") -> str:
        return (
            f"CASE WHEN e.tenant_id = '{SHARED_TENANT}'"
            f" THEN (SELECT {select} FROM outbox o{hint} WHERE {_KILL_KEYS}{condition})"
            f" ELSE (SELECT {select} FROM outbox o{hint} WHERE {_EVENT_KEYS}{condition}) END"
        )

    return {
        "outcome": f"coalesce({per_event(rank)}, 0) = ?",
        "tenant": f"(e.tenant_id = ? OR (e.tenant_id = '{SHARED_TENANT}' AND EXISTS (SELECT 1"
        f" FROM outbox o{hint} WHERE {_KILL_KEYS} AND o.tenant_id = ?)))",
        "target": f"{per_event('count(*)', ' AND o.target_key = ?')} > 0",
    }


class _Transactional(DbConnection, Protocol):
    """A connection with transactions of its own (PostgreSQL's pool connection)."""

    def transaction(self) -> AbstractContextManager[DbConnection]: ...


class BrowseMixin:
    """The browser's reads of a store (:class:`~wanderer_console.store.sql.SqlStore`)."""

    _conn: DbConnection
    _sql: Dialect

    def browse_events(
        self,
        *,
        search: str = "",
        tenant: str | None = None,
        event_type: str | None = None,
        outcome: str | None = None,
        target: str | None = None,
        window: int = 5_000,
        limit: int = 50,
        offset: int = 0,
    ) -> list[BrowsedEvent]:
        """The newest events matching every filter given, newest first.

        Only the newest ``window`` events are looked through. ``tenant`` keeps a map's own
        events and the kills it was notified of; ``target`` the events with a notification to
        that target; ``outcome`` one of :data:`EVENT_OUTCOMES`; ``search`` a case-insensitive
        substring of the id, type, source, map or payload.
        """
        if outcome is not None and outcome not in EVENT_OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}: one of {', '.join(EVENT_OUTCOMES)}")
        sql = _OUTCOME_SQL.get(self._sql.name)
        if sql is None:
            sql = _OUTCOME_SQL[self._sql.name] = _outcome_sql(
                self._sql.indexed_by("outbox_dedup_key")
            )
        # The window: events received no earlier than the window's oldest; the rest is an
        # index scan, newest first, that stops once the page is full.
        clauses = [
            "e.received_at >= coalesce((SELECT received_at FROM events"
            " ORDER BY received_at DESC LIMIT 1 OFFSET ?), -1.0)"
        ]
        params: list[object] = [max(1, min(window, MAX_WINDOW)) - 1]
        if event_type:
            clauses.append("e.type = ?")
            params.append(event_type)
        if tenant:
            clauses.append(sql["tenant"])
            params += [tenant, tenant]
        if target:
            clauses.append(sql["target"])
            params += [target, target]
        if outcome is not None:
            clauses.append(sql["outcome"])
            params.append(_RANKS[outcome])
        if search.strip():
            pattern = _like(search.strip())
            fields = ("e.event_id", "e.type", "e.source", "e.tenant_id", "e.payload")
            clauses.append(
                "(" + " OR ".join(f"lower({field}) LIKE ? ESCAPE '\\'" for field in fields) + ")"
            )
            params += [pattern] * len(fields)
        params += [max(1, min(limit, MAX_LIMIT)), max(0, offset)]
        statement = (
            f"SELECT {_EVENT_COLUMNS} FROM events e{self._sql.indexed_by('events_received_at')}"
            f" WHERE {' AND '.join(clauses)}"
            " ORDER BY e.received_at DESC, e.id DESC LIMIT ? OFFSET ?"
        )
        setup = self._sql.browse_setup
        if not setup:
            return [BrowsedEvent(*row) for row in self._conn.execute(statement, params)]
        with cast("_Transactional", self._conn).transaction() as conn:
            conn.execute(setup)
            return [BrowsedEvent(*row) for row in conn.execute(statement, params)]

    def event_by_row(self, row_id: int) -> BrowsedEvent | None:
        """The event stored under row id ``row_id`` (the browser's handle), if it still is."""
        row = self._conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE id = ?", (row_id,)
        ).fetchone()
        return None if row is None else BrowsedEvent(*row)

    def event_notifications(
        self, events: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[EventNotification]]:
        """Each ``(tenant_id, event_id)``'s notifications, oldest first (none: not a key)."""
        found: dict[tuple[str, str], list[EventNotification]] = {}
        for start in range(0, len(events), _CHUNK):
            owners: dict[str, list[tuple[str, str]]] = {}
            for event in events[start : start + _CHUNK]:
                for key in link_keys(*event):
                    owners.setdefault(key, []).append(event)
            keys = list(owners)
            rows = self._conn.execute(
                f"SELECT {_NOTIFICATION_COLUMNS} FROM outbox"
                f" WHERE dedup_key IN ({','.join('?' * len(keys)) or 'NULL'}) ORDER BY id",
                keys,
            ).fetchall()
            for row in rows:
                note = EventNotification(*row)
                for tenant_id, event_id in owners.get(note.dedup_key, ()):
                    if tenant_id in (SHARED_TENANT, note.tenant_id):
                        found.setdefault((tenant_id, event_id), []).append(note)
            # A kill's messages to a tracker's own target: kill:<id>:tracker:<target>, found
            # as a key range (an index range scan each).
            kills = [e for e in events[start : start + _CHUNK] if e[0] == SHARED_TENANT]
            if kills:
                key = f"dedup_key{self._sql.bytewise}"
                ranges = " OR ".join([f"({key} >= ? AND {key} < ?)"] * len(kills))
                bounds = [b for _t, event_id in kills for b in tracker_key_range(event_id)]
                for row in self._conn.execute(
                    f"SELECT {_NOTIFICATION_COLUMNS} FROM outbox WHERE {ranges} ORDER BY id",
                    bounds,
                ).fetchall():
                    note = EventNotification(*row)
                    event_id = note.dedup_key.split(TRACKER_KEY, 1)[0]
                    if (SHARED_TENANT, event_id) in kills:
                        found.setdefault((SHARED_TENANT, event_id), []).append(note)
                for notes in found.values():
                    notes.sort(key=lambda n: n.id)
        return found

    def recent_event_types(self, *, window: int = 5_000) -> list[str]:
        """The event types among the newest ``window`` events, sorted (the type filter's
        choices)."""
        rows = self._conn.execute(
            "SELECT DISTINCT type FROM (SELECT type FROM events"
            " ORDER BY received_at DESC, id DESC LIMIT ?) e ORDER BY type",
            (max(1, min(window, MAX_WINDOW)),),
        ).fetchall()
        return [str(row[0]) for row in rows]
