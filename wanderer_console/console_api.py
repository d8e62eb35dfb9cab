"""The engine as the operator console sees it: typed snapshots and the :class:`ConsoleBackend`.

The console (``ui/``) talks to an engine only through this module. The engine in the same process
is a :class:`~wanderer_console.control.local.LocalBackend`; an engine in another process (a
systemd service) is reached through its control endpoint by
:class:`~wanderer_console.http.control_client.RemoteBackend`. Both give the same frames and accept
the same operations, so the screens cannot tell them apart.

Everything here is immutable and JSON round-trippable (pydantic models, ``extra="forbid"`` so a
field the engine adds without declaring it here fails loudly in tests). Nothing in a snapshot or a
config text carries a secret unmasked: the config text crosses as ``«secret-N»`` placeholders and
the engine puts its own values back when an edit is applied.

No Textual, no httpx, no engine imports: this is the contract both sides build on.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ALERT_FIELDS",
    "FLAG_NAMES",
    "MAX_STORED_INT",
    "AlertRecordView",
    "AlertRuleView",
    "AlertView",
    "AlertsView",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "ApplyResult",
    "AuditRecord",
    "BackendError",
    "BreakerView",
    "CacheHealthView",
    "CacheNamespaceView",
    "CacheView",
    "ClusterView",
    "ConfigProblem",
    "ConfigState",
    "ConfigText",
    "ConnectionView",
    "ConsoleBackend",
    "ConsoleSettingsView",
    "CountersView",
    "DeliveryView",
    "EngineIdentity",
    "EVENT_OUTCOMES",
    "EmbedFieldView",
    "EmbedView",
    "EngineSnapshot",
    "EventDetail",
    "EventPage",
    "EventQuery",
    "EventRow",
    "FlagSet",
    "Frame",
    "HostedView",
    "InstanceView",
    "LinkState",
    "TREND_RANGES",
    "LogLine",
    "MissedKeyView",
    "MapVerdict",
    "MessageView",
    "NotificationView",
    "Occurrence",
    "OperationResult",
    "PrioritySystemView",
    "QueueView",
    "StoreFaultView",
    "TargetView",
    "TrackerView",
    "TrackingView",
    "TrendPoint",
    "TrendsView",
    "WarmingView",
]

PROTOCOL_VERSION = 1
"""Bumped on any change a client of the previous version would misread; the handshake compares
it and refuses (naming both) rather than show wrong figures."""

PROTOCOL_HEADER = "x-wc-protocol"
"""The request header a client states its protocol version in."""

FLAG_NAMES = ("enabled", "kill", "system", "character", "rally")
"""The notification switches, in the toggles screen's column order."""

FlagName = Literal["enabled", "kill", "system", "character", "rally"]

ALERT_FIELDS = ("enabled", "threshold", "for_seconds")
"""What the alerts screen edits of each rule (``alerts.<rule>.<field>``)."""


