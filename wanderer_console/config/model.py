"""The settings model: one validated tree for the whole console.

Every field carries an attribute docstring; ``config/wanderer.example.toml`` documents the same keys
for operators. Secrets are :class:`pydantic.SecretStr` so they never print unmasked. Every field
also declares, next to its type, whether a change of it applies to a running engine (``LIVE``) or
waits for a restart (``Restart("why")``, see :mod:`~wanderer_console.config.section`); hot reload
classifies changed keys by these declarations (:mod:`~wanderer_console.config.live`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from wanderer_console.config.alerts import AlertSettings
from wanderer_console.config.cache import CacheSettings
from wanderer_console.config.discord_values import (
    ApplicationId,
    BotToken,
    ChannelId,
    GuildId,
    RoleId,
    WebhookUrl,
    WebhookUsername,
)
from wanderer_console.config.filters import MapFilters, SpaceClassName
from wanderer_console.config.section import LIVE, Live, Restart, Section, check_declared
from wanderer_console.config.trackers import TrackerList
from wanderer_console.config.trends import TrendSettings
from wanderer_console.domain.map_events import KNOWN_MAP_EVENT_TYPES
from wanderer_console.http.settings import DEFAULT_SERVICE_SETTINGS, resolve_settings

__all__ = [
    "ClusterSettings",
    "ConsoleSettings",
    "ControlSettings",
    "DedupTtls",
    "DiscordSettings",
    "EsiSettings",
    "HostedSettings",
    "JaniceSettings",
    "KillstreamSettings",
    "MapDiscord",
    "MapFilters",
    "MapSettings",
    "NotificationFlags",
    "R2z2Settings",
    "ServerSettings",
    "Settings",
    "SpaceClassName",
    "StatsdSettings",
    "TracingSettings",
]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/")


def _ws_url(value: str) -> str:
    if value.startswith("http://"):
        value = "ws://" + value.removeprefix("http://")
    elif value.startswith("https://"):
        value = "wss://" + value.removeprefix("https://")
    if not value.startswith(("ws://", "wss://")):
        raise ValueError("must start with ws://, wss://, http:// or https://")
    return value.rstrip("/")


def _user_agent(value: str) -> str:
    # Sent as a header by every HTTP client: anything else stopped the engine at start with the
    # HTTP library's bare encoding error (or, with a line break, split the header).
    if not value or not all(" " <= ch <= "~" for ch in value):
        raise ValueError(
            "must be printable ASCII, e.g. 'MyCorpNotifier/1.0 (+https://example.org;"
            " ops@example.org)': it is sent as the HTTP User-Agent header"
        )
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
WsUrl = Annotated[str, AfterValidator(_ws_url)]
UserAgent = Annotated[str, AfterValidator(_user_agent)]

# Why a change waits for a restart, where several fields share the reason. Each field declares
# ``LIVE`` or a ``Restart`` next to its type (config/section.py); hot reload classifies by them.
RESTART_SERVER: Final = Restart("the HTTP surface binds and takes its limits at start")
RESTART_CONTROL: Final = Restart("the control endpoint is set up at start")
RESTART_SOCKET: Final = Restart("each killstream socket takes it when it opens")
RESTART_SHARDS: Final = Restart("the killstream's sockets are planned with it from the first one")
RESTART_POLLER: Final = Restart("the killstream's REST fallback poller takes it when it starts")
RESTART_R2Z2: Final = Restart("the R2Z2 poller takes it when it starts")
RESTART_TRACING: Final = Restart("the tracer, its sampler and exporter are set up at start")
RESTART_STATSD: Final = Restart("the StatsD sender opens its socket and starts at start")
RESTART_GATEWAY: Final = Restart(
    "the Discord gateway connects and registers the slash commands at start"
)
RESTART_MAP_FEED: Final = Restart(
    "the map's REST client and SSE stream take it when the map is started"
)


class NotificationFlags(Section):
    """Switches per notification type. Global and per-map flags are ANDed."""

    enabled: Annotated[bool, LIVE] = True
    """Master switch: off silences every type."""
    kill: Annotated[bool, LIVE] = True
    """Kills in tracked systems or involving tracked characters."""
    system: Annotated[bool, LIVE] = True
    """A system was added to the map."""
    character: Annotated[bool, LIVE] = True
    """A character was added to tracking."""
    rally: Annotated[bool, LIVE] = True
    """A rally point was created."""

    def allows(self, kind: str) -> bool:
        """True when the master switch and the flag for ``kind`` are both on."""
        return self.enabled and bool(getattr(self, kind))


class ConsoleSettings(Section):
    """Process-wide behaviour."""

    data_dir: Annotated[
        Path | None, Restart("the store is opened and locked in this directory at start")
    ] = None
    """Where the SQLite database lives; default: the XDG data dir."""
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], LIVE] = "INFO"
    """Threshold for log lines."""
    dry_run: Annotated[bool, LIVE] = False
    """Render and log notifications without sending them."""
    startup_suppression_seconds: Annotated[float, LIVE] = Field(default=30.0, ge=0)
    """After start, mute every type except rally for this long (map events replayed at connect)."""
    max_killmail_age_seconds: Annotated[
        float,
        Restart(
            "the killstream gap backfill takes its reach from it when it starts (the notify"
            " gate reads the new value at once)"
        ),
    ] = Field(default=3600.0, gt=0)
    """Kills older than this (by kill time) are not notified."""
    theme: Annotated[str, LIVE] = "wanderer-dark"
    """TUI theme name."""
    retention_days: Annotated[float, LIVE] = Field(default=30.0, gt=0)
    """Stored events and finished notifications older than this are deleted (hourly)."""
    stop_grace_seconds: Annotated[float, LIVE] = Field(default=5.0, ge=0, le=60)
    """On SIGTERM/SIGINT/SIGHUP, how long Discord requests in flight may take to finish (keep
    it under systemd's TimeoutStopSec); one still open then is recorded as uncertain."""
    event_loop: Annotated[
        Literal["auto", "asyncio", "uvloop"], Restart("the engine's event loop is made at start")
    ] = "auto"
    """The event loop the engine runs on: ``auto`` takes uvloop where it is installed (a
    dependency on Linux and macOS: less of the loop's own CPU per webhook request of a large
    fan-out), else asyncio's; ``asyncio`` keeps asyncio's loop; ``uvloop`` insists on it."""
    map_load_concurrency: Annotated[
        int, Restart("the map feeds take it when they are built, at start")
    ] = Field(default=8, ge=1, le=1000)
    """Maps loaded over REST at the same time (at start, and when a stream reloads its map after
    a long outage); each first load also waits a small random delay (up to 1 s with many maps),
    so a restart with many maps does not hammer the map server."""


class StoreSettings(Section):
    """Where the engine keeps its event log, stream cursors, outbox, tenants and config history."""

    url: Annotated[
        SecretStr | None,
        Restart("the store is opened (and its schema migrated) at start"),
    ] = None
    """A PostgreSQL database (``postgresql://USER:PASSWORD@HOST:5432/DBNAME``) instead of the
    SQLite file in the data directory (the default, when unset). A secret: it may carry a
    password, so it is masked in logs and the console (``WANDERER_CONSOLE_STORE__URL`` or
    ``--database URL`` keep it out of the file)."""

    @field_validator("url")
    @classmethod
    def _postgresql_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        scheme = value.get_secret_value().strip().partition("://")[0].lower()
        if scheme not in ("postgresql", "postgres"):
            raise ValueError(
                "must be a PostgreSQL URL: postgresql://USER:PASSWORD@HOST:5432/DBNAME"
                " (unset for the SQLite file in the data directory)"
            )
        return SecretStr(value.get_secret_value().strip())


class ClusterSettings(Section):
    """Several instances on one PostgreSQL database (``[store] url``): how long a map's lease
    lasts. Without PostgreSQL the engine runs alone (SQLite, one engine per data directory)."""

    lease_seconds: Annotated[
        float, Live("the lease heartbeat reads it at every renewal and acquisition")
    ] = Field(default=15.0, ge=2.0, le=600.0)
    """How long a map's lease lasts without a renewal: an instance that dies or stalls loses its
    maps this long after its last heartbeat, and another instance takes them over then. Leases
    are renewed every third of it. Shorter: faster takeover, more database writes (one per
    instance per heartbeat)."""


class ServerSettings(Section):
    """The HTTP surface: ``/health``, ``/ready``, ``/metrics``, the ingest API and webhooks.

    Its read deadlines and connection caps also guard the control endpoint's TCP listener
    (``[control] listen``), which takes them when it starts."""

    enabled: Annotated[bool, RESTART_SERVER] = False
    """Serve HTTP inside the engine's process (off by default: it is a write surface)."""
    host: Annotated[str, RESTART_SERVER] = "127.0.0.1"
    """Address to bind; loopback by default, put a TLS proxy in front for anything else."""
    port: Annotated[int, RESTART_SERVER] = Field(default=8787, ge=0, le=65535)
    """TCP port (0 picks a free one)."""
    header_timeout_seconds: Annotated[float, RESTART_SERVER] = Field(default=10.0, gt=0, le=300)
    """A client must finish a request's headers this soon after connecting (or after the previous
    response on a kept-alive connection); a client that sends nothing or dribbles is closed."""
    body_timeout_seconds: Annotated[float, RESTART_SERVER] = Field(default=30.0, gt=0, le=600)
    """A client must finish a request's body this soon after its headers, else it is closed."""
    keep_alive_seconds: Annotated[int, RESTART_SERVER] = Field(default=5, ge=1, le=300)
    """An idle kept-alive connection is closed after this long."""
    max_connections: Annotated[int, RESTART_SERVER] = Field(default=256, ge=1, le=65536)
    """Open connections at most, and never more than a quarter of the process's file descriptor
    limit (the rest stays with the engine's outbound connections). At the cap a new connection
    replaces the one that has waited longest on its client; 503 only when all are busy."""
    max_connections_per_client: Annotated[int, RESTART_SERVER] = Field(default=0, ge=0, le=65536)
    """Open connections per client address at most (503 over it); 0 = no per-client cap. Leave
    it 0 behind a reverse proxy on the same host: every client then has the proxy's address."""
    refusal_log_interval_seconds: Annotated[float, RESTART_SERVER] = Field(
        default=60.0, ge=0, le=86400
    )
    """A refused request, a client disconnect or a closed connection is logged once per client
    per this many seconds; the next line says how many were suppressed (each is counted)."""
    http_parser: Annotated[Literal["auto", "httptools", "h11"], RESTART_SERVER] = "auto"
    """The HTTP/1.1 parser: ``auto`` is ``httptools`` (uvicorn's C parser, the cheaper per
    request) when installed, else ``h11``. Both apply the same deadlines, caps and limits."""


class ControlSettings(Section):
    """The control endpoint an attached console (``wanderer-console attach``) talks to."""

    socket: Annotated[bool, RESTART_CONTROL] = True
    """Serve it on ``control.sock`` in the data directory (mode 0600: the engine's user only)."""
    listen: Annotated[str | None, RESTART_CONTROL] = None
    """Also serve it on TCP (``"127.0.0.1:8788"``), bearer token required: create the token
    with ``wanderer-console control token`` (stored hashed; shown once)."""
    client_buffer_frames: Annotated[
        int, Live("read when a console attaches: one attached already keeps its buffer")
    ] = Field(default=16, ge=1, le=1024)
    """Frames kept for a client that reads slowly; older ones are dropped and counted."""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be "HOST:PORT", for example "127.0.0.1:8788"')
        return value


class TracingSettings(Section):
    """OpenTelemetry tracing of each event, source to Discord (``pip install
    'wanderer-console[otel]'``; docs/operations/monitoring.md#tracing). The standard ``OTEL_*``
    variables apply too: ``OTEL_SDK_DISABLED=true`` turns it off, ``OTEL_TRACES_SAMPLER`` (with
    ``OTEL_TRACES_SAMPLER_ARG``) replaces ``sampling_ratio``, ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` name the service, ``OTEL_EXPORTER_OTLP_*`` configure the OTLP
    exporter."""

    enabled: Annotated[bool, RESTART_TRACING] = False
    """Trace events (needs the ``otel`` extra; without it the engine logs why and runs on
    untraced)."""
    sampling_ratio: Annotated[float, RESTART_TRACING] = Field(default=0.1, ge=0.0, le=1.0)
    """Share of new traces recorded (drawn per event, or per ingest request, before any span is
    made: the others cost what they cost untraced); an incoming ``traceparent`` decides for its
    own trace."""
    exporter: Annotated[Literal["otlp", "console", "none"], RESTART_TRACING] = "otlp"
    """Where spans go: ``otlp`` (OTLP over HTTP, the ``otlp`` extra; endpoint from
    ``OTEL_EXPORTER_OTLP_ENDPOINT``, default ``http://localhost:4318``), ``console`` (JSON on
    stderr) or ``none`` (trace ids in the logs only)."""
    service_name: Annotated[str, RESTART_TRACING] = Field(default="wanderer-console", min_length=1)
    """The ``service.name`` resource attribute (``OTEL_SERVICE_NAME`` wins when set)."""


class StatsdSettings(Section):
    """Send the ``/metrics`` counters, gauges and timings to a StatsD daemon over UDP."""

    address: Annotated[str | None, RESTART_STATSD] = None
    """``"HOST:PORT"`` of the StatsD daemon (``"127.0.0.1:8125"``); unset: nothing is sent."""
    prefix: Annotated[str, RESTART_STATSD] = Field(
        default="wanderer_console", pattern=r"^[A-Za-z0-9_.-]*$"
    )
    """Put before every metric name with a dot (empty: none)."""
    tags: Annotated[Literal["none", "dogstatsd", "graphite"], RESTART_STATSD] = "dogstatsd"
    """How labels travel: ``dogstatsd`` (``|#source:api``), ``graphite`` (``;source=api`` in the
    name) or ``none`` (each label's value appended to the name as a dotted segment)."""
    interval_seconds: Annotated[float, RESTART_STATSD] = Field(default=10.0, ge=0.1, le=3600)
    """How often the registry is read and sent (counters as the increase since the last send)."""
    max_datagram_bytes: Annotated[int, RESTART_STATSD] = Field(default=1432, ge=512, le=65_000)
    """Lines are packed into datagrams of at most this size (1432 fits an Ethernet MTU)."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError('must be "HOST:PORT", for example "127.0.0.1:8125"')
        return value


class DiscordSettings(Section):
    """Discord API access shared by every map."""

    api_url: Annotated[HttpUrl, LIVE] = "https://discord.com/api/v10"
    """Base URL of the Discord REST API (bot transport)."""
    bot_token: Annotated[BotToken, LIVE] = None
    """Fallback bot token for maps without their own."""
    username: Annotated[WebhookUsername, LIVE] = "Wanderer"
    """Name shown on webhook messages (1-80 characters; no "discord", "clyde", @ # : ```)."""
    request_timeout_seconds: Annotated[float, LIVE] = Field(default=10.0, gt=0)
    """Per-request timeout."""
    channel_messages_per_minute: Annotated[int, LIVE] = Field(default=30, ge=1)
    """Messages per minute per channel (Discord allows about 30 for webhooks)."""
    max_delivery_age_hours: Annotated[float, LIVE] = Field(default=24.0, gt=0)
    """A notification is retried through outages (5xx, timeouts, 429) until it is this old,
    counted from when it was queued or from an operator's ``outbox retry`` of it."""
    uncertain_retry_seconds: Annotated[float, LIVE] = Field(default=10.0, ge=0, le=3600)
    """Wait before re-sending a webhook message whose first send had no known outcome (it may
    post twice; counted in wc_delivery_uncertain_total). Bot messages use a nonce instead."""

    # -- the bot's gateway (issue 21): slash commands, voice mentions, status -------------------
    application_id: Annotated[ApplicationId, RESTART_GATEWAY] = ""
    """The bot's application id (``DISCORD_APPLICATION_ID``): with ``bot_token`` set, the
    engine connects to the gateway and registers the ``/notifier`` slash commands."""
    guild_id: Annotated[GuildId, RESTART_GATEWAY] = ""
    """The guild (``DISCORD_GUILD_ID``) whose voice channels are read for voice mentions and
    where the slash commands are registered (empty: registered globally)."""
    command_role_id: Annotated[RoleId, LIVE] = ""
    """Members need this role for ``/notifier pause|resume`` (empty: nobody may use them)."""
    voice_mentions: Annotated[bool, LIVE] = False
    """Priority-system and rally notifications ping the people in the guild's voice channels
    (AFK channel excluded) instead of ``@here`` (``VOICE_PARTICIPANT_NOTIFICATIONS_ENABLED``)."""
    fallback_to_here: Annotated[bool, LIVE] = False
    """With ``voice_mentions``: ``@here`` when nobody is in voice (``FALLBACK_TO_HERE_ENABLED``)."""
    status_messages: Annotated[bool, LIVE] = False
    """Post an hourly status line (``STATUS_MESSAGES_ENABLED``) to ``status_channel_id``, else
    to the first map's primary channel."""
    status_channel_id: Annotated[ChannelId, LIVE] = ""
    """Where the hourly status line goes (empty: the first map's ``channel_id``)."""


class EsiSettings(Section):
    """EVE Swagger Interface, used to resolve names."""

    url: Annotated[HttpUrl, LIVE] = "https://esi.evetech.net"
    """ESI base URL."""
    user_agent: Annotated[
        UserAgent,
        Restart(
            "every HTTP client (map, killstream, Discord, ESI) is built with it as its User-Agent"
        ),
    ] = "WandererConsole/0.1 (+https://github.com/wanderer-console; ops@example.org)"
    """User-Agent with a contact, as ESI asks."""
    enabled: Annotated[
        bool, Restart("the name cache is built with or without an ESI client at start")
    ] = True
    """Resolve missing names through ESI."""
    cache_entries: Annotated[int, Restart("the name cache is sized when it is built, at start")] = (
        Field(default=50_000, ge=100, le=1_000_000)
    )
    """Names kept per kind (pilots, corporations, alliances, systems, types). A thousand maps
    track some 20,000 pilots: a cache smaller than what is tracked evicts names a restart warmed
    and asks ESI for them again. About 1 KB an entry when full."""


class KillstreamSettings(Section):
    """The wanderer-kills service (Phoenix WebSocket and REST)."""

    enabled: Annotated[
        bool,
        Restart(
            "the killstream sockets are opened once they are needed; a change neither opens"
            " nor closes one"
        ),
    ] = True
    """Connect to the killstream."""
    websocket_url: Annotated[WsUrl, RESTART_SOCKET] = "ws://localhost:4004"
    """Socket base; ``/socket/websocket?vsn=2.0.0`` is appended."""
    rest_url: Annotated[HttpUrl, RESTART_POLLER] = "http://localhost:4004"
    """REST base (fallback polling)."""
    client_identifier: Annotated[str, RESTART_SOCKET] = Field(
        default="wanderer-console", max_length=32
    )
    """Name the server logs for this client."""
    heartbeat_seconds: Annotated[float, RESTART_SOCKET] = Field(default=30.0, gt=0, le=30)
    """Phoenix heartbeat interval; the server drops idle sockets after 60 s."""
    fallback_after_seconds: Annotated[float, RESTART_POLLER] = Field(default=60.0, ge=0)
    """Poll the REST API for the tracked systems once the socket has been down this long."""
    fallback_interval_seconds: Annotated[float, RESTART_POLLER] = Field(default=30.0, gt=0)
    """Seconds between REST polling rounds while the socket stays down."""
    backfill_overlap_seconds: Annotated[
        float,
        Restart(
            "the killstream's REST fallback poller takes it when it starts (start-up"
            " suppression reads the new value at once)"
        ),
    ] = Field(default=300.0, ge=0)
    """After a gap (a restart, a reconnect) the REST backfill reaches back this far before the
    last moment the stream was seen, for kills published late or read but not yet stored; after
    a restart, kills that recent are not muted by start-up suppression either."""
    backfill_limit_per_system: Annotated[int, RESTART_POLLER] = Field(default=200, ge=1, le=1000)
    """Most kills one gap backfill asks the REST API for, per system."""
    backfill_timeout_seconds: Annotated[float, RESTART_POLLER] = Field(default=60.0, gt=0)
    """A gap backfill stops after this long; the systems it did not reach are tried again."""
    max_frame_bytes: Annotated[int, RESTART_SOCKET] = Field(default=4 * 1024 * 1024, ge=65_536)
    """Largest frame read (a killmail is tens of KiB); a bigger one resets the socket, counted."""
    max_systems_per_socket: Annotated[int, RESTART_SHARDS] = Field(default=10_000, ge=1, le=10_000)
    """Systems one socket follows (the server's documented limit); more open more sockets. A
    server that refuses a join as over its own limit teaches a lower one for the run."""
    max_characters_per_socket: Annotated[int, RESTART_SHARDS] = Field(
        default=50_000, ge=1, le=50_000
    )
    """Characters one socket follows (the server's documented limit), as for systems."""
    recent_kills: Annotated[bool, Restart("the recent-kills reader is built (or not) at start")] = (
        True
    )
    """Add the "Recent Kills" field (up to three kills of the last 24 hours, asked of the REST
    API at ``rest_url``) to new-system notifications; off where no REST API is served."""


class R2z2Settings(Section):
    """zKillboard's public R2Z2 killmail feed (PROTOCOLS.md §8): one poller per IP."""

    enabled: Annotated[bool, Restart("the R2Z2 poller is started (or not) at start")] = False
    """Poll R2Z2 (alongside or instead of the killstream; kills are de-duplicated)."""
    url: Annotated[HttpUrl, RESTART_R2Z2] = "https://r2z2.zkillboard.com"
    """Feed base; ``/ephemeral/sequence.json`` and ``/ephemeral/<n>.json`` are read."""
    user_agent: Annotated[UserAgent, RESTART_R2Z2] = (
        "WandererConsole/0.1 (+https://github.com/wanderer-console; ops@example.org)"
    )
    """``<app>/<version> (+<url>; <contact>)``: R2Z2 403s a blank User-Agent."""
    max_age_hours: Annotated[float, RESTART_R2Z2] = Field(default=1.0, ge=0)
    """Skip kills older than this (late and delayed zKillboard posts); 0 keeps all."""


class MapDiscord(Section):
    """Where one map's notifications go. Webhooks win over bot channels for a type."""

    bot_token: Annotated[BotToken, LIVE] = None
    """Bot token for this map; falls back to ``discord.bot_token``."""
    channel_id: Annotated[ChannelId, LIVE] = ""
    """Primary channel; every missing per-type channel falls back to it."""
    system_kill_channel_id: Annotated[ChannelId, LIVE] = ""
    """Kills in tracked systems."""
    character_kill_channel_id: Annotated[ChannelId, LIVE] = ""
    """Kills involving tracked characters or focus corporations."""
    system_channel_id: Annotated[ChannelId, LIVE] = ""
    """New systems."""
    character_channel_id: Annotated[ChannelId, LIVE] = ""
    """New characters."""
    rally_channel_id: Annotated[ChannelId, LIVE] = ""
    """Rally points."""
    webhook_url: Annotated[WebhookUrl, LIVE] = None
    """Primary webhook; per-type webhooks fall back to it."""
    system_kill_webhook_url: Annotated[WebhookUrl, LIVE] = None
    """Webhook for kills in tracked systems."""
    character_kill_webhook_url: Annotated[WebhookUrl, LIVE] = None
    """Webhook for kills involving tracked characters or focus corporations."""
    system_webhook_url: Annotated[WebhookUrl, LIVE] = None
    """Webhook for new systems."""
    character_webhook_url: Annotated[WebhookUrl, LIVE] = None
    """Webhook for new characters."""
    rally_webhook_url: Annotated[WebhookUrl, LIVE] = None
    """Webhook for rally points."""
    rally_group_ids: Annotated[list[RoleId], LIVE] = Field(default_factory=list)
    """Role ids mentioned (``<@&id>``) on rally notifications."""
    text_only: Annotated[
        list[Literal["system_kill", "character_kill", "system", "character", "rally"]], LIVE
    ] = Field(default_factory=list)
    """Routes whose target gets the plain-text form instead of embeds (title, description,
    fields and footer as lines of text; mentions kept): any of ``system_kill``,
    ``character_kill``, ``system``, ``character``, ``rally``."""

    def has_any_target(self) -> bool:
        """True when at least one webhook or channel is configured."""
        return any(
            getattr(self, name)
            for name in type(self).model_fields
            if name.endswith(("_url", "channel_id"))
        )


class DedupTtls(Section):
    """How long a notification of the same thing is suppressed, per type (seconds; 0: never).

    Kills need no TTL: each killmail id is notified once per map, durably.
    """

    system: Annotated[float, LIVE] = Field(default=900.0, ge=0)
    """The same system added again within this time is not notified again."""
    character: Annotated[float, LIVE] = Field(default=900.0, ge=0)
    """The same character added again within this time is not notified again."""


class MapSettings(Section):
    """One Wanderer map: a tenant with its own key, targets and flags."""

    url: Annotated[HttpUrl, RESTART_MAP_FEED]
    """Wanderer base URL (scheme://host[:port])."""
    slug: Annotated[str, RESTART_MAP_FEED] = ""
    """Map slug or UUID on the server; defaults to the section name."""
    name: Annotated[str, LIVE] = ""
    """Display name; defaults to the slug."""
    api_key: Annotated[SecretStr, RESTART_MAP_FEED]
    """The map's public API key (Bearer for SSE and REST)."""
    enabled: Annotated[bool, Restart("the map's feed is started (or not) at start")] = True
    """Connect to this map."""
    notifications: NotificationFlags = Field(default_factory=NotificationFlags)
    """Per-map switches, ANDed with the global ones."""
    discord: MapDiscord = Field(default_factory=MapDiscord)
    """Targets."""
    filters: MapFilters = Field(default_factory=MapFilters)
    """Kill filters."""
    trackers: Annotated[TrackerList, LIVE] = Field(default_factory=list)
    """Further kill feeds (``[[maps.<key>.trackers]]``), each with its own clauses, target,
    ping and colour (docs/trackers.md)."""
    dedup_ttl_seconds: DedupTtls = Field(default_factory=DedupTtls)
    """Per-type deduplication windows (``DEDUPLICATION_TTL_SECONDS`` sets them all)."""
    webhook_secret: Annotated[SecretStr | None, LIVE] = None
    """Secret of the map's webhook subscription (``rotate-secret``); enables the receiver."""
    sse_max_line_bytes: Annotated[int, RESTART_MAP_FEED] = Field(default=1024 * 1024, ge=4096)
    """Longest SSE line kept (an event is a few KiB); a longer one is skipped unbuffered."""
    sse_max_event_bytes: Annotated[int, RESTART_MAP_FEED] = Field(default=1024 * 1024, ge=4096)
    """Largest SSE event (its ``data`` lines together); a bigger one is skipped, counted."""
    sse_events: Annotated[list[str] | None, RESTART_MAP_FEED] = None
    """Map event types the stream asks the server for (its ``events`` filter). Unset: the types
    the console acts on (systems added, deleted and renamed, characters added and removed,
    rally points), so connections, signatures, ACL changes, pilot movements and ``map_kill``
    batches are never sent; ``["*"]``: every type (no filter)."""

    @field_validator("sse_events")
    @classmethod
    def _known_event_types(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        cleaned = [item.strip() for item in value if item.strip()]
        unknown = [t for t in cleaned if t != "*" and t not in KNOWN_MAP_EVENT_TYPES]
        if unknown:
            known = ", ".join(sorted(KNOWN_MAP_EVENT_TYPES))
            raise ValueError(
                f'unknown map event types {unknown} (known: {known}, or "*" for every type)'
            )
        if not cleaned:
            raise ValueError('must name at least one event type (or "*" for every type)')
        return cleaned

    @field_validator("api_key")
    @classmethod
    def _api_key_present(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


class JaniceSettings(Section):
    """Notable loot (Wanderer Notifier's ``NOTABLE_ITEMS_ENABLED`` and ``JANICE_API_TOKEN``): a
    notified kill's dropped items, from its ESI killmail, appraised by Janice; the abyssal ones
    and those worth at least ``threshold_isk`` are listed in the kill's description."""

    enabled: Annotated[bool, LIVE] = False
    """List notable dropped items on kills (``NOTABLE_ITEMS_ENABLED``; needs ``api_token``)."""
    api_token: Annotated[SecretStr | None, LIVE] = None
    """Janice API key, sent as ``X-ApiKey`` (``JANICE_API_TOKEN``). A secret."""
    url: Annotated[HttpUrl, LIVE] = "https://janice.e-351.com"
    """Janice base URL (``JANICE_API_URL``)."""
    threshold_isk: Annotated[float, LIVE] = Field(default=50_000_000.0, ge=0)
    """An item line worth at least this much is notable (``NOTABLE_ITEMS_THRESHOLD_ISK``)."""
    limit: Annotated[int, LIVE] = Field(default=5, ge=1, le=20)
    """Most items listed (``NOTABLE_ITEMS_LIMIT``)."""

    @property
    def active(self) -> bool:
        """On, with a token."""
        token = self.api_token
        return self.enabled and token is not None and bool(token.get_secret_value().strip())


RESTART_HOSTED: Final = Restart("the hosted maps' refresher takes it when it starts, at start")


class HostedSettings(Section):
    """Hosted / API multi-map mode (Wanderer Notifier's ``PLUGIN_NOTIFIER_API_KEY``): the maps
    and their Discord settings come from the map server's notifier-config endpoint
    (``GET {url}/api/plugins/notifier/config``), pulled at start, every ``refresh_seconds`` and
    on demand from the console; maps are started, changed and stopped by difference while the
    engine runs. A map of the file (``[maps.<key>]``) wins over a hosted map of the same key."""

    api_key: Annotated[SecretStr | None, RESTART_HOSTED] = None
    """Bearer for the notifier-config endpoint (``PLUGIN_NOTIFIER_API_KEY``); set: hosted mode."""
    url: Annotated[HttpUrl | None, RESTART_HOSTED] = None
    """The map server (``MAP_URL``; only its origin is used)."""
    map_api_key: Annotated[SecretStr | None, RESTART_HOSTED] = None
    """The map API key every hosted map streams with (``MAP_API_KEY``, as the notifier does)."""
    refresh_seconds: Annotated[float, LIVE] = Field(default=300.0, gt=0)
    """How often the maps' configuration is pulled (the notifier: every 5 minutes)."""
    channel_id: Annotated[ChannelId, LIVE] = ""
    """Primary channel of a hosted map that names none (``DISCORD_CHANNEL_ID``)."""

    @property
    def enabled(self) -> bool:
        """True when hosted mode is on (an API key is set)."""
        return self.api_key is not None and bool(self.api_key.get_secret_value().strip())

    @model_validator(mode="after")
    def _complete(self) -> HostedSettings:
        if self.enabled:
            missing = [n for n in ("url", "map_api_key") if getattr(self, n) is None]
            if missing:
                raise ValueError(
                    "hosted mode (api_key / PLUGIN_NOTIFIER_API_KEY) also needs "
                    + " and ".join(missing)
                    + " (MAP_URL: the map server; MAP_API_KEY: the key every map streams with)"
                )
        return self


ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("wanderer_console_environ", default=None)
"""The environment the settings read; ``None`` means ``os.environ`` (tests pass their own)."""


class _MappingEnvSource(EnvSettingsSource):
    """The stock environment source, reading a given mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        if self.case_sensitive:
            return dict(self._environ)
        return {key.lower(): value for key, value in self._environ.items()}


class Settings(BaseSettings):
    """The whole configuration: the TOML file, overridden by ``WANDERER_CONSOLE_*`` variables.

    Nested keys use ``__``: ``WANDERER_CONSOLE_CONSOLE__DRY_RUN=true``. The notifier's legacy
    single-map variables are mapped separately (:mod:`wanderer_console.config.legacy_env`).
    """

    model_config = SettingsConfigDict(
        env_prefix="WANDERER_CONSOLE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    """Process-wide behaviour."""
    notifications: NotificationFlags = Field(default_factory=NotificationFlags)
    """Global switches; a map cannot turn on what these turn off."""
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    """Discord API access."""
    esi: EsiSettings = Field(default_factory=EsiSettings)
    """ESI access."""
    killstream: KillstreamSettings = Field(default_factory=KillstreamSettings)
    """Killstream access."""
    r2z2: R2z2Settings = Field(default_factory=R2z2Settings)
    """zKillboard R2Z2 feed (off by default)."""
    http: Annotated[
        dict[str, dict[str, float]],
        Restart("each service's HTTP client and its middleware chain are built once"),
    ] = Field(default_factory=dict)
    """Per-service overrides of the HTTP client (timeouts, retry, rate limit, breaker)."""
    maps: Annotated[
        dict[str, MapSettings],
        Restart("a map's feed is started at start: adding or removing a map needs a restart"),
    ] = Field(default_factory=dict)
    """One section per map, keyed by a short slug (the tenant id)."""
    janice: JaniceSettings = Field(default_factory=JaniceSettings)
    """Notable loot through Janice appraisals (off unless enabled and a token is set)."""
    hosted: HostedSettings = Field(default_factory=HostedSettings)
    """Hosted / API multi-map mode: maps pulled from the map server (off unless api_key)."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    """Where the engine's data lives (SQLite in the data directory unless ``url`` is set)."""
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    """Several instances sharing one PostgreSQL database (map leases)."""
    server: ServerSettings = Field(default_factory=ServerSettings)
    """The HTTP surface."""
    control: ControlSettings = Field(default_factory=ControlSettings)
    """Where an attached console reaches the running engine."""
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    """OpenTelemetry tracing (the ``otel`` extra)."""
    statsd: StatsdSettings = Field(default_factory=StatsdSettings)
    """The StatsD exporter (off unless ``address`` is set)."""
    cache: CacheSettings = Field(default_factory=CacheSettings)
    """Warming, pinning and refreshing the name cache's critical entries."""
    trends: TrendSettings = Field(default_factory=TrendSettings)
    """How long the per-minute trends are kept."""
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    """Alerts the console raises about itself (thresholds, durations, operations webhook)."""
    keymap: Annotated[dict[str, str], LIVE] = Field(default_factory=dict)
    """Console key overrides: binding id (``app.quit``, ``config.save``, …) → keys (``"f2"``)."""

    @field_validator("http")
    @classmethod
    def _http_overrides(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for service, overrides in value.items():
            if service not in DEFAULT_SERVICE_SETTINGS:
                known = ", ".join(sorted(DEFAULT_SERVICE_SETTINGS))
                raise ValueError(f"unknown service {service!r} (services: {known})")
            resolve_settings(service, overrides)  # raises with the bad key named
        return value

    @field_validator("maps")
    @classmethod
    def _slugs(cls, maps: dict[str, MapSettings]) -> dict[str, MapSettings]:
        for key in maps:
            if not _SLUG.match(key):
                raise ValueError(
                    f"map key {key!r} must be lower-case letters, digits, '-' or '_' (max 63)"
                )
        return maps

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        for key, map_settings in self.maps.items():
            if not map_settings.slug:
                map_settings.slug = key
            if not map_settings.name:
                map_settings.name = map_settings.slug
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment variables win over the file (which is passed as init data)."""
        environ = ENVIRON.get()
        if environ is not None:
            env_settings = _MappingEnvSource(settings_cls, environ)
        return (env_settings, init_settings)

    def redacted(self) -> dict[str, Any]:
        """A JSON-safe dump with every secret masked."""
        return self.model_dump(mode="json")


check_declared(Settings)  # its own fields too: every one is a section or says Live or Restart
