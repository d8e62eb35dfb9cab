"""Map leases in one process: fair shares, hand-overs, lost leases, fencing of the dispatcher.

:class:`~wanderer_console.cluster.MapLeases` instances share one store (each backend: the
statements are the same) and are ticked by hand, their hooks recorded; the dispatcher runs
against the fake Discord on a real socket with a gate the test controls. A runtime on
PostgreSQL shows its leases in the console's snapshot and in ``/ready``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.store.pgtest import fresh_schema
from tests.support import wait_for
from wanderer_console.cluster import MapLeases, resource_of
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import Settings
from wanderer_console.config.routing import OPS_TENANT
from wanderer_console.console_api import EngineSnapshot
from wanderer_console.delivery.discord import DiscordSender
from wanderer_console.delivery.dispatcher import Dispatcher, ResolvedTarget
from wanderer_console.delivery.outcomes import OutcomeJournal
from wanderer_console.delivery.policy import DeliveryPolicy, TargetState
from wanderer_console.delivery.targets import DeadTargets, recover_in_flight
from wanderer_console.domain.clock import FrozenClock
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.runtime import Runtime
from wanderer_console.sim import AppServer, FakeDiscord
from wanderer_console.store.backends import open_store
from wanderer_console.store.base import (
    InstanceInfo,
    LeaseFence,
    LeaseGrant,
    Store,
    StoreLocation,
)
from wanderer_console.telemetry.metrics import Metrics

MAPS = ("one", "two", "three")
BOT = "cluster-test-bot"


def _settings(maps: tuple[str, ...] = MAPS) -> Settings:
    text = "[cluster]\nlease_seconds = 30\n" + "".join(
        f'[maps.{key}]\nurl = "http://127.0.0.1:9"\nslug = "{key}"\napi_key = "k"\n' for key in maps
    )
    settings, _ = parse_settings_text(text, environ={})
    return settings


@dataclass
class Hooks:
    """Records what a :class:`MapLeases` asked of its runtime."""

    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    grants: dict[str, LeaseGrant] = field(default_factory=dict)
    kept_fences: dict[str, LeaseFence] = field(default_factory=dict)
    retired: list[tuple[str, LeaseFence]] = field(default_factory=list)

    def start(self, tenant: str, grant: LeaseGrant, fence: LeaseFence) -> None:
        self.started.append(tenant)
        self.grants[tenant] = grant

    async def stop(self, tenant: str) -> None:
        self.stopped.append(tenant)

    def kept(self, fences: dict[str, LeaseFence]) -> None:
        self.kept_fences = dict(fences)

    def retire(self, tenant: str, fence: LeaseFence) -> None:
        self.retired.append((tenant, fence))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _leases(store: Store, name: str, settings: Settings, clock: Clock) -> tuple[MapLeases, Hooks]:
    leases = MapLeases(
        lambda: settings,
        store,
        instance=InstanceInfo(name, "host", 1, "test", 1.0),
        active=True,
        clock=clock,
        settle=0.0,
    )
    hooks = Hooks()
    leases.bind(hooks)
    return leases, hooks


async def test_instances_share_the_maps_fairly_and_hand_the_surplus_over(store: Store) -> None:
    settings, clock = _settings(), Clock()
    a, a_hooks = _leases(store, "a", settings, clock)
    b, b_hooks = _leases(store, "b", settings, clock)
    await a.tick()  # alone: every map
    assert a.owned() == sorted(MAPS)
    assert sorted(a_hooks.started) == sorted(MAPS)
    await b.tick()  # two live now, but every lease is held
    assert b.owned() == []
    await a.tick()  # its share is two: one goes back, after its feed stopped
    assert len(a.owned()) == 2
    (handed,) = a_hooks.stopped
    await b.tick()
    assert b.owned() == [handed]
    assert a_hooks.retired == []  # a surplus map's pending rows are the next holder's to send
    assert b_hooks.grants[handed].previous is not None  # a's: its kills are backfilled since
    assert b_hooks.grants[handed].lease.token == 2
    # Each sends only its own maps, under its own token (and one of them the operations
    # messages: see the next test).
    assert (a.tenants() | b.tenants()) - {OPS_TENANT} == set(MAPS)
    assert a.tenants().isdisjoint(b.tenants())
    assert b.fence(handed) == LeaseFence(resource_of(handed), "b", 2)
    assert a.fence(handed) is None
    await a.tick()  # its view of the others is its last heartbeat's
    snapshot = a.snapshot()
    assert snapshot is not None
    assert snapshot["maps"] == a.owned()
    assert [(i["instance_id"], i["maps"]) for i in snapshot["instances"]] == [
        ("a", a.owned()),
        ("b", [handed]),
    ]
    assert snapshot["unowned"] == []


async def test_a_lease_taken_over_is_lost_and_its_map_stopped(store: Store) -> None:
    settings, clock = _settings(("one",)), Clock()
    a, a_hooks = _leases(store, "a", settings, clock)
    b, b_hooks = _leases(store, "b", settings, clock)
    await a.tick()
    old = a.fence("one")
    assert old is not None
    # a stalls: its lease runs out (set back here rather than waited for) and b takes it over.
    store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
    await b.tick()
    assert b.owned() == ["one"]
    assert b_hooks.grants["one"].previous is not None
    assert b.taken_over == 1
    await a.tick()  # its heartbeat renews nothing: the lease is lost, the map stopped
    assert a.owned() == []
    assert a_hooks.stopped == ["one"]
    assert a.lost == 1
    assert not a.holds(old)


async def test_a_lease_is_trusted_locally_only_until_its_renewal_runs_out(store: Store) -> None:
    settings, clock = _settings(("one",)), Clock()
    a, _hooks = _leases(store, "a", settings, clock)
    await a.tick()
    fence = a.fence("one")
    assert fence is not None
    assert a.holds(fence)
    clock.now += a.lease_seconds - a.margin - 0.01
    assert a.fence("one") == fence
    clock.now += 0.02  # a stall past the lease, as this process's clock measures it
    assert a.fence("one") is None
    assert not a.holds(fence)
    assert a.tenants() == set()
    await a.tick()  # renewed (the database's clock says it never expired)
    assert a.fence("one") == fence


async def test_a_graceful_leave_frees_every_map_at_once(store: Store) -> None:
    settings, clock = _settings(), Clock()
    a, _ = _leases(store, "a", settings, clock)
    b, _ = _leases(store, "b", settings, clock)
    await a.tick()
    await b.tick()
    a.leave()
    assert a.owned() == []
    await b.tick()  # the registry says b is alone: every map is its share
    assert b.owned() == sorted(MAPS)


async def test_the_operations_messages_go_with_the_first_maps_lease(store: Store) -> None:
    """The alerts' messages (tenant ``_ops``, written by every instance) belong to no map:
    exactly one instance sends them, under the lease of the first map, and recovers what the
    previous carrier left in flight; when it leaves, the next holder of that map carries them."""
    settings, clock = _settings(), Clock()
    a, a_hooks = _leases(store, "a", settings, clock)
    b, b_hooks = _leases(store, "b", settings, clock)
    for leases in (a, b, a, b):
        await leases.tick()
    lead = min(MAPS)
    carrier, carrier_hooks, other = (a, a_hooks, b) if lead in a.owned() else (b, b_hooks, a)
    assert OPS_TENANT in carrier.tenants()
    assert OPS_TENANT not in other.tenants()
    assert carrier.fence(OPS_TENANT) == carrier.fence(lead) is not None
    assert other.fence(OPS_TENANT) is None
    assert carrier.carried(lead) == [lead, OPS_TENANT]
    assert all(carrier.carried(m) == [m] for m in carrier.owned() if m != lead)
    assert carrier_hooks.kept_fences[OPS_TENANT] == carrier.fence(lead)

    carrier.leave()
    assert OPS_TENANT not in carrier.tenants()
    await other.tick()  # alone now: every map, the first one's lease and the messages with it
    assert OPS_TENANT in other.tenants()
    assert other.fence(OPS_TENANT) == other.fence(lead) is not None
    kept = (a_hooks if other is a else b_hooks).kept_fences
    assert kept[OPS_TENANT] == other.fence(lead)


async def test_the_operations_messages_wait_for_the_first_map_and_go_with_its_lease(
    store: Store,
) -> None:
    """Hosted, before its first map arrives, an instance has no lease to send the alerts'
    messages under: they stay pending (never lost), and the instance that leases the first map
    to arrive sends them."""
    current, clock = Current(()), Clock()
    leases, hooks = _following(store, "a", current, clock)
    await leases.tick()
    assert leases.fence(OPS_TENANT) is None
    assert OPS_TENANT not in leases.tenants()
    assert OPS_TENANT not in hooks.kept_fences
    current.set("late")
    await leases.tick()
    assert leases.fence(OPS_TENANT) == leases.fence("late") is not None
    assert OPS_TENANT in leases.tenants()
    assert hooks.kept_fences[OPS_TENANT] == leases.fence("late")


async def test_operations_messages_without_a_map_to_carry_them_are_said_to_wait_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Hosted with no map yet (or every map of the file disabled) and an operations webhook
    set: the alerts' messages wait, and one warning says why and what to do (not one per
    heartbeat); once a map carries them, one line says so, and a new wait is said again."""
    current, clock = Current(()), Clock()
    current.settings.alerts.discord_webhook_url = SecretStr(
        "https://discord.com/api/webhooks/1/ops"
    )
    leases, _hooks = _following(store, "a", current, clock)

    def said(text: str) -> list[logging.LogRecord]:
        return [r for r in caplog.records if text in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="wanderer_console.cluster"):
        for _ in range(3):
            await leases.tick()
        (waiting,) = said("alert messages wait")
        assert waiting.levelno == logging.WARNING
        assert "enable a map" in waiting.getMessage()
        webhook = current.settings.alerts.discord_webhook_url
        current.set("late")
        current.settings.alerts.discord_webhook_url = webhook
        await leases.tick()
        await leases.tick()
        assert len(said("alert messages go out again")) == 1
        current.set()
        current.settings.alerts.discord_webhook_url = webhook
        await leases.tick()
        await leases.tick()
        assert len(said("alert messages wait")) == 2


