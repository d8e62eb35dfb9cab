"""Two engines started on one database with a map's webhook changed while they were stopped.

The map's routing as it last ran is recorded per map, not per engine: the engine that holds
the map's lease compares it with the config, moves the dead webhook's backlog to the new one
and records the new routing; the other, which does not hold the lease, moves nothing, and when
it takes the map over later it finds the routing recorded, so nothing is moved (or sent) twice.
Real dispatchers (``build_dispatcher``) on the engine's running settings, a real lease of the
store (both backends), a fake Discord on a real socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import pytest

from tests.support import wait_for
from wanderer_console.cluster import resource_of
from wanderer_console.config.live import LiveSettings
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import Settings
from wanderer_console.config.routing import OPS_TENANT, ROUTES
from wanderer_console.delivery.dispatcher import Dispatcher, build_dispatcher
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.sim import AppServer, FakeDiscord, webhook_url
from wanderer_console.store.base import LeaseFence, Store
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.timeout(60)]

_CONFIG = """
[maps.home]
url = "http://127.0.0.1:9/map"
api_key = "k"
[maps.home.discord]
webhook_url = "{webhook}"
"""


class Gate:
    """The send gate of one engine: the leases the test hands it."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.fences: dict[str, LeaseFence] = {}

    def tenants(self) -> set[str]:
        return set(self.fences) | ({OPS_TENANT} if "home" in self.fences else set())

    def fence(self, tenant: str) -> LeaseFence | None:
        # The operations messages go under the first map's lease, as MapLeases carries them.
        return self.fences.get("home" if tenant == OPS_TENANT else tenant)

    def holds(self, fence: LeaseFence) -> bool:
        return fence in self.fences.values()

    def carried(self, tenant: str) -> list[str]:
        return [tenant, OPS_TENANT] if tenant == "home" else [tenant]


@contextlib.asynccontextmanager
async def _running(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def _discord() -> AsyncIterator[tuple[FakeDiscord, AppServer, HttpClient]]:
    """A fake Discord on a real socket, and the client both engines post through."""
    fake = FakeDiscord()
    server = AppServer(fake.app)
    await server.start()
    http = HttpClient("discord", metrics=Metrics(), timeout=5.0)
    try:
        yield fake, server, http
    finally:
        await http.aclose()
        await server.stop()


def _engines(
    store: Store, http: HttpClient, settings: Settings
) -> tuple[dict[str, Gate], Dispatcher, Dispatcher]:
    """Engines "a" and "b" on one database: their gates (no lease yet) and real dispatchers."""
    gates = {name: Gate(name) for name in ("a", "b")}
    a, b = (
        build_dispatcher(store, Metrics(), http, LiveSettings(settings), gate=gates[name])
        for name in ("a", "b")
    )
    return gates, a, b


def _lease(store: Store, gate: Gate) -> None:
    grant = store.acquire_lease(resource_of("home"), gate.instance_id, 600.0)
    assert grant is not None
    gate.fences["home"] = LeaseFence(resource_of("home"), gate.instance_id, grant.lease.token)


def _notes(target: Target, tag: str, count: int) -> list[Notification]:
    return [
        Notification(
            "home",
            NotificationType.KILL,
            f"{tag}{i}",
            target,
            {"content": "<@&1> rally", "embeds": [{"title": f"{tag} {i}"}]},
        )
        for i in range(count)
    ]


async def test_two_engines_started_with_a_changed_webhook_move_its_backlog_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wanderer_console")
    async with _discord() as (fake, server, http):
        old = Target(TargetKind.WEBHOOK, webhook_url(server.url, 3), "home")
        # What the engines left when they stopped: webhook 3 dead, three notifications held
        # for it, the map's routing as they ran it.
        store.enqueue(_notes(old, "held", 3))
        store.set_dead_target("home", old.key, reason="HTTP 404", fingerprint="f", now=1.0)
        assert store.record_routes("home", dict.fromkeys(ROUTES, old.key)) == {}
        settings, _ = parse_settings_text(
            _CONFIG.format(webhook=webhook_url(server.url, 5)), environ={}
        )
        gates, a, b = _engines(store, http, settings)
        _lease(store, gates["a"])  # "a" won the map's lease; "b" started all the same
        async with _running(a), _running(b):
            await wait_for(lambda: store.outbox_counts() == {"sent": 3}, 15)
            assert store.recorded_routes() == {"home": dict.fromkeys(ROUTES, "webhook:5")}
            # "a" stops and gives the lease back; "b" takes the map over, as its heartbeat does
            # (the runtime adopts the map's routing with the lease).
            gates["a"].fences.clear()
            store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
            _lease(store, gates["b"])
            b.adopt_routes(["home"])
            new = Target(TargetKind.WEBHOOK, webhook_url(server.url, 5), "home")
            store.enqueue(_notes(new, "later", 2))
            b.wake()
            await wait_for(lambda: store.outbox_counts() == {"sent": 5}, 15)
        titles = sorted(m.body["embeds"][0]["title"] for m in fake.messages_for("webhook:5"))
        assert titles == ["held 0", "held 1", "held 2", "later 0", "later 1"]
        assert fake.messages_for("webhook:3") == []
        moved = [r for r in caplog.records if "moved to the map's new target" in r.getMessage()]
        assert [r.__dict__["ctx"]["notifications"] for r in moved] == [3]


async def test_two_engines_started_with_a_changed_operations_webhook_move_its_alerts_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """The same for the operations webhook (``alerts.discord_webhook_url``) replaced while the
    engines were stopped: the engine whose map lease carries the operations messages moves
    their backlog to the new webhook, once; the other moves nothing."""
    caplog.set_level(logging.INFO, logger="wanderer_console")
    async with _discord() as (fake, server, http):
        old = Target(TargetKind.WEBHOOK, webhook_url(server.url, 7), OPS_TENANT)
        store.enqueue(
            [
                Notification(
                    OPS_TENANT,
                    NotificationType.ALERT,
                    f"alert{i}",
                    old,
                    {"content": "<@&1> rally", "embeds": [{"title": f"alert {i}"}]},
                )
                for i in range(2)
            ]
        )
        store.set_dead_target(OPS_TENANT, old.key, reason="HTTP 404", fingerprint="f", now=1.0)
        assert store.record_routes(OPS_TENANT, {"alerts": old.key}) == {}
        text = _CONFIG.format(webhook=webhook_url(server.url, 3))
        text += f'\n[alerts]\ndiscord_webhook_url = "{webhook_url(server.url, 8)}"\n'
        settings, _ = parse_settings_text(text, environ={})
        gates, a, b = _engines(store, http, settings)
        _lease(store, gates["a"])  # "a" holds the first map's lease: it carries the alerts
        async with _running(a), _running(b):
            await wait_for(lambda: store.outbox_counts() == {"sent": 2}, 15)
            assert store.recorded_routes()[OPS_TENANT] == {"alerts": "webhook:8"}
        titles = sorted(m.body["embeds"][0]["title"] for m in fake.messages_for("webhook:8"))
        assert titles == ["alert 0", "alert 1"]
        assert fake.messages_for("webhook:7") == []
        moved = [r for r in caplog.records if "moved to the map's new target" in r.getMessage()]
        assert [
            (r.__dict__["ctx"]["tenant"], r.__dict__["ctx"]["notifications"]) for r in moved
        ] == [(OPS_TENANT, 2)]
