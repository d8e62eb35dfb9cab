"""Per-service settings of the HTTP middleware chain (timeouts, retry, rate limit, breaker)."""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_SERVICE_SETTINGS", "HttpServiceSettings", "resolve_settings", "settings_for"]


class HttpServiceSettings(BaseModel):
    """How one service's client behaves; every field has a safe default."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    """A number must be finite (``[http.<service>]`` is TOML, which spells ``inf``)."""

    timeout_seconds: float = Field(default=10.0, gt=0)
    """Per-attempt timeout (connect, read, write, pool)."""
    transport: Literal["httpcore", "aiohttp", "h1"] = "httpcore"
    """What moves the bytes under the chain: httpx's own transport, aiohttp's HTTP/1.1
    connection pool (:mod:`~wanderer_console.http.aio`: about half the CPU per request), or the
    console's lean HTTP/1.1 pool for requests with bytes bodies and small answers
    (:mod:`~wanderer_console.http.h1`: about a quarter); the client's API is httpx each way."""
    max_connections: int = Field(default=100, ge=1)
    """Open connections at most (httpx's own default). A map stream holds one for its life, so
    the map client needs one per map plus room for REST calls."""
    keepalive_seconds: float = Field(default=5.0, gt=0)
    """How long an idle connection to a host is kept for the next request."""
    retry_attempts: int = Field(default=3, ge=1)
    """Total attempts, the first one included (1 = never retry)."""
    retry_max_seconds: float = Field(default=30.0, ge=0)
    """No retry is started when its wait would end later than this after the first attempt."""
    retry_backoff_base_seconds: float = Field(default=0.25, ge=0)
    retry_backoff_max_seconds: float = Field(default=10.0, ge=0)
    rate_per_second: float = Field(default=20.0, ge=0)
    """Sustained requests per second per host; 0 disables the token bucket. The map API is
    paced per map (each map is its own client of its server, with its own key)."""
    burst: int = Field(default=20, ge=1)
    breaker_failures: int = Field(default=5, ge=1)
    """Failures (5xx, transport errors) within the window that open the breaker."""
    breaker_window_seconds: float = Field(default=60.0, gt=0)
    breaker_cooldown_seconds: float = Field(default=30.0, ge=0)
    """Longest time the breaker stays open before one probe is let through."""
    breaker_probe_seconds: float = Field(default=0.0, ge=0)
    """First wait before a probe once the breaker opens, doubling after each failed probe up to
    ``breaker_cooldown_seconds`` (0: always the cool-down). A short one finds a recovered host
    within a second, at a bounded number of probes while it stays down."""
    breaker_fast_probes: int = Field(default=1, ge=1)
    """Probes let through every ``breaker_probe_seconds`` after the breaker opens before the wait
    starts doubling: a short outage is noticed within that interval, a long one is probed at
    most once per cool-down (1: doubling from the first failed probe)."""
    esi_error_remain_threshold: int = Field(default=10, ge=0)
    """Pause the host when ``X-ESI-Error-Limit-Remain`` falls below this."""
    learn_bucket_pauses: bool = True
    """Pause a route when Discord's ``X-RateLimit-*`` headers or a 429 say so. Off for the
    Discord client itself: its one pacer is the dispatcher (``delivery/``), which reads the same
    headers per target and knows which message waits."""


DEFAULT_SERVICE_SETTINGS: Final[dict[str, HttpServiceSettings]] = {
    # The map: REST loads and the SSE connect; a self-hosted map is small, so be gentle.
    "map": HttpServiceSettings(
        timeout_seconds=15.0,
        retry_attempts=3,
        retry_max_seconds=30.0,
        rate_per_second=10.0,
        burst=20,
        # Every map's SSE stream keeps a connection open: with httpx's 100 a 100th map never
        # streamed and REST calls waited for a free connection, then failed.
        max_connections=100_000,
    ),
    # ESI: 100 errors / 60 s are allowed globally, 420 beyond that (the limiter handles it).
    "esi": HttpServiceSettings(
        timeout_seconds=10.0,
        retry_attempts=3,
        retry_max_seconds=20.0,
        rate_per_second=20.0,
        burst=40,
    ),
    # Janice (notable loot appraisals): one call per notified kill with dropped items.
    "janice": HttpServiceSettings(
        timeout_seconds=10.0,
        retry_attempts=2,
        retry_max_seconds=10.0,
        rate_per_second=2.0,
        burst=5,
    ),
    # Discord: 50 req/s global per IP; buckets come from headers. POSTs are not retried by the
    # chain unless marked idempotent (the outbox dispatcher owns delivery retries).
    "discord": HttpServiceSettings(
        timeout_seconds=10.0,
        # One request per delivered message: the cheapest transport, and a connection kept
        # for a while between notifications (no new TCP and TLS handshake for each one).
        transport="h1",
        keepalive_seconds=30.0,
        retry_attempts=3,
        retry_max_seconds=30.0,
        rate_per_second=40.0,
        burst=10,
        # Probe early and often while Discord fails, so a recovered Discord is used at once
        # instead of after a long cool-down: every 0.25 s for the first 40 probes (10 s of
        # outage), then 0.5 s, then once a second. At most 630 probes in 10 minutes of
        # outage (+5 failures to open): 6 % of the 10,000 invalid requests Discord bans an IP
        # for, and the probes' 5xx answers are not even counted among those (401/403/429).
        breaker_probe_seconds=0.25,
        breaker_fast_probes=40,
        breaker_cooldown_seconds=1.0,
        learn_bucket_pauses=False,
    ),
    "killstream": HttpServiceSettings(
        timeout_seconds=10.0,
        retry_attempts=3,
        retry_max_seconds=30.0,
        rate_per_second=5.0,
        burst=10,
    ),
    # zKillboard R2Z2 etiquette: strictly sequential, at most ~10 requests per second.
    "zkillboard": HttpServiceSettings(
        timeout_seconds=10.0,
        retry_attempts=2,
        retry_max_seconds=60.0,
        retry_backoff_base_seconds=6.0,
        retry_backoff_max_seconds=60.0,
        rate_per_second=5.0,
        burst=1,
        breaker_cooldown_seconds=60.0,
    ),
}


def settings_for(service: str) -> HttpServiceSettings:
    """The default settings of ``service`` (generic defaults for an unknown name)."""
    return DEFAULT_SERVICE_SETTINGS.get(service) or HttpServiceSettings()


def resolve_settings(
    service: str, overrides: dict[str, float | int] | None = None
) -> HttpServiceSettings:
    """The service's defaults with the operator's ``[http.<service>]`` keys applied (validated)."""
    base = settings_for(service)
    if not overrides:
        return base
    return HttpServiceSettings.model_validate({**base.model_dump(), **overrides})