class Current:
    """The running settings as a runtime swaps them (a reload, a hosted refresh)."""

    def __init__(self, maps: tuple[str, ...]) -> None:
        self.settings = _settings(maps)

    def set(self, *maps: str) -> None:
        self.settings = _settings(maps)


def _following(
    store: Store, name: str, current: Current, clock: Clock, **options: Any
) -> tuple[MapLeases, Hooks]:
    leases = MapLeases(
        lambda: current.settings,
        store,
        instance=InstanceInfo(name, "host", 1, "test", 1.0),
        active=True,
        clock=clock,
        settle=0.0,
        **options,
    )
    hooks = Hooks()
    leases.bind(hooks)
    return leases, hooks


def _owners(store: Store) -> dict[str, str]:
    """Map -> owner of every lease held now, as the database says."""
    state = store.cluster_state()
    return {
        lease.resource.removeprefix("map:"): lease.owner
        for lease in state.leases
        if lease.owner is not None and lease.expires_at > state.now
    }


async def test_the_maps_shared_follow_the_running_settings(store: Store) -> None:
    """A map added between two heartbeats is leased at the next; one removed is released (its
    feed stopped first, its lease given back) and nothing is sent for it after."""
    clock, current = Clock(), Current(MAPS)
    a, hooks = _following(store, "a", current, clock)
    await a.tick()
    assert a.owned() == sorted(MAPS)
    current.set("one", "two", "three", "four")  # the map server lists a new map
    await a.tick()
    assert a.owned() == ["four", "one", "three", "two"]
    assert hooks.started[-1] == "four"
    assert a.fence("four") is not None
    two = a.fence("two")
    assert two is not None
    current.set("one", "three", "four")  # ...and drops one
    await a.tick()
    assert hooks.stopped == ["two"]
    assert a.owned() == ["four", "one", "three"]
    assert a.fence("two") is None
    assert "two" not in a.tenants()
    assert not a.holds(two)
    assert "two" not in _owners(store)  # given back: free for whoever lists it again
    assert not store.lease_fence_valid(two)  # a claim under the old fence is refused
    assert hooks.retired == [("two", two)]  # what it left pending settled under its lease
    # Disabled counts as removed; enabled again, it is leased again under a new token.
    current.settings.maps["three"].enabled = False
    await a.tick()
    assert hooks.stopped == ["two", "three"]
    current.set("one", "two", "three", "four")
    await a.tick()
    assert a.owned() == sorted(("one", "two", "three", "four"))
    renewed = a.fence("two")
    assert renewed is not None
    assert renewed.token > two.token


