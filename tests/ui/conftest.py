"""Deterministic fixtures for the console tests: seeded snapshots, a frozen clock, the app factory.

Every app is built over a :class:`~tests.ui.fakes.SeededBackend` through one fixture,
:func:`backend_factory` (see there), by the :func:`make_app` fixture.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.ui.fakes import SeededBackend
from wanderer_console.console_api import ConsoleBackend
from wanderer_console.ui.app import WandererApp, build_app
from wanderer_console.ui.clock import FrozenClock
from wanderer_console.ui.model import RateSample, ThroughputHistory

NOW = 1_700_000_000.0
"""The frozen wall-clock time of every UI test."""
PRIMARY = "webhook:1200000002538501129"
"""Map alpha's primary webhook (every route but rally)."""
RALLY = "webhook:1200000002538501130"
"""Map alpha's rally webhook."""

HEALTHY: dict[str, Any] = {
    "version": "0.1.0",
    "started_at": NOW - 3725,
    "uptime": 3725.0,
    "connections": [
        {
            "name": "map:alpha",
            "kind": "map_sse",
            "state": "connected",
            "since": NOW - 3600,
            "last_event_at": NOW - 4,
            "reconnects": 0,
            "events": 1523,
            "heartbeat_rtt_ms": None,
            "last_error": None,
            "events_per_minute": 31.0,
            "quality": 100,
        },
        {
            "name": "killstream:systems",
            "kind": "killstream",
            "state": "connected",
            "since": NOW - 3590,
            "last_event_at": NOW - 12,
            "reconnects": 1,
            "events": 311,
            "heartbeat_rtt_ms": 23.4,
            "last_error": None,
            "events_per_minute": 6.0,
            "quality": 95,
        },
        {
            "name": "killstream:characters",
            "kind": "killstream",
            "state": "connected",
            "since": NOW - 3590,
            "last_event_at": NOW - 75,
            "reconnects": 0,
            "events": 42,
            "heartbeat_rtt_ms": 25.0,
            "last_error": None,
            "events_per_minute": 0.5,
            "quality": 100,
        },
    ],
    "queue_depth": 3,
    "delivery": {
        "paused": False,
        "targets": {
            PRIMARY: {
                "label": "alpha/primary",
                "url": "https://discord.com/api/webhooks/1200000002538501129/***",
                "pending": 0,
                "sent": 118,
                "sent_last_minute": 4,
                "rate_limited": 0,
                "disabled": None,
                "last_error": None,
            },
            RALLY: {
                "label": "alpha/rally",
                "url": "https://discord.com/api/webhooks/1200000002538501130/***",
                "pending": 1,
                "sent": 7,
                "sent_last_minute": 0,
                "rate_limited": 2,
                "disabled": None,
                "last_error": None,
            },
        },
    },
    "breakers": {
        "esi:esi.evetech.net": {
            "state": "closed",
            "failures": 0,
            "opened_at": None,
            "next_probe_at": None,
        },
        "discord:discord.com": {
            "state": "closed",
            "failures": 1,
            "opened_at": None,
            "next_probe_at": None,
        },
    },
    "cache": {
        "version": 1,
        "namespaces": {
            "system": {
                "hits": 2901,
                "misses": 80,
                "hit_ratio": 0.9731,
                "size": 412,
                "maxsize": 5000,
                "evictions": 0,
            },
            "character": {
                "hits": 1300,
                "misses": 300,
                "hit_ratio": 0.8125,
                "size": 1290,
                "maxsize": 2000,
                "evictions": 37,
            },
            "type": {
                "hits": 919,
                "misses": 5,
                "hit_ratio": 0.995,
                "size": 220,
                "maxsize": 5000,
                "evictions": 0,
            },
        },
        "hits": 5120,
        "misses": 311,
        "hit_ratio": 0.9427,
        "inflight": 2,
        "warming": {"total": 120, "done": 90, "failed": 3, "running": True},
    },
    "tracking": {"alpha": {"systems": 54, "characters": 12}},
    "counters": {
        "events_received": {"map": 1523, "killstream": 353},
        "notifications_queued": {"kill": 96, "system": 21, "character": 6, "rally": 2},
        "notifications_delivered": {"kill": 95, "system": 21, "character": 6, "rally": 2},
        "duplicates_suppressed": {"map": 5, "killstream": 17},
        "invalid_events": {},
        "unknown_event_types": 0,
        "delivery_failures": {},
        "errors": 0,
        "outbox": {"pending": 1, "sent": 125},
    },
}
"""A healthy engine."""


CHARS_ERROR = (
    "socket lost: [Errno 111] Connect call failed ('127.0.0.1', 4004) while opening"
    " ws://127.0.0.1:4004/socket/websocket after 7 reconnects in the last hour"
)
"""The failed killstream's last error in :func:`degraded_snapshot` (longer than any panel)."""