class _View(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- the snapshot ---------------------------------------------------------------------------------


class Occurrence(_View):
    """One recent occurrence of a fault (an error, a breaker transition, a refusal): when, what."""

    at: float
    text: str


class EngineIdentity(_View):
    """Which engine this is: the attached console's title bar shows it."""

    host: str
    pid: int
    data_dir: str
    version: str
    started_at: float
    protocol: int = PROTOCOL_VERSION
    config_path: str | None = None


class ConnectionView(_View):
    """One source's connection health (map stream, killstream socket, R2Z2 poller)."""

    name: str
    kind: str
    state: str
    since: float | None = None
    last_event_at: float | None = None
    reconnects: int = 0
    events: int = 0
    heartbeat_rtt_ms: float | None = None
    last_error: str | None = None
    events_per_minute: float = 0.0
    reconnects_last_hour: int = 0
    errors_last_hour: int = 0
    error_rate: float = 0.0
    quality: int = 0
    url: str | None = None
    """Where the source connects (credentials masked), for the detail view."""
    errors: int = 0
    """Errors since the engine started."""
    error_since: float | None = None
    """When the current run of errors began (the first error since it was last connected)."""
    recent_errors: tuple[Occurrence, ...] = ()
    """The last few errors, oldest first."""


class QueueView(_View):
    """The pipeline queue: its bound, depth per lane and the sources it holds back."""

    bound: int = 0
    lanes: dict[str, int] = Field(default_factory=dict)
    paused_sources: tuple[str, ...] = ()
    paused_seconds: dict[str, float] = Field(default_factory=dict)


class TargetView(_View):
    """One delivery target (webhook or channel) as the dispatcher sees it."""

    pending: int = 0
    sent: int = 0
    messages: int = 0
    sent_last_minute: int = 0
    rate_limited: int = 0
    uncertain: int = 0
    """Notifications re-sent after an unknown outcome since the engine started."""
    last_uncertain_at: float | None = None
    """When the last of them was re-sent; ``None`` before the first, or from an engine that
    does not say (an older one: the console then takes the count as recent)."""
    disabled: str | None = None
    """Why the target is dead (its notifications wait), or ``None``."""
    last_error: str | None = None
    """Discord's last answer when it was not a confirmation (``500 ...``, an open breaker, a
    429); ``None`` once a message is confirmed again."""
    label: str = ""
    """Which maps and routes post here (``alpha/primary``, ``alpha/rally, bravo/primary``)."""
    url: str | None = None
    """The webhook URL with its token masked, or the channel id (a bot target)."""
    disabled_since: float | None = None
    """When Discord refused it for good (for the first of the maps it is dead for)."""
    maps: tuple[str, ...] = ()
    """The maps posting here, sorted; empty from an engine that does not say."""
    dead_for: tuple[str, ...] = ()
    """The maps it is dead for, sorted: a target is dead per map, and a webhook two maps share
    may be refused for one of them while the other's notifications still go. Empty while it is
    alive, or from an engine that does not say (``disabled`` alone then says it is dead)."""
    held_for: dict[str, int] = Field(default_factory=dict)
    """Notifications held per map it is dead for (``{"alpha": 3}``): that map's rows waiting
    for the fix, not another map's on their way (``pending`` counts both). Empty while it is
    alive, or from an engine that does not say (``pending`` is then all the console has)."""
    recent: tuple[Occurrence, ...] = ()
    """The engine's last few log lines about this target, oldest first."""


class StoreFaultView(_View):
    """The store cannot write: delivery is paused until it can."""

    reason: str
    since: float
    failures: int


class DeliveryView(_View):
    """The dispatcher: paused or not, Discord's global pause, store faults, targets."""

    paused: bool = False
    paused_by: str | None = None
    """Who paused delivery (``tui:alice@host via socket``), while an operator's pause holds;
    ``None`` when not paused, or from an engine that does not say."""
    paused_since: float | None = None
    """When the operator paused; ``None`` also when the saved pause could not say."""
    pause_saved: bool | None = None
    """The pause is kept across a restart (``False``: it could not be saved, so a restart
    ends it); ``None`` when not paused or not said."""
    pause_cluster: bool | None = None
    """The pause is the cluster's, kept in the database several engines share: it holds every
    engine on it, and a resume on any of them lifts it (``False``: this engine's alone);
    ``None`` when not paused or not said."""
    global_pause_until: float | None = None
    store_fault: StoreFaultView | None = None
    unrecorded_outcomes: int = 0
    invalid_answers_10m: int = 0
    targets: dict[str, TargetView] = Field(default_factory=dict)


class BreakerView(_View):
    """One circuit breaker (per service and host)."""

    state: str
    failures: int = 0
    opened_at: float | None = None
    next_probe_at: float | None = None
    reason: str | None = None
    """Why it last changed state (``5 failures in 30s, last: timeout``)."""
    recent: tuple[Occurrence, ...] = ()
    """Its last few transitions, oldest first."""


class CacheNamespaceView(_View):
    """One name-cache namespace (system, character, type, …)."""

    hits: int = 0
    misses: int = 0
    hit_ratio: float = 0.0
    loads: int = 0
    load_errors: int = 0
    coalesced: int = 0
    evictions: int = 0
    expirations: int = 0
    invalidations: int = 0
    size: int = 0
    maxsize: int = 0
    latency_us: dict[str, float] = Field(default_factory=dict)


class WarmingView(_View):
    """Progress of the start-up cache warm."""

    total: int = 0
    done: int = 0
    failed: int = 0
    running: bool = False


class MissedKeyView(_View):
    """A key the cache missed often (what to warm or keep longer)."""

    namespace: str
    key: int
    misses: int


class CacheHealthView(_View):
    """The cache's health: a score, what to change, the memory it holds."""

    score: int = 100
    """0-100 (hit ratios, loader failures, evictions, critical entries missing)."""
    recommendations: tuple[str, ...] = ()
    memory_bytes: dict[str, int] = Field(default_factory=dict)
    """Estimated bytes per namespace and ``total``."""
    pinned: dict[str, int] = Field(default_factory=dict)
    """Critical (tracked) entries held per namespace."""
    most_missed: tuple[MissedKeyView, ...] = ()


class CacheView(_View):
    """The name cache: per namespace and in total."""

    version: int = 0
    namespaces: dict[str, CacheNamespaceView] = Field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    hit_ratio: float = 0.0
    inflight: int = 0
    warming: WarmingView = Field(default_factory=WarmingView)
    health: CacheHealthView | None = None


class TrackingView(_View):
    """How much one map tracks."""

    systems: int = 0
    characters: int = 0


class InstanceView(_View):
    """One engine sharing the database, as the registry last showed it."""

    instance_id: str
    host: str = ""
    pid: int = 0
    version: str = ""
    started_at: float = 0.0
    heartbeat_age: float | None = None
    """Seconds since its last heartbeat (alive while under the lease time)."""
    this: bool = False
    """This engine."""
    maps: tuple[str, ...] = ()
    """Maps whose lease it holds."""


class HostedView(_View):
    """Hosted / API multi-map mode: the maps pulled from the map server and the last refresh."""

    url: str = ""
    """The notifier-config endpoint asked."""
    refresh_seconds: float = 0.0
    refreshes: int = 0
    maps: tuple[str, ...] = ()
    """The hosted maps running now."""
    last: dict[str, Any] | None = None
    """The last refresh: ``ok``, ``source``, ``at``, ``error``, ``maps``, ``problems``,
    ``diff`` (``None`` before the first)."""


class ClusterView(_View):
    """Several engines on one PostgreSQL database: what this one works, who else is alive."""

    instance_id: str
    lease_seconds: float = 0.0
    maps: tuple[str, ...] = ()
    """Maps whose lease this engine holds (their feeds run and their notifications go out here)."""
    leaving: tuple[str, ...] = ()
    """Maps being handed to another engine."""
    unowned: tuple[str, ...] = ()
    """Configured maps no live engine holds right now (taken over within the lease time)."""
    instances: tuple[InstanceView, ...] = ()
    """Every live engine, this one included."""
    acquired: int = 0
    taken_over: int = 0
    lost: int = 0
    last_error: str | None = None
    """Why the last lease heartbeat failed."""


class CountersView(_View):
    """Totals since start (the counters panel, the throughput chart, the demo's summary)."""

    events_received: dict[str, int] = Field(default_factory=dict)
    notifications_queued: dict[str, int] = Field(default_factory=dict)
    notifications_delivered: dict[str, int] = Field(default_factory=dict)
    duplicates_suppressed: dict[str, int] = Field(default_factory=dict)
    invalid_events: dict[str, int] = Field(default_factory=dict)
    unknown_event_types: int = 0
    delivery_failures: dict[str, int] = Field(default_factory=dict)
    errors: int = 0
    outbox: dict[str, int] = Field(default_factory=dict)


class ConfigState(_View):
    """The config file and what its last reload did."""

    path: str | None = None
    digest: str | None = None
    """A hash of the file's text as the engine last read it: a client re-reads the text only
    when this changes."""
    last_status: str | None = None
    last_hot: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()
    """Changed keys that wait for the next start."""
    errors: tuple[str, ...] = ()


class FlagSet(_View):
    """The five notification switches of one scope (global, or one map)."""

    enabled: bool = True
    kill: bool = True
    system: bool = True
    character: bool = True
    rally: bool = True

    def get(self, flag: str) -> bool:
        """The switch named ``flag`` (one of :data:`FLAG_NAMES`)."""
        if flag not in FLAG_NAMES:
            raise KeyError(flag)
        return bool(getattr(self, flag))


class ConsoleSettingsView(_View):
    """The part of the running configuration the console shows and switches (no secrets)."""

    theme: str = "wanderer-dark"
    keymap: dict[str, str] = Field(default_factory=dict)
    refresh_seconds: float = 1.0
    notifications: FlagSet = Field(default_factory=FlagSet)
    maps: dict[str, FlagSet] = Field(default_factory=dict)
    """Each configured map's own switches (ANDed with the global ones)."""
    map_names: dict[str, str] = Field(default_factory=dict)
    """Each configured map's display name (``maps.<slug>.name``); the toggles screen labels a map
    with it, or with its slug when it has none."""
    dry_run: bool = False


class AlertView(_View):
    """An alert firing now (the console's banner)."""

    rule: str
    subject: str
    fired_at: float
    value: float
    threshold: float
    summary: str
    detail: str = ""


class AlertRuleView(_View):
    """One ``[alerts]`` rule as configured now."""

    enabled: bool = True
    threshold: float = 0.0
    for_seconds: float = 0.0
    unit: str = ""
    above: bool = True
    """The measure is bad above the threshold (False: below it, a floor)."""
    summary: str = ""


class AlertsView(_View):
    """The console's own alerts: what fires, and every rule."""

    enabled: bool = True
    firing: tuple[AlertView, ...] = ()
    rules: dict[str, AlertRuleView] = Field(default_factory=dict)
    ops_webhook: bool = False
    """An operations webhook is configured (firing and resolved messages go there)."""
    last_error: str | None = None


class AlertRecordView(_View):
    """One entry of the alert history (newest first)."""

    rule: str
    subject: str
    fired_at: float
    resolved_at: float | None = None
    value: float
    threshold: float
    summary: str


class PrioritySystemView(_View):
    """One priority system (pings, bypasses the system-notification switch): kept by the
    operators from the console or with ``/notifier system add-priority``."""

    name: str
    added_by: str = ""
    added_at: float = 0.0


TREND_RANGES: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "24h": (86_400, 600),
    "7d": (7 * 86_400, 3600),
}
"""The trends screen's ranges: seconds back and the seconds each point sums."""