def _pending(store: Store, tenant: str, tag: str, count: int, *, at: float | None = None) -> None:
    target = Target(TargetKind.BOT_CHANNEL, "100000000000000042", tenant)
    store.enqueue(
        [
            Notification(
                tenant,
                NotificationType.KILL,
                f"{tag}:{i}",
                target,
                {"embeds": [{"title": f"{tag} {i}", "description": "x"}]},
            )
            for i in range(count)
        ],
        now=at,
    )


async def test_a_map_no_longer_configured_fails_its_pending_rows_under_its_lease(
    store: Store,
) -> None:
    """Nobody leases a map nobody lists, so its pending notifications would wait for ever: the
    holder fails them as it lets the map go, under its lease (a stale fence fails nothing)."""
    clock, current = Clock(), Current(MAPS)
    a, _hooks = _following(store, "a", current, clock)
    await a.tick()
    fence = a.fence("two")
    assert fence is not None
    _pending(store, "two", "due", 1)
    _pending(store, "two", "later", 2, at=4e9)  # not due for a long while
    _pending(store, "one", "other", 1)
    stale = fence._replace(token=fence.token + 1)
    assert store.fail_pending("two", error="x", fence=stale) == 0
    assert store.outbox_counts() == {"pending": 4}
    assert store.fail_pending("two", error="no longer configured", fence=fence) == 3
    assert store.outbox_counts() == {"pending": 1, "failed": 3}
    failed = store.failed_rows(limit=10)
    assert {(row.tenant_id, row.last_error) for row in failed} == {("two", "no longer configured")}
    assert [row.tenant_id for row in store.due_outbox(5e9)] == ["one"]  # untouched


async def test_failing_unconfigured_rows_changes_only_pending_ones_under_the_lease(
    store: Store,
) -> None:
    """Rows whose target is no longer configured are failed only while still pending and only
    under the map's lease: one the map's new owner has claimed meanwhile is its to settle."""
    clock, current = Clock(), Current(MAPS)
    a, _hooks = _following(store, "a", current, clock)
    await a.tick()
    fence = a.fence("two")
    assert fence is not None
    _pending(store, "two", "row", 3)
    ids = [row.id for row in store.due_outbox(5e9)]
    assert store.claim(ids[:1], send_id="0123456789abcdef", fence=fence) == 1  # in flight
    stale = fence._replace(token=fence.token + 1)
    assert store.fail_unsent(ids, error="x", fence=stale) == 0
    assert store.outbox_counts() == {"pending": 2, "sending": 1}
    assert store.fail_unsent(ids, error="target no longer configured", fence=fence) == 2
    assert store.outbox_counts() == {"sending": 1, "failed": 2}


async def test_a_dead_target_no_longer_named_is_let_go_only_under_the_maps_lease(
    store: Store,
) -> None:
    """A dead target its map no longer names is let go (its held rows then fail as no longer
    configured) by the map's holder, under its lease, checked in the statement: an instance
    whose lease has passed to another, while its own view still says it holds the map, leaves
    the mark to the new owner, whose configuration may still name the target."""
    clock, current = Clock(), Current(MAPS)
    a, _hooks = _following(store, "a", current, clock)
    await a.tick()
    fence = a.fence("two")
    assert fence is not None
    store.set_dead_target("two", "webhook:7", reason="404", fingerprint="f", now=1.0)

    def marks() -> list[tuple[str, str]]:
        return [(d.tenant_id, d.target_key) for d in store.dead_targets()]

    stale = fence._replace(token=fence.token + 1)  # the lease as a new owner took it
    assert store.forget_dead_target("two", "webhook:7", fence=stale) is False
    assert marks() == [("two", "webhook:7")]
    new = Target(TargetKind.WEBHOOK, "http://127.0.0.1:9/api/webhooks/8/token", "two")
    targets = {("two", new.key): ResolvedTarget(new)}
    dead = DeadTargets(store, Metrics(), OutcomeJournal(), TargetState)
    dead.refresh(targets, lambda _tenant: (True, stale))
    assert marks() == [("two", "webhook:7")]
    assert ("two", "webhook:7") in dead  # still held here too, until the next look
    dead.refresh(targets, lambda _tenant: (True, fence))
    assert marks() == []
    assert ("two", "webhook:7") not in dead


