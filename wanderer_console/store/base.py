"""The storage contract: the :class:`Store` protocol and the rows it reads and writes.

Every package outside ``store/`` types against :class:`Store`, never against one backend: the
SQLite file in the data directory (:class:`~wanderer_console.store.sqlite.SqliteStore`, the
default) or a PostgreSQL database (:class:`~wanderer_console.store.postgres.PostgresStore`,
chosen by ``[store] url``). Where a store lives is a :data:`StoreLocation`: a :class:`Path` to
the SQLite file, or a :class:`DatabaseUrl` whose text never shows its password.

Parts that keep a connection of their own (the config audit, the tenant registry) talk to it
through :class:`DbConnection`: ``execute``/``executemany`` with ``?`` placeholders, the subset
of DB-API both backends share (``sqlite3.Connection`` is one as it is).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeAlias
from urllib.parse import unquote, urlsplit, urlunsplit

from wanderer_console.store.writes import WriteFault

if TYPE_CHECKING:
    from wanderer_console.domain.notification import Notification, TargetKind
    from wanderer_console.store.browse import BrowsedEvent, EventNotification
    from wanderer_console.store.observe import AlertRecord, TrendMinute

__all__ = [
    "PRUNE_BATCH",
    "SHARED_TENANT",
    "ClaimRequest",
    "ClusterPause",
    "ClusterPaused",
    "ClusterState",
    "DatabaseUrl",
    "DbConnection",
    "DbCursor",
    "DeadTarget",
    "FailedRow",
    "InstanceInfo",
    "InstanceRow",
    "LeaseFence",
    "LeaseGrant",
    "LeaseRow",
    "OutboxRow",
    "PendingWrite",
    "PriorityChange",
    "PrioritySystem",
    "Revived",
    "SavedPause",
    "SentMessage",
    "Store",
    "StoreLocation",
    "StoredEvent",
    "is_unique_violation",
]

PRUNE_BATCH = 5_000
"""Rows per retention statement (:meth:`Store.prune`): a few milliseconds of work, so neither
the write lock nor the event loop is held long, whatever the backlog."""

SHARED_TENANT = "*"
"""The tenant id of events every map shares (killmails, stored once). On a database several
instances share, a repeat of such an event still writes its notifications: another instance may
have stored it for its own maps; the outbox's ``UNIQUE(tenant_id, dedup_key)`` keeps each map's
notification once."""


class StoredEvent(NamedTuple):
    """One accepted event, as kept in the event log."""

    tenant_id: str
    """Map key, or ``*`` for killmails (shared by every map)."""
    event_id: str
    """Stable identity: the map event ULID, ``kill:<killmail_id>``, or an ingest event id."""
    source: str
    """Where it came from: ``sse:<map>``, ``killstream``, ``r2z2``, ``api``."""
    type: str
    """Event type (``add_system``, ``killmail``, …)."""
    received_at: float
    """Unix time of receipt."""
    payload: str
    """The raw JSON as received."""
    schema_version: str | None = None
    """The schema version the event declares (a posted event's ``schema_version``), if any."""


class OutboxRow(NamedTuple):
    """A notification waiting for (or done with) delivery."""

    id: int
    tenant_id: str
    dedup_key: str
    type: str
    target_kind: str
    target_key: str
    body: str
    attempts: int
    correlation_id: str | None = None
    """The correlation id of the event that caused it (``None`` for rows written before v5)."""
    created_at: float = 0.0
    """Unix time the notification was written to the outbox."""
    send_id: str | None = None
    """Set while the row is bound to one message (and its nonce) that may have reached Discord."""
    uncertain: int = 0
    """Sends of this row whose outcome was never known (a timeout, a crash mid-request)."""
    sending_at: float | None = None
    """When the message bound to ``send_id`` was first sent (the nonce window runs from it)."""
    trace_parent: str | None = None
    """The W3C ``traceparent`` of the event's ``outbox.write`` span, when it was traced: the
    delivery's spans join that trace (``None`` untraced, and for rows written before v10)."""
    next_attempt_at: float = 0.0
    """Unix time from which it may be sent (later than ``created_at`` after a failure)."""
    sent_by: str | None = None
    """The instance whose wall clock stamped ``sending_at`` (``None``: an engine alone, or rows
    sent before v14). Another instance's clock may be ahead or behind: only that instance can
    tell from ``sending_at`` whether the nonce still protects the message."""
    aged_from: float | None = None
    """Unix time an operator re-queued it (``outbox retry``: failed, or held by a dead target),
    from which its maximum delivery age counts; ``None``: never re-queued, it counts from
    ``created_at`` (which stays the time it was queued, for latency and history)."""


class PendingWrite(NamedTuple):
    """An event decided by the pipeline and not yet written: the unit of a batched commit."""

    event: StoredEvent
    notifications: list[Notification]
    cursor: tuple[str, str] | None = None
    """``(stream, value)`` to advance with the event."""
    done: asyncio.Future[bool] | None = None
    """Settled with True (new) or False (duplicate) once written (ingest API callers)."""
    correlation_id: str | None = None
    """Stored with each of the event's outbox rows so delivery logs can name it."""
    trace_parent: str | None = None
    """The event's trace context (W3C ``traceparent``), stored with its outbox rows."""


class DeadTarget(NamedTuple):
    """A target Discord refused for good, until its credential changes or an operator retries."""

    tenant_id: str
    target_key: str
    reason: str
    fingerprint: str
    since: float


class Revived(NamedTuple):
    """What an operator's retry of a target changed (:meth:`Store.revive_target`), counted in
    the transaction that changed it."""

    was_dead: bool
    """The target was held as dead (for some map) and no longer is."""
    held: int
    """Its notifications that waited, pending, behind the dead mark the retry removed (that
    map's, not another map's posting to the same key): they go now."""
    requeued: int
    """Its failed notifications made pending again."""

    @property
    def nothing(self) -> bool:
        """Nothing to retry: not dead and nothing failed (a mistyped or another engine's key)."""
        return not self.was_dead and not self.requeued


class FailedRow(NamedTuple):
    """A notification given up on (or held by a dead target), for ``outbox list``."""

    id: int
    tenant_id: str
    target_key: str
    type: str
    status: str
    attempts: int
    last_error: str | None
    created_at: float


# -- several instances on one database (leases) -------------------------------------------------


class LeaseFence(NamedTuple):
    """Proof of a held lease, checked by the database in the statement it guards (a claim)."""

    resource: str
    """What the lease is on: ``map:<tenant>``."""
    owner: str
    """The holding instance's id."""
    token: int
    """The fencing token: it grows at every takeover, so an older holder's token is refused."""


class ClaimRequest(NamedTuple):
    """One message's claim among several written together (:meth:`Store.claim_all`)."""

    row_ids: Sequence[int]
    """The rows going out in the message."""
    send_id: str
    """The message's send id (its nonce, for a bot message)."""
    fence: LeaseFence | None = None
    """The map's lease to claim under (several instances), checked by the claim's statement."""


class SentMessage(NamedTuple):
    """One message Discord confirmed, among several recorded together
    (:meth:`Store.mark_sent_all`)."""

    row_ids: Sequence[int]
    """The rows that went out in it."""
    sent_at: float
    """When its confirmation was read."""
    message_id: str | None = None
    """The id Discord gave it."""
    send_id: str | None = None
    """The send id its rows were claimed under (a confirmation kept past a stop is applied only
    to rows still claimed by that send)."""
    fence: LeaseFence | None = None
    """The lease its rows were claimed under (several instances), likewise."""


class InstanceInfo(NamedTuple):
    """What an instance says about itself in the registry."""

    instance_id: str
    host: str
    pid: int
    version: str
    started_at: float


class InstanceRow(NamedTuple):
    """One registered instance (alive while ``expires_at`` is ahead of the database's clock)."""

    instance_id: str
    host: str
    pid: int
    version: str
    started_at: float
    heartbeat_at: float
    expires_at: float
    stopped_at: float | None


class LeaseRow(NamedTuple):
    """One lease as stored: its holder (``None``: released), token and expiry."""

    resource: str
    owner: str | None
    token: int
    expires_at: float
    acquired_at: float | None
    renewed_at: float | None


class LeaseGrant(NamedTuple):
    """A lease just acquired, and what it was before (``None``: never held)."""

    lease: LeaseRow
    previous: LeaseRow | None


class ClusterPause(NamedTuple):
    """An operator's pause of delivery on a shared database: every engine on it holds."""

    actor: str
    """Who paused (as the control API names the operator)."""
    since: float
    """When, by the database's clock."""
    instance: str
    """The engine the pause was sent to."""


class SavedPause(NamedTuple):
    """An operator's pause an engine alone saved in its data directory, read as that engine
    reads it at start (:func:`~wanderer_console.delivery.hold.read_saved_pause`): a file that
    cannot be read is still a pause, since it exists only because an operator paused."""

    actor: str
    """Who paused; for a file that cannot be read, ``unknown (...)`` and why."""
    since: float
    """When, by that engine's clock; 0 when the file cannot say."""
    damaged: str | None = None
    """Why the file could not be read (``None``: it was read)."""


class ClusterPaused(Exception):
    """A fenced claim found the cluster paused (:meth:`Store.claim_all`): nothing was claimed.

    Raised instead of a count of nothing claimed so that the engine, which may not have read the
    pause yet (it reads it at its heartbeat), holds from that claim on (see
    :meth:`~wanderer_console.delivery.hold.DeliveryHold.follow`)."""

    def __init__(self, pause: ClusterPause) -> None:
        super().__init__(f"delivery paused on every engine by {pause.actor}")
        self.pause = pause


class ClusterState(NamedTuple):
    """The registry and the leases as the database sees them at ``now`` (its clock)."""

    now: float
    instances: list[InstanceRow]
    """Instances alive at ``now``."""
    leases: list[LeaseRow]
    """Every lease, held or not."""
    held: list[LeaseRow]
    """After a heartbeat: the caller's leases it still holds (renewed); else empty."""
    pause: ClusterPause | None = None
    """The operator's pause of every engine, if one is set."""


# -- where a store lives -----------------------------------------------------------------------

_SCHEMES = ("postgresql", "postgres")


class PrioritySystem(NamedTuple):
    """One priority system: its name as written, who added it, when."""

    name: str
    added_by: str
    added_at: float


class PriorityChange(NamedTuple):
    """One entry of the trail."""

    at: float
    actor: str
    action: str
    """``add`` or ``remove``."""
    name: str


class DatabaseUrl:
    """A PostgreSQL connection URL (``postgresql://user:password@host:port/dbname?…``).

    It may carry a password, so ``str()`` and ``repr()`` show it masked (``***``): a URL
    printed in a log line, an error or the console never leaks it. :meth:`secret` is the URL
    as given, for the driver only.
    """

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES:
            raise ValueError(
                f"not a PostgreSQL URL (it must start with postgresql://): {_mask(url)}"
            )
        self._url = url

    def secret(self) -> str:
        """The URL as given, password included (hand it to the driver, never to a log)."""
        return self._url

    def scrub(self, text: str) -> str:
        """``text`` (a driver's error) with this URL masked and its passwords replaced by
        ``***``: libpq quotes the part of a URL it cannot parse, which may be the password."""
        text = text.replace(self._url, _mask(self._url))
        for secret in sorted(_passwords(self._url), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def __str__(self) -> str:
        return _mask(self._url)

    def __repr__(self) -> str:
        return f"DatabaseUrl({_mask(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DatabaseUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


def _mask(url: str) -> str:
    """``url`` with the password of its user part (and any ``password=`` option) masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user, sep, _password = userinfo.partition(":")
        netloc = f"{user}{':***' if sep else ''}@{host}"
    query = "&".join(
        f"{key}=***" if key.lower() == "password" else item
        for item in parts.query.split("&")
        if item
        for key in [item.partition("=")[0]]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _passwords(url: str) -> set[str]:
    """The passwords ``url`` carries (user part and ``password=`` options), as written and
    percent-decoded."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return set()
    found = set()
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        found.add(userinfo.partition(":")[2])
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if key.lower() == "password":
            found.add(value)
    return {text for secret in found for text in (secret, unquote(secret)) if text}


StoreLocation: TypeAlias = Path | DatabaseUrl
"""Where a store lives: the SQLite file, or a PostgreSQL database."""


# -- the connection subset both backends share ---------------------------------------------------


class DbCursor(Protocol):
    """What a statement returns: its rows and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class DbConnection(Protocol):
    """A connection taking SQL with ``?`` placeholders (``sqlite3.Connection`` is one)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> DbCursor: ...

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> DbCursor: ...

    def close(self) -> None: ...


def is_unique_violation(exc: BaseException) -> bool:
    """True when ``exc`` is a broken integrity constraint (a duplicate key), on either backend:
    ``sqlite3.IntegrityError``, or a psycopg error of SQLSTATE class 23."""
    if isinstance(exc, sqlite3.IntegrityError):
        return True
    sqlstate = getattr(exc, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith("23")


# -- the store -----------------------------------------------------------------------------------


class Store(Protocol):
    """What the engine, the pipeline, delivery and the commands use of a store.

    Calls are synchronous and short (an indexed statement or one transaction): they run inline
    on the event loop, on SQLite and on PostgreSQL alike. Writes go through a write guard: a
    failed one raises :class:`~wanderer_console.store.writes.StoreWriteError` and sets
    :attr:`write_fault` until a write succeeds again.
    """

    @property
    def path(self) -> StoreLocation:
        """Where the store lives (a :class:`DatabaseUrl` prints without its password)."""
        ...

    @property
    def schema_version(self) -> int: ...

    @property
    def events_written(self) -> int:
        """Events this store inserted since it opened."""
        ...

    @property
    def last_write_at(self) -> float | None:
        """``time.perf_counter()`` when the last write committed."""
        ...

    @property
    def write_fault(self) -> WriteFault | None:
        """Why the store cannot write right now (``None`` while writes succeed)."""
        ...

    def close(self) -> None: ...

    def ping(self) -> bool: ...

    def probe_write(self) -> None:
        """One small real write (the schema version's row, rewritten as it is): clears
        :attr:`write_fault` once the store writes again, raises
        :class:`~wanderer_console.store.writes.StoreWriteError` while it cannot. For a part
        that waits on the fault with nothing of its own to write."""
        ...

    def outside_commits(self) -> int | None:
        """A number that changes whenever another connection commits to the database (another
        process, or this one's tenant registry or config audit), never for the store's own
        commits; ``None`` where that cannot be known cheaply (PostgreSQL). A cache of rows only
        other connections write (the ingest API's tenants) stays valid while it stays put."""
        ...

    def check_integrity(self) -> str | None:
        """None when the database is sound (blocking: run it in a thread), else the problem."""
        ...

    # events and cursors
    def record_event(
        self,
        event: StoredEvent,
        notifications: Sequence[Notification] = (),
        *,
        cursor: tuple[str, str] | None = None,
        now: float | None = None,
        correlation_id: str | None = None,
    ) -> bool: ...

    def record_events(
        self, writes: Sequence[PendingWrite], *, now: float | None = None
    ) -> list[bool]: ...

    def take_queued(self) -> list[OutboxRow] | None:
        """The outbox rows the last ``record_events`` queued for targets with nothing else
        pending, in id order, once; ``None`` when the store cannot say."""
        ...

    def has_event(self, tenant_id: str, event_id: str) -> bool: ...

    def event_count(self) -> int: ...

    def events_since(self, since: float, *, limit: int = 100_000) -> list[StoredEvent]: ...

    def get_cursor(self, stream: str) -> str | None: ...

    def set_cursor(self, stream: str, value: str) -> None: ...

    # hosted maps
    def hosted_map_keys(self) -> dict[str, str]:
        """The key kept for each hosted map, by its map server's ``map_id``."""
        ...

    def keep_hosted_map_keys(self, keys: Mapping[str, tuple[str, str]]) -> dict[str, str]:
        """Record ``map_id -> (key, slug)`` for the maps that have no key yet (a map's key is
        never changed, and one key is never given to two maps: such a row is not written);
        return every kept key, as :meth:`hosted_map_keys`."""
        ...

    def prune(self, before: float, *, limit: int = PRUNE_BATCH) -> tuple[int, int]:
        """Delete up to ``limit`` old events and up to ``limit`` old finished notifications."""

    # enrichment cache
    def save_cache_entries(self, rows: Iterable[tuple[str, str, int, str, float]]) -> int: ...

    def load_cache_entries(
        self, version: int, now: float
    ) -> list[tuple[str, str, int, str, float]]: ...

    def prune_cache_entries(self, version: int, now: float) -> int: ...

    # outbox
    def enqueue(
        self, notifications: Sequence[Notification], *, now: float | None = None
    ) -> None: ...

    def due_outbox(
        self,
        now: float,
        *,
        limit: int = 100,
        exclude_targets: Collection[str] = (),
        held: Collection[tuple[str, str]] = (),
        tenants: Collection[str] | None = None,
    ) -> list[OutboxRow]: ...

    def pending_targets(self) -> list[str]: ...

    def next_due_at(self, after: float | None = None) -> float | None: ...

    def outbox_depth(self) -> dict[str, int]: ...

    def held_depth(self, marks: Collection[tuple[str, str]]) -> dict[tuple[str, str], int]: ...

    def outbox_counts(self) -> dict[str, int]: ...

    def claim(
        self,
        row_ids: Sequence[int],
        *,
        send_id: str,
        now: float | None = None,
        fence: LeaseFence | None = None,
    ) -> int: ...

    def claim_all(
        self, claims: Sequence[ClaimRequest], *, now: float | None = None
    ) -> list[int]: ...

    def unclaim(self, row_ids: Sequence[int], *, fence: LeaseFence, keep_send_id: bool) -> int: ...

    def undo_claim(
        self,
        row_ids: Sequence[int],
        *,
        send_id: str,
        fence: LeaseFence | None,
        keep_send_id: bool,
    ) -> int: ...

    def mark_sent(
        self,
        row_id: int | Sequence[int],
        *,
        now: float | None = None,
        message_id: str | None = None,
    ) -> None: ...

    def mark_sent_all(self, messages: Sequence[SentMessage]) -> None: ...

    def mark_sent_if_claimed(self, messages: Sequence[SentMessage]) -> int: ...

    def release(
        self,
        row_ids: Sequence[int],
        *,
        next_attempt_at: float,
        error: str | None,
        attempt: bool = True,
        keep_send_id: bool = False,
        uncertain: bool = False,
        fence: LeaseFence | None = None,
    ) -> None: ...

    def mark_failed(
        self, row_id: int | Sequence[int], *, error: str, fence: LeaseFence | None = None
    ) -> None: ...

    def fail_pending(self, tenant: str, *, error: str, fence: LeaseFence | None = None) -> int: ...

    def fail_unsent(
        self, row_ids: Sequence[int], *, error: str, fence: LeaseFence | None = None
    ) -> int: ...

    def mark_unconfirmed(
        self, row_ids: Sequence[int], *, error: str, fence: LeaseFence | None = None
    ) -> None: ...

    def recover_in_flight(
        self,
        *,
        tenant: str | None = None,
        spare: LeaseFence | None = None,
        claimed_by: str | None = None,
        nonce_since: float | None = None,
    ) -> list[tuple[int, str, str, float]]: ...

    def schedule(self, row_ids: Sequence[int], *, next_attempt_at: float) -> None: ...

    def resume_target(self, target_key: str, *, now: float) -> int: ...

    def dead_targets(self) -> list[DeadTarget]: ...

    # priority systems (store/priority.py)
    def priority_systems(self) -> list[PrioritySystem]: ...

    def add_priority_system(self, name: str, *, actor: str, now: float | None = None) -> bool: ...

    def remove_priority_system(
        self, name: str, *, actor: str, now: float | None = None
    ) -> bool: ...

    def priority_changes(self, limit: int = 100) -> list[PriorityChange]: ...

    def set_dead_target(
        self, tenant_id: str, target_key: str, *, reason: str, fingerprint: str, now: float
    ) -> None: ...

    def revive_target(self, target_key: str, *, tenant_id: str | None = None) -> Revived: ...

    def forget_dead_target(
        self, tenant_id: str, target_key: str, *, fence: LeaseFence | None = None
    ) -> bool: ...

    def retarget_pending(
        self,
        tenant_id: str,
        target_key: str,
        *,
        to_kind: TargetKind,
        to_key: str,
        now: float,
        fence: LeaseFence | None = None,
    ) -> int: ...

    def recorded_routes(self) -> dict[str, dict[str, str]]: ...

    def record_routes(
        self,
        tenant_id: str,
        routes: Mapping[str, str],
        *,
        moves: Mapping[str, tuple[TargetKind, str]] | None = None,
        now: float | None = None,
        fence: LeaseFence | None = None,
    ) -> dict[str, int] | None: ...

    def failed_rows(
        self, *, target_key: str | None = None, limit: int = 1000
    ) -> list[FailedRow]: ...

    def drop_failed(self, *, target_key: str | None = None, row_ids: Sequence[int] = ()) -> int: ...

    # several instances (leases)
    shared: bool
    """Set when several instances share this database (a repeat of a shared event still writes
    its notifications, see :data:`SHARED_TENANT`)."""

    def heartbeat(self, instance: InstanceInfo, ttl: float) -> ClusterState: ...

    def acquire_lease(self, resource: str, owner: str, ttl: float) -> LeaseGrant | None: ...

    def release_lease(self, fence: LeaseFence) -> bool: ...

    def leave_cluster(self, instance_id: str) -> int: ...

    def cluster_state(self) -> ClusterState: ...

    def pause_cluster(self, actor: str, instance_id: str) -> ClusterPause: ...

    def resume_cluster(self) -> bool: ...

    def cluster_pause(self) -> ClusterPause | None: ...

    # the events browser (bounded reads, see store/browse.py)
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
    ) -> list[BrowsedEvent]: ...

    def event_by_row(self, row_id: int) -> BrowsedEvent | None: ...

    def event_notifications(
        self, events: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], list[EventNotification]]: ...

    def recent_event_types(self, *, window: int = 5_000) -> list[str]: ...
    # what the console keeps about itself (store/observe.py)
    def alert_fired(self, record: AlertRecord) -> None: ...

    def alert_resolved(
        self, rule: str, subject: str, fired_at: float, resolved_at: float
    ) -> None: ...

    def open_alerts(self) -> list[AlertRecord]: ...

    def alert_history(self, limit: int = 100) -> list[AlertRecord]: ...

    def save_trend(self, row: TrendMinute) -> None: ...

    def trends(self, since: float, until: float | None = None) -> list[TrendMinute]: ...

    def prune_observations(self, *, trends_before: float, alerts_before: float) -> int: ...

    def oldest_pending_at(self, *, exclude_tenant: str | None = None) -> float | None: ...

    def has_notification(self, tenant_id: str, dedup_key: str) -> bool: ...