class TrendPoint(_View):
    """One bucket of the stored per-minute trends (counts summed; latency in seconds)."""

    start: int
    events: int = 0
    queued: int = 0
    delivered: int = 0
    failures: int = 0
    rate_limited: int = 0
    errors: int = 0
    latency_p50: float | None = None
    latency_p95: float | None = None
    latency_p99: float | None = None


class TrendsView(_View):
    """The trends of one range, oldest point first."""

    range: str
    step: int
    points: tuple[TrendPoint, ...] = ()


class TrackerView(_View):
    """One kill tracker of a map (its ``default`` one: its ``[filters]`` and kill routes)."""

    tenant: str
    name: str
    enabled: bool = True
    default: bool = False
    """The map's own filters and routes rather than a ``[[maps.<key>.trackers]]`` entry."""
    scope: str = "map"
    """``map`` (the map's kills) or ``all`` (every kill received)."""
    target: str = ""
    """Target key (``webhook:<id>``, ``channel:<id>``; never a token), ``routes`` for the default
    tracker (its kill routes), or empty when it has nowhere to post."""
    ping: str = ""
    """``@here``, ``@everyone`` and role mentions, as its messages start."""
    matches_last_hour: int = 0
    matches_total: int = 0
    """Since the engine started."""
    last_match_at: float | None = None