async def test_instances_that_disagree_on_the_maps_never_share_one(store: Store) -> None:
    """Each instance refreshes the hosted configuration on its own timer: one that does not
    know a map yet never acquires it, no map is ever held twice, and the shares settle once
    both see the same maps."""
    clock = Clock()
    a_view, b_view = Current(MAPS), Current(MAPS)
    a, _ = _following(store, "a", a_view, clock)
    b, _ = _following(store, "b", b_view, clock)
    everything = ("one", "two", "three", "four", "five")
    a_view.set(*everything)  # a has refreshed, b not yet
    for _round in range(4):
        for leases in (a, b, a, b):
            await leases.tick()
            owners = _owners(store)
            assert set(a.owned()).isdisjoint(b.owned())
            assert {t for t, o in owners.items() if o == "b"} <= set(MAPS)  # b: its own view
            assert set(b.owned()) <= set(MAPS)
    # Meanwhile a map only a knows may wait (b's share is of its three): until b refreshes.
    b_view.set(*everything)  # b refreshes
    for _round in range(3):
        await a.tick()
        await b.tick()
        assert set(a.owned()).isdisjoint(b.owned())
    assert set(a.owned()) | set(b.owned()) == set(everything)
    assert sorted(len(x.owned()) for x in (a, b)) == [2, 3]  # each at most its share of 3
    # a map b alone still lists (a refreshed again, b not yet) is released by a, kept by b
    dropped = a.owned()[0]
    a_view.set(*(t for t in everything if t != dropped))
    await a.tick()
    assert dropped not in a.owned()
    for _round in range(3):
        await b.tick()
        await a.tick()
        assert set(a.owned()).isdisjoint(b.owned())
    assert _owners(store).get(dropped) in (None, "b")


async def test_a_map_the_runtime_does_not_let_be_worked_is_not_leased(store: Store) -> None:
    """The runtime's ``eligible``: a file map added by a reload waits for a restart, as on an
    engine alone (the hosted ones follow)."""
    clock, current = Clock(), Current(MAPS)
    allowed = set(MAPS)
    a, _ = _following(store, "a", current, clock, eligible=allowed.__contains__)
    await a.tick()
    current.set(*MAPS, "four")
    await a.tick()
    assert "four" not in a.maps()
    assert a.owned() == sorted(MAPS)
    allowed.add("four")  # hosted now
    await a.tick()
    assert "four" in a.owned()


async def test_a_change_of_the_maps_holds_the_heartbeat_off_and_releases_after(
    store: Store,
) -> None:
    """Inside :meth:`MapLeases.changing` no heartbeat runs (no lease moves for a map half
    changed); leaving it releases the maps held here that are gone, at once."""
    clock, current = Clock(), Current(MAPS)
    a, hooks = _following(store, "a", current, clock)
    await a.tick()
    async with a.changing():
        tick = asyncio.create_task(a.tick())
        for _ in range(5):
            await asyncio.sleep(0)  # let it run as far as it can: to the lock
        assert not tick.done()
        current.set("one", "three")
    assert hooks.stopped == ["two"]  # released on leaving, before the heartbeat went on
    assert a.owned() == ["one", "three"]
    await tick
    assert "two" not in _owners(store)


# -- the dispatcher behind a gate ----------------------------------------------------------------


class Gate:
    """A :class:`~wanderer_console.delivery.dispatcher.SendGate` the test drives."""

    instance_id = "a"

    def __init__(self) -> None:
        self.fences: dict[str, LeaseFence] = {}
        self.held = True

    def tenants(self) -> set[str]:
        return set(self.fences)

    def fence(self, tenant: str) -> LeaseFence | None:
        return self.fences.get(tenant) if self.held else None

    def holds(self, fence: LeaseFence) -> bool:
        return self.held and fence in self.fences.values()

    def carried(self, tenant: str) -> list[str]:
        return [tenant]


@dataclass
class GatedRig:
    store: Store
    discord: FakeDiscord
    gate: Gate
    dispatcher: Dispatcher
    target: Target
    metrics: Metrics


@contextlib.asynccontextmanager
async def _gated(store: Store, *, dry_run: bool = False) -> AsyncIterator[GatedRig]:
    fake = FakeDiscord(webhook_limit=100, webhook_window=1.0, bot_token=BOT)
    server = AppServer(fake.app)
    await server.start()
    metrics = Metrics()
    http = HttpClient("discord", metrics=metrics, timeout=5.0)
    target = Target(TargetKind.BOT_CHANNEL, "100000000000000042", "one")
    targets = {("one", target.key): ResolvedTarget(target, BOT)}
    gate = Gate()
    dispatcher = Dispatcher(
        store,
        DiscordSender(http, api_url=f"{server.url}/api/v10", user_agent="test"),
        metrics,
        lambda: targets,
        poll_interval=0.05,
        policy=DeliveryPolicy(
            backoff_base=0.05, backoff_cap=0.2, uncertain_window=0.5, request_timeout=0.3
        ),
        gate=gate,
        dry_run=lambda: dry_run,
    )
    task = asyncio.create_task(dispatcher.run())
    try:
        yield GatedRig(store, fake, gate, dispatcher, target, metrics)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()
        await server.stop()