def degraded_snapshot() -> dict[str, Any]:
    """The healthy engine with a failed killstream, a reconnecting map and a disabled target."""
    snap = copy.deepcopy(HEALTHY)
    chars = snap["connections"][2]
    chars.update(
        state="failed",
        since=NOW - 95,
        reconnects=7,
        heartbeat_rtt_ms=None,
        last_error=CHARS_ERROR,
        url="ws://127.0.0.1:4004/socket/websocket",
        errors=9,
        errors_last_hour=7,
        error_since=NOW - 95,
        recent_errors=[
            {"at": NOW - 95 + 10 * n, "text": f"socket lost: [Errno 111] connect refused ({n})"}
            for n in range(4)
        ]
        + [{"at": NOW - 5, "text": CHARS_ERROR}],
    )
    chars.update(events_per_minute=0.0, quality=0)
    snap["connections"][0].update(
        state="reconnecting", since=NOW - 8, reconnects=3, events_per_minute=2.0, quality=35
    )
    snap["breakers"]["esi:esi.evetech.net"] = {
        "state": "open",
        "failures": 5,
        "opened_at": NOW - 20,
        "next_probe_at": NOW + 10,
        "reason": "5 failures in 30s, last: timeout",
        "recent": [
            {
                "at": NOW - 20,
                "text": "warning: http circuit breaker closed -> open (host=esi.evetech.net,"
                " reason=5 failures in 30s, last: timeout)",
            }
        ],
    }
    snap["breakers"]["zkill:zkillboard.com"] = {
        "state": "half_open",
        "failures": 3,
        "opened_at": NOW - 45,
        "next_probe_at": NOW,
    }
    rally = snap["delivery"]["targets"][RALLY]
    rally.update(
        pending=9,
        disabled="webhook deleted (404)",
        last_error="404 Not Found",
        disabled_since=NOW - 300,
        recent=[
            {
                "at": NOW - 300,
                "text": "warning: discord refused a target; its notifications wait until its"
                f" configuration changes (target={RALLY}, status=404)",
            }
        ],
    )
    snap["counters"]["errors"] = 4
    snap["counters"]["delivery_failures"] = {"not_found": 1, "rate_limited": 2}
    return snap


def delivery_fault_snapshot() -> dict[str, Any]:
    """The healthy engine whose store cannot write, under a Discord global pause, with the rally
    webhook dead (404) holding nine notifications and the primary one with two uncertain sends."""
    snap = copy.deepcopy(HEALTHY)
    delivery = snap["delivery"]
    delivery.update(
        global_pause_until=NOW + 42,
        store_fault={"reason": "database or disk is full", "since": NOW - 125, "failures": 6},
        unrecorded_outcomes=1,
    )
    delivery["targets"][PRIMARY].update(uncertain=2, last_uncertain_at=NOW - 90)
    delivery["targets"][RALLY].update(
        pending=9, disabled="404 Unknown Webhook", last_error="404 Unknown Webhook"
    )
    return snap


PAUSER = "tui:alice@laptop via socket"
"""Who paused the seeded paused engine (an attached console, over the control socket)."""
PAUSED_SINCE = NOW - 5400
"""When: an hour and a half before :data:`NOW` (2023-11-14 20:43:20 UTC)."""


def paused_engine(*, saved: bool = True, cluster: bool = False, **options: Any) -> SeededBackend:
    """The healthy engine, its delivery paused by :data:`PAUSER` since :data:`PAUSED_SINCE`
    (``saved``: the pause is kept across restarts; ``cluster``: it is the shared database's,
    holding every engine on it)."""
    engine = SeededBackend(HEALTHY, **options)
    engine.paused = True
    engine.pause = (PAUSER, PAUSED_SINCE, saved)
    engine.pause_cluster = cluster
    return engine


def seeded_history() -> ThroughputHistory:
    """Ten minutes of made-up, repeatable rates."""
    history = ThroughputHistory()
    for i in range(60):
        at = NOW - 600 + 10 * (i + 1)
        history.add(RateSample(at, 2.0 + (i % 7) * 0.5, (i % 5) * 0.3))
    return history


ACTOR = "tui:tester@console-host"
"""Who operates the console in the tests (sent with every operation)."""

BackendFactory = Callable[[SeededBackend], ConsoleBackend]
"""Turns the seeded engine into the backend the console is built over."""
AppFactory = Callable[..., WandererApp]


@pytest.fixture
def backend_factory() -> BackendFactory:
    """How the console reaches the seeded engine: in-process, the engine is the backend itself.

    The one place to change that: parametrise this fixture to put the real control socket (an
    attached ``RemoteBackend``) between the console and the :class:`SeededBackend`, and every test
    that builds its app with :func:`make_app` runs through it.
    """

    def direct(engine: SeededBackend) -> ConsoleBackend:
        return engine

    return direct


@pytest.fixture
def make_app(backend_factory: BackendFactory) -> AppFactory:
    """Builds the console over a seeded engine, frozen at :data:`NOW`, dark theme unless told.

    ``make_app(snapshot)`` seeds a new :class:`SeededBackend` with ``snapshot`` (default
    :data:`HEALTHY`) and ``**engine_options`` (``config_text=...``, ``settings=...``); pass
    ``engine=`` to build over one the test holds (to change what it serves, or to read the
    operations it recorded).
    """

    def build(
        snapshot: dict[str, Any] | None = None,
        *,
        engine: SeededBackend | None = None,
        theme: str = "wanderer-dark",
        **engine_options: Any,
    ) -> WandererApp:
        if engine is None:
            engine = SeededBackend(snapshot or HEALTHY, **engine_options)
        return build_app(
            backend_factory(engine),
            clock=FrozenClock(NOW),
            theme=theme,
            history=seeded_history(),
            actor=ACTOR,
        )

    return build


CONFIG_TEXT = """\
# Operator config: keep this comment.
[console]
theme = "wanderer-dark"

[notifications]
kill = true  # kills in tracked systems

[maps.alpha]
url = "http://127.0.0.1:1"
api_key = "alpha-api-key-123"
name = "Alpha"

[maps.alpha.discord]
webhook_url = "https://discord.com/api/webhooks/42/hook-token-xyz"
"""
"""A valid config file with two secrets (a map key and a webhook token) and comments."""