class EngineSnapshot(_View):
    """The whole engine at one moment, as every console panel reads it."""

    version: str = ""
    started_at: float = 0.0
    uptime: float = 0.0
    connections: tuple[ConnectionView, ...] = ()
    queue_depth: int = 0
    queue: QueueView = Field(default_factory=QueueView)
    delivery: DeliveryView = Field(default_factory=DeliveryView)
    cache: CacheView = Field(default_factory=CacheView)
    breakers: dict[str, BreakerView] = Field(default_factory=dict)
    tracking: dict[str, TrackingView] = Field(default_factory=dict)
    counters: CountersView = Field(default_factory=CountersView)
    config: ConfigState | None = None
    settings: ConsoleSettingsView = Field(default_factory=ConsoleSettingsView)
    cluster: ClusterView | None = None
    """Set when engines share a PostgreSQL database (absent on SQLite)."""
    hosted: HostedView | None = None
    """Set in hosted mode (``[hosted] api_key``)."""
    alerts: AlertsView = Field(default_factory=AlertsView)
    priority_systems: tuple[PrioritySystemView, ...] = ()
    """The operators' priority systems, by name."""
    trackers: tuple[TrackerView, ...] = ()
    """Every map's trackers, its default one first; sent only when some map has
    ``[[maps.<key>.trackers]]`` (an older console reads the rest)."""