def _enqueue(rig: GatedRig, count: int, tag: str) -> None:
    rig.store.enqueue(
        [
            Notification(
                "one",
                NotificationType.KILL,
                f"{tag}:{i}",
                rig.target,
                {"embeds": [{"title": f"{tag} {i}", "description": "x"}]},
            )
            for i in range(count)
        ]
    )
    rig.dispatcher.wake()


@pytest.mark.slow
async def test_the_dispatcher_sends_only_the_maps_it_holds_under_their_lease(store: Store) -> None:
    async with _gated(store) as rig:
        _enqueue(rig, 3, "before")
        await asyncio.sleep(0.3)
        assert rig.discord.received == []  # no lease: the map's owner sends, not us
        assert store.outbox_counts() == {"pending": 3}
        grant = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert grant is not None
        rig.gate.fences["one"] = LeaseFence(resource_of("one"), "a", grant.lease.token)
        rig.dispatcher.wake()
        await wait_for(lambda: store.outbox_counts() == {"sent": 3}, 10)
        assert len(rig.discord.received) == 1  # one message of three embeds


@pytest.mark.slow
async def test_a_claim_under_a_lease_lost_in_the_database_sends_nothing(store: Store) -> None:
    async with _gated(store) as rig:
        grant = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert grant is not None
        rig.gate.fences["one"] = LeaseFence(resource_of("one"), "a", grant.lease.token)
        # Taken over behind this instance's back (it has not heard yet).
        store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
        assert store.acquire_lease(resource_of("one"), "b", 30.0) is not None
        _enqueue(rig, 2, "fenced")
        await asyncio.sleep(0.4)
        assert rig.discord.received == []
        assert store.outbox_counts() == {"pending": 2}  # untouched, for the new owner


async def test_an_unconfigured_targets_rows_under_a_lease_lost_in_the_database_are_left(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """An instance whose lease was taken over behind its back (it has not heard yet) reads
    rows of a target its configuration no longer has: it leaves them to the map's new owner
    (whose configuration may still have the target) instead of failing them."""
    caplog.set_level(logging.INFO, logger="wanderer_console")
    async with _gated(store) as rig:
        grant = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert grant is not None
        rig.gate.fences["one"] = LeaseFence(resource_of("one"), "a", grant.lease.token)
        store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
        assert store.acquire_lease(resource_of("one"), "b", 30.0) is not None
        gone = Target(TargetKind.BOT_CHANNEL, "100000000000000077", "one")  # not in its config
        store.enqueue(
            [Notification("one", NotificationType.KILL, "gone:0", gone, {"content": "x"})]
        )
        rig.dispatcher.wake()
        await wait_for(
            lambda: any("left to the map's owner" in r.getMessage() for r in caplog.records),
            10,
            "the dispatcher to leave the rows",
        )
        assert store.outbox_counts() == {"pending": 1}


@pytest.mark.slow
async def test_an_answer_after_the_lease_was_lost_mid_request_is_left_to_the_new_owner(
    store: Store,
) -> None:
    async with _gated(store) as rig:
        grant = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert grant is not None
        fence = LeaseFence(resource_of("one"), "a", grant.lease.token)
        rig.gate.fences["one"] = fence
        rig.discord.answer_delay = 1.0  # posted, but answered after the client gave up
        _enqueue(rig, 1, "mid")
        await wait_for(lambda: store.outbox_counts() == {"sending": 1}, 10)
        rig.gate.held = False  # the lease is lost while the request is out
        await asyncio.sleep(0.8)
        assert len(rig.discord.received) == 1
        # Not released for a retry here: the map's new owner recovers it as in flight.
        assert store.outbox_counts() == {"sending": 1}
        store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
        taken = store.acquire_lease(resource_of("one"), "b", 30.0)
        assert taken is not None
        new = LeaseFence(resource_of("one"), "b", taken.lease.token)
        (recovered,) = store.recover_in_flight(tenant="one", spare=new)
        assert recovered[1] == "bot_channel"


@pytest.mark.parametrize("skew", [0.0, -120.0])
def test_a_webhook_message_in_flight_at_the_old_holder_waits_out_its_request_after_a_takeover(
    store: Store, skew: float
) -> None:
    """Instance ``a`` claimed a webhook message just before its lease ran out and its request
    is still out (Discord slow, ``a`` alive but cut off from the database). ``b`` takes the map
    over and recovers the row as uncertain. A webhook message has no nonce: ``b`` may send it
    again only once ``a``'s request has certainly ended (it started before the takeover and
    waits at most the longest send timeout) and the uncertainty window has passed since. The
    row's ``sending_at`` is ``a``'s wall clock, another host's (``skew``: ``a``'s clock two
    minutes behind ``b``'s); it says nothing of ``b``'s time."""
    hook = Target(TargetKind.WEBHOOK, "https://discord.com/api/webhooks/1/t", "one")
    store.enqueue([Notification("one", NotificationType.KILL, "k1", hook, {"embeds": [{}]})])
    (row,) = store.due_outbox(now=time.time() + 1)
    grant = store.acquire_lease(resource_of("one"), "a", 30.0)
    assert grant is not None
    old = LeaseFence(resource_of("one"), "a", grant.lease.token)
    clock = FrozenClock(at=time.time())
    assert store.claim([row.id], send_id="s-a", now=clock.wall() + skew, fence=old) == 1
    store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
    taken = store.acquire_lease(resource_of("one"), "b", 30.0)
    assert taken is not None
    new = LeaseFence(resource_of("one"), "b", taken.lease.token)
    policy = DeliveryPolicy(uncertain_window=10.0, request_timeout=10.0, confirm_timeout=30.0)
    assert recover_in_flight(store, policy, clock=clock, tenant="one", spare=new) == 1
    (due,) = store.due_outbox(now=clock.wall() + 3600)
    # a's request may run for up to 30 s (a re-send's timeout) from the takeover, then 10 s.
    assert due.next_attempt_at >= clock.wall() + 30.0 + 10.0
    assert store.due_outbox(now=clock.wall() + 39.0) == []


def _bot_row_sent_by(store: Store, holder: str, stamps: list[float]) -> tuple[int, LeaseFence]:
    """One bot message of map ``one`` sent by ``holder`` once per stamp (``holder``'s wall
    clock at each claim), each send without an answer; the last send left in flight. Returns the
    row and ``holder``'s lease."""
    bot = Target(TargetKind.BOT_CHANNEL, "100000000000000042", "one")
    store.enqueue([Notification("one", NotificationType.KILL, "k1", bot, {"embeds": [{}]})])
    (row,) = store.due_outbox(now=time.time() + 1)
    grant = store.acquire_lease(resource_of("one"), holder, 30.0)
    assert grant is not None
    fence = LeaseFence(resource_of("one"), holder, grant.lease.token)
    for index, stamp in enumerate(stamps):
        if index:  # the previous send had no answer: the same message (nonce) again
            store.release(
                [row.id],
                next_attempt_at=0.0,
                error="timeout",
                attempt=True,
                keep_send_id=True,
                uncertain=True,
                fence=fence,
            )
        assert store.claim([row.id], send_id="s-old", now=stamp, fence=fence) == 1
    return row.id, fence


@pytest.mark.parametrize("skew", [0.0, 300.0], ids=["same-clock", "old-holder-ahead"])
def test_a_bot_message_sent_twice_by_the_old_holder_is_not_sent_a_third_time_after_a_takeover(
    store: Store, skew: float
) -> None:
    """Instance ``a`` sent a bot message 200 s ago (by ``b``'s clock), had no answer, sent it
    again under the same nonce, and lost the map with that re-send in flight. A third send is
    made only where the nonce still protects it, i.e. when its first send is less than the
    nonce window (120 s) old. The row's ``sending_at`` is ``a``'s wall clock: with ``a``'s clock
    five minutes ahead it reads 100 s in ``b``'s future, and ``b`` judged the nonce fresh and
    sent the message a third time, under a nonce Discord had forgotten (a second post). ``b``
    cannot tell another host's clock from its own: a nonce another instance stamped never
    counts as protecting a message for ``b``; the row is kept uncertain."""
    clock = FrozenClock(at=time.time())
    first = clock.wall() - 200.0 + skew
    row_id, _old = _bot_row_sent_by(store, "a", [first, first + 30.0])
    store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
    taken = store.acquire_lease(resource_of("one"), "b", 30.0)
    assert taken is not None
    new = LeaseFence(resource_of("one"), "b", taken.lease.token)
    policy = DeliveryPolicy(uncertain_window=10.0, nonce_window=120.0)
    assert recover_in_flight(store, policy, clock=clock, tenant="one", spare=new) == 0
    assert store.outbox_counts() == {"uncertain": 1}
    assert store.due_outbox(now=clock.wall() + 3600) == []
    assert row_id


def test_a_bot_message_an_instance_sent_first_keeps_its_nonce_when_it_takes_the_map_back(
    store: Store,
) -> None:
    """The other side of the rule above: ``a`` sent a bot message 50 s ago by its own clock,
    re-sent it, stalled past its lease and took the map back (a new token): the stamp is its
    own clock's, the nonce still protects the message, and it goes again under it."""
    clock = FrozenClock(at=time.time())
    first = clock.wall() - 50.0
    _bot_row_sent_by(store, "a", [first, first + 30.0])
    store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
    again = store.acquire_lease(resource_of("one"), "a", 30.0)
    assert again is not None
    back = LeaseFence(resource_of("one"), "a", again.lease.token)
    policy = DeliveryPolicy(uncertain_window=10.0, nonce_window=120.0)
    assert recover_in_flight(store, policy, clock=clock, tenant="one", spare=back) == 1
    (due,) = store.due_outbox(now=clock.wall())
    assert (due.send_id, due.uncertain, due.sending_at, due.sent_by) == ("s-old", 2, first, "a")


@pytest.mark.slow
async def test_a_bot_message_the_old_holder_stamped_is_not_trusted_to_its_nonce_by_the_new_one(
    store: Store,
) -> None:
    """Instance ``b`` sent a bot message 200 s ago (by this instance's clock) and had no answer;
    the row waits, pending, for its re-send under the same nonce when ``b`` loses the map to
    this instance (``a``). Its ``sending_at`` is ``b``'s clock, five minutes ahead: read with
    ``a``'s clock the first send was 100 s in the future, so ``a`` counted its re-send as
    protected by the nonce (``resend="nonce"``: cannot post twice), and when that re-send had
    no answer either it sent the message a third time. Judged by ``a``'s clock alone the
    nonce's age is unknown: the re-send is counted as unprotected and, unanswered, the message
    is kept uncertain (probably delivered) instead of sent a third time."""
    first = time.time() - 200.0 + 300.0
    row_id, old = _bot_row_sent_by(store, "b", [first])
    store.release(
        [row_id], next_attempt_at=0.0, error="timeout", keep_send_id=True, uncertain=True, fence=old
    )
    store._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
    async with _gated(store) as rig:
        rig.dispatcher.policy = DeliveryPolicy(
            backoff_base=0.05, backoff_cap=0.2, request_timeout=0.3, confirm_timeout=0.3
        )
        rig.discord.answer_delay = 1.0  # posted, but answered after the client gave up
        taken = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert taken is not None
        rig.gate.fences["one"] = LeaseFence(resource_of("one"), "a", taken.lease.token)
        rig.dispatcher.wake()
        # Settled either way: kept uncertain, or confirmed by the replay of a third send.
        await wait_for(lambda: store.outbox_counts() in ({"uncertain": 1}, {"sent": 1}), 10)
        assert store.outbox_counts() == {"uncertain": 1}
        assert len(rig.discord.received) == 1
        assert rig.discord.nonce_replays == 0
        counted = rig.metrics.registry.get_sample_value(
            "wc_delivery_uncertain_total", {"target_kind": "bot_channel", "resend": "unprotected"}
        )
        assert counted == 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_an_outcome_kept_while_the_store_was_down_never_undoes_the_new_owners_send(
    store: Store, store_location: StoreLocation
) -> None:
    """An outcome the store refused is kept and written once the store writes again. If the
    map's lease went to another instance meanwhile (this one could reach neither its store nor
    its heartbeat), that instance has recovered the rows and sent them: the late write must not
    put them back to pending (they would be posted twice). The store refuses for real: this
    instance's connection is made read-only (``PRAGMA query_only``), the other's is not."""
    async with _gated(store) as rig:
        grant = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert grant is not None
        rig.gate.fences["one"] = LeaseFence(resource_of("one"), "a", grant.lease.token)
        rig.dispatcher.policy = DeliveryPolicy(request_timeout=2.0)
        rig.discord.answer_delay = 5.0  # posted, but answered after the client gave up
        _enqueue(rig, 1, "late")
        await wait_for(lambda: len(rig.discord.received) == 1, 10)
        store._conn.execute("PRAGMA query_only = ON")  # type: ignore[attr-defined]
        await wait_for(lambda: rig.dispatcher.snapshot()["unrecorded_outcomes"] == 1, 10)
        assert store.outbox_counts() == {"sending": 1}
        rig.gate.held = False  # its heartbeat failed too: the lease ran out
        other = open_store(store_location)
        try:
            other._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
            taken = other.acquire_lease(resource_of("one"), "b", 30.0)
            assert taken is not None
            new = LeaseFence(resource_of("one"), "b", taken.lease.token)
            ((row_id, _kind, send_id, _at),) = other.recover_in_flight(tenant="one", spare=new)
            assert other.claim([row_id], send_id=send_id, fence=new) == 1
            other.mark_sent([row_id])  # the new owner's re-send was confirmed
        finally:
            other.close()
        store._conn.execute("PRAGMA query_only = OFF")  # type: ignore[attr-defined]
        await wait_for(lambda: rig.dispatcher.snapshot()["unrecorded_outcomes"] == 0, 10)
        assert store.outbox_counts() == {"sent": 1}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_dry_runs_mark_kept_while_the_store_refused_never_marks_the_new_owners_rows(
    store: Store, store_location: StoreLocation
) -> None:
    """A dry run claims its rows and marks them sent (nothing posted). The store refused that
    mark, so it was kept; meanwhile the lease ran out and the map's new owner recovered the
    rows to send them. Written late, the mark turned them ``sent``: the new owner never posted
    them. Unlike a confirmation, a dry run's mark changes only rows still claimed by it. The
    store refuses for real: a trigger fails the update to ``sent`` (claims still pass)."""
    async with _gated(store, dry_run=True) as rig:
        grant = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert grant is not None
        rig.gate.fences["one"] = LeaseFence(resource_of("one"), "a", grant.lease.token)
        store._conn.execute(  # type: ignore[attr-defined]
            "CREATE TRIGGER refuse_sent BEFORE UPDATE OF status ON outbox"
            " WHEN NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
        )
        _enqueue(rig, 1, "dry")
        await wait_for(lambda: rig.dispatcher.snapshot()["unrecorded_outcomes"] == 1, 10)
        assert store.outbox_counts() == {"sending": 1}
        rig.gate.held = False  # its heartbeat could not write either: the lease ran out
        other = open_store(store_location)
        try:
            other._conn.execute("UPDATE leases SET expires_at = 0")  # type: ignore[attr-defined]
            taken = other.acquire_lease(resource_of("one"), "b", 30.0)
            assert taken is not None
            new = LeaseFence(resource_of("one"), "b", taken.lease.token)
            assert len(other.recover_in_flight(tenant="one", spare=new)) == 1
            other._conn.execute("DROP TRIGGER refuse_sent")  # type: ignore[attr-defined]
        finally:
            other.close()
        await wait_for(lambda: rig.dispatcher.snapshot()["unrecorded_outcomes"] == 0, 10)
        assert store.outbox_counts() == {"pending": 1}  # b's to send
        assert rig.discord.received == []


@pytest.mark.slow
async def test_a_map_leaving_does_not_wait_for_its_worker_sleeping_on_the_channel_budget(
    store: Store,
) -> None:
    """Handing a map over waits for its sends in flight (``quiesce``), one map after another in
    the heartbeat. A worker waiting for its channel's budget has nothing in flight: it ends as
    soon as its map leaves (its rows wait for the map's next owner), instead of holding the
    hand-over for the whole grace, which, map after map, outlasts the leases kept."""
    async with _gated(store) as rig:
        grant = store.acquire_lease(resource_of("one"), "a", 30.0)
        assert grant is not None
        rig.gate.fences["one"] = LeaseFence(resource_of("one"), "a", grant.lease.token)
        rig.dispatcher.channel_per_minute = 1
        _enqueue(rig, 1, "first")
        await wait_for(lambda: store.outbox_counts() == {"sent": 1}, 10)
        _enqueue(rig, 1, "second")  # the channel's budget is spent for a minute: it waits

        def workers() -> list[asyncio.Task[Any]]:
            return [t for t in asyncio.all_tasks() if t.get_name().startswith("deliver:")]

        await wait_for(workers, 10)
        del rig.gate.fences["one"]  # the map is leaving: the gate sends nothing more for it
        quiesce = asyncio.create_task(rig.dispatcher.quiesce("one", 600.0))
        await wait_for(quiesce.done, 10, "the hand-over waited for a worker with nothing out")
        assert workers() == []
        assert store.outbox_counts() == {"sent": 1, "pending": 1}  # for the map's next owner
        assert len(rig.discord.received) == 1


# -- a runtime on PostgreSQL shows its leases -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_the_snapshot_and_ready_name_this_instances_maps_and_the_live_ones(
    runtime: Runtime,
) -> None:
    await wait_for(lambda: runtime.cluster.owned() == sorted(runtime.settings.maps), 20)
    snapshot = EngineSnapshot.model_validate(runtime.snapshot())
    cluster = snapshot.cluster
    assert cluster is not None
    assert cluster.instance_id == runtime.cluster.instance_id
    assert cluster.maps == tuple(sorted(runtime.settings.maps))
    (me,) = cluster.instances
    assert me.this
    assert me.maps == cluster.maps
    ready = runtime.readiness()
    assert ready.cluster is not None
    assert ready.cluster["maps"] == list(cluster.maps)
    # The console's frames carry it too (an attached console reads the same).
    framed = runtime.console.snapshot_now().cluster
    assert framed is not None
    assert framed.maps == cluster.maps