class LogLine(_View):
    """One engine log record, for the activity panel."""

    at: float
    level: str
    text: str


class LinkState(_View):
    """How the console is connected to its engine (always ``live`` in-process)."""

    state: Literal["live", "connecting", "lost", "refused"] = "live"
    detail: str = ""
    """What went wrong, for ``connecting``/``lost`` (``engine stopped``, ``connection refused``);
    for ``refused``, why the engine no longer takes this console (its token was replaced) and
    what to do: the console does not retry with what was refused."""
    since: float | None = None


class Frame(_View):
    """What the console receives at each refresh: a snapshot and the log lines since the last."""

    snapshot: EngineSnapshot
    logs: tuple[LogLine, ...] = ()
    dropped: int = 0
    """Frames or log lines this client missed because it read too slowly (counted, not kept)."""
    link: LinkState = Field(default_factory=LinkState)
    identity: EngineIdentity | None = None


# -- the events browser ---------------------------------------------------------------------------

MAX_STORED_INT: Final = 2**63 - 1
"""The largest integer SQLite and PostgreSQL take (signed 64-bit): an event id or page offset
past it can name nothing, and binding it raises, so it is refused as bad input first."""

EventOutcome = Literal["notified", "pending", "failed", "filtered"]
EVENT_OUTCOMES: tuple[EventOutcome, ...] = ("notified", "pending", "failed", "filtered")
"""What became of an event: delivered somewhere; waiting (nothing delivered yet); failed
(given up, dropped or unconfirmed); filtered (it notified nothing)."""


class EventQuery(_View):
    """Which recent events the browser asks for (every filter given must match)."""

    search: str = Field(default="", max_length=200)
    """A case-insensitive substring of the event's id, type, source, map or payload."""
    map: str | None = None
    """A map's own events and the kills it was notified of."""
    type: str | None = None
    outcome: EventOutcome | None = None
    target: str | None = None
    """Events with a notification to this target key (``webhook:…``)."""
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=MAX_STORED_INT)
    """Bounded by what the store can bind: a larger number is refused, not an overflow."""


class NotificationView(_View):
    """One notification of an event: where it went, and what became of it."""

    id: int
    map: str
    route: str
    target: str
    """The target's key (``webhook:<id>``, ``channel:<id>``)."""
    target_label: str = ""
    """Which map routes post there (``alpha/primary``)."""
    status: str
    """The outbox state: ``pending``, ``sending``, ``sent``, ``failed``, ``uncertain``,
    ``dropped``."""
    attempts: int = 0
    created_at: float = 0.0
    sent_at: float | None = None
    message_id: str | None = None
    """Discord's id of the message it went out in."""
    last_error: str | None = None