@pytest.mark.postgresql
async def test_an_engine_on_a_shared_database_shares_the_hosted_maps_live_and_the_files_at_start(
    tmp_path: Path,
) -> None:
    """The runtime's side of :meth:`MapLeases.maps`: a hosted map added is leased at the next
    heartbeat; a file map added by a reload waits for a restart, as on an engine alone; a file
    map removed by a reload is released (no settings are left to send it by)."""
    with fresh_schema() as url:

        def file(*maps: str) -> Settings:
            settings = _settings(maps)
            settings.store.url = SecretStr(url.secret())
            return settings

        engine = Runtime(file("one", "two"), data_dir=tmp_path)
        try:
            assert engine.cluster.active
            hooks = Hooks()
            engine.cluster.bind(hooks)  # record instead of starting feeds
            await engine.cluster.tick()  # registers
            await engine.cluster.tick()  # alone: every map
            assert engine.cluster.owned() == ["one", "two"]
            engine.apply_settings(file("one", "two", "three"))  # a reload adds a map
            await engine.cluster.tick()
            assert "three" in engine.settings.maps
            assert engine.cluster.owned() == ["one", "two"]  # as alone: at the next start
            diff = await engine.apply_hosted({"four": _settings(("four",)).maps["four"]})
            assert diff.added == ["four"]
            await engine.cluster.tick()
            assert engine.cluster.owned() == ["four", "one", "two"]
            assert hooks.started[-1] == "four"  # three was never started
            assert sorted(hooks.started) == ["four", "one", "two"]
            engine.apply_settings(file("one", "three"))  # the file drops two (hosted four stays)
            await engine.cluster.tick()
            assert hooks.stopped == ["two"]
            assert engine.cluster.owned() == ["four", "one"]
            await engine.apply_hosted({})  # the map server drops four: released at once
            assert hooks.stopped == ["two", "four"]
            assert engine.cluster.owned() == ["one"]
        finally:
            engine.cluster.leave()
            engine.store.close()
            engine.lock.release()