class EventRow(_View):
    """One recent event, as the browser lists it."""

    id: int
    """The browser's handle on it (for :meth:`ConsoleBackend.event_detail`)."""
    event_id: str
    source: str
    type: str
    map: str
    """The map it came from, or ``*`` (a kill, shared by every map)."""
    system: str = ""
    """The solar system's name (or id) when the event names one."""
    received_at: float
    summary: str = ""
    """One line about it (the victim's ship, the system added, the pilot)."""
    outcome: EventOutcome
    notifications: tuple[NotificationView, ...] = ()


class EventPage(_View):
    """A page of recent events and what the filters can be set to."""

    query: EventQuery
    events: tuple[EventRow, ...] = ()
    more: bool = False
    """More events match beyond this page."""
    window: int = 0
    """How many of the newest events were looked through."""
    maps: tuple[str, ...] = ()
    types: tuple[str, ...] = ()


class MapVerdict(_View):
    """One map's verdict on an event: notified through a route, or why not, in words."""

    map: str
    notify: bool
    route: str | None = None
    target: str | None = None
    reason: str | None = None
    explanation: str = ""


class EmbedFieldView(_View):
    """One field of a Discord embed."""

    name: str
    value: str
    inline: bool = False


class EmbedView(_View):
    """One Discord embed, as the message will show it."""

    title: str = ""
    description: str = ""
    url: str | None = None
    color: int | None = None
    author: str = ""
    fields: tuple[EmbedFieldView, ...] = ()
    footer: str = ""
    timestamp: str | None = None


class MessageView(_View):
    """A Discord message: its text and embeds."""

    content: str = ""
    embeds: tuple[EmbedView, ...] = ()


class EventDetail(_View):
    """One event in full: its notifications, each map's verdict and the message."""

    event: EventRow
    verdicts: tuple[MapVerdict, ...] = ()
    verdict_note: str = ""
    """Where the verdicts come from (what happened, or the rules now, as ``kill ID`` says)."""
    message: MessageView | None = None
    message_note: str = ""
    """``as delivered to …``, ``as queued for …``, or ``as it would look``."""
    payload: str = ""
    """The event as received (JSON, secrets masked, cut at a few KiB)."""


# -- operations -----------------------------------------------------------------------------------


class OperationResult(_View):
    """What an operation did, in one line for a toast (and a count where one applies)."""

    ok: bool
    message: str
    count: int | None = None


class ConfigProblem(_View):
    """One located problem in a config text."""

    line: int | None
    key: str
    message: str

    def describe(self) -> str:
        """``line 7 · maps.alpha.url: message``."""
        where = f"line {self.line}" if self.line else "no line"
        return f"{where} · {self.key}: {self.message}"


class ConfigText(_View):
    """The config file as the console may show it: secrets as ``«secret-N»`` placeholders."""

    path: str | None
    text: str
    digest: str | None
    """Hash of the real file text: send it back with an edit to detect a concurrent change."""
    secrets: int = 0
    """How many secret values the text holds as placeholders."""


class ApplyResult(_View):
    """What applying (or reloading) a config text did."""

    status: Literal["applied", "rejected", "unchanged", "conflict", "unavailable"]
    message: str = ""
    problems: tuple[ConfigProblem, ...] = ()
    hot: tuple[str, ...] = ()
    """Keys now in effect."""
    restart_required: tuple[str, ...] = ()
    """Keys saved that take effect at the next start."""
    digest: str | None = None
    """The file's digest after the operation."""


class AuditRecord(_View):
    """One entry of the config audit trail (newest last)."""

    id: int
    at: float
    source: str
    status: str
    changes: tuple[str, ...] = ()


class BackendError(Exception):
    """The engine refused or could not be reached; the message says which and what to do."""


class ConsoleBackend(Protocol):
    """Every operation the console performs on an engine, local or attached.

    ``actor`` names who asked (``tui:alice@host``); the engine records it in the audit trail and
    the activity log.
    """

    @property
    def identity(self) -> EngineIdentity | None:
        """The engine, once known (a remote one after the first handshake)."""
        ...

    def frames(self, interval: float) -> AsyncIterator[Frame]:
        """A frame every ``interval`` seconds until the iterator is closed (never raises for a
        lost engine: a remote backend yields ``link`` frames and reconnects by itself)."""
        ...

    async def snapshot(self) -> EngineSnapshot:
        """The engine now."""
        ...

    async def set_paused(self, paused: bool, *, actor: str) -> OperationResult:
        """Hold or release Discord deliveries (the outbox keeps everything)."""
        ...

    async def set_flag(
        self, tenant: str | None, flag: str, value: bool, *, actor: str
    ) -> OperationResult:
        """Turn a notification type on or off, globally (``tenant=None``) or for one map; the
        engine applies it at once and saves it to its config file (comments kept)."""
        ...

    async def set_theme(self, name: str, *, actor: str) -> OperationResult:
        """Save ``console.theme`` in the engine's config file."""
        ...

    async def config_text(self) -> ConfigText:
        """The config file, secrets masked."""
        ...

    async def apply_config(
        self, text: str, *, base_digest: str | None, force: bool = False, actor: str
    ) -> ApplyResult:
        """Validate ``text`` (masked or real), write it and apply it; nothing changes on error.

        ``base_digest`` is the digest the edit started from: a file changed since then is not
        overwritten (status ``conflict``) unless ``force``.
        """
        ...

    async def reload_config(self, *, actor: str) -> ApplyResult:
        """Re-read the config file now."""
        ...

    async def config_history(self, limit: int = 50) -> tuple[AuditRecord, ...]:
        """The config audit trail, newest last."""
        ...

    async def retry_target(self, key: str, *, actor: str) -> OperationResult:
        """Revive a dead target and re-queue its failed notifications (``count``)."""
        ...

    async def events(self, query: EventQuery) -> EventPage:
        """Recent events matching ``query``, newest first, each with its outcome."""
        ...

    async def event_detail(self, event: int) -> EventDetail | None:
        """One event (by :attr:`EventRow.id`) in full; ``None`` once it is gone."""

    async def refresh_hosted(self, *, actor: str) -> OperationResult:
        """Pull the hosted maps' configuration from the map server now and apply it (``count``:
        the hosted maps after it); refused when the engine is not in hosted mode."""
        ...

    async def set_alert_rule(
        self, rule: str, field: str, value: float | bool, *, actor: str
    ) -> OperationResult:
        """Change one field of an ``[alerts]`` rule (one of :data:`ALERT_FIELDS`); the engine
        applies it at its next evaluation and saves it to its config file (comments kept)."""
        ...

    async def alert_history(self, limit: int = 100) -> tuple[AlertRecordView, ...]:
        """The alert history, newest first."""
        ...

    async def add_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Make ``name`` a priority system (kept in the store, recorded with ``actor``)."""
        ...

    async def remove_priority_system(self, name: str, *, actor: str) -> OperationResult:
        """Make ``name`` an ordinary system again."""
        ...

    async def trends(self, range_name: str) -> TrendsView:
        """The stored per-minute trends over one of :data:`TREND_RANGES` (``1h``, ``24h``,
        ``7d``), bucketed; ``BackendError`` for another range."""
        ...

    async def set_tracker(
        self, tenant: str, name: str, enabled: bool, *, actor: str
    ) -> OperationResult:
        """Switch one kill tracker of a map on or off (``default``: the map's own filters); the
        engine applies it at once and saves it to its config file (comments kept)."""
        ...

    async def aclose(self) -> None:
        """Let go of the engine (an attached engine keeps running)."""
        ...