def test_an_engine_on_sqlite_has_no_leases(tmp_path: Path) -> None:
    settings = _settings(("one",))
    engine = Runtime(settings, data_dir=tmp_path)
    try:
        assert not engine.cluster.active
        assert engine.cluster.snapshot() is None
        assert "cluster" not in engine.snapshot()
        assert engine.readiness().cluster is None
    finally:
        engine.store.close()
        engine.lock.release()


def test_the_dashboard_title_names_the_maps_here_and_the_engines_alive() -> None:
    from types import SimpleNamespace

    from wanderer_console.console_api import ClusterView, InstanceView
    from wanderer_console.ui.screens.dashboard import dashboard_title

    state: Any = SimpleNamespace(identity=None)
    alone = EngineSnapshot(version="1.0", uptime=61.0)
    assert dashboard_title(state, alone, 0.0) == "delivery running · v1.0 · up 0h01m"
    shared = alone.model_copy(
        update={
            "cluster": ClusterView(
                instance_id="a",
                maps=("one", "two"),
                instances=(InstanceView(instance_id="a", this=True), InstanceView(instance_id="b")),
            )
        }
    )
    assert dashboard_title(state, shared, 0.0) == (
        "delivery running · one, two here, 2 engines alive · v1.0 · up 0h01m"
    )
