"""A target's configuration changed while its notifications wait (a dead webhook replaced)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.delivery.rig import Rig, make_rig, until
from wanderer_console.config.live import LiveSettings
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.config.model import Settings
from wanderer_console.config.routing import OPS_TENANT, ROUTES, moved_targets
from wanderer_console.delivery.dispatcher import Dispatcher, build_dispatcher
from wanderer_console.delivery.outcomes import OutcomeJournal
from wanderer_console.delivery.policy import ResolvedTarget, TargetState
from wanderer_console.delivery.targets import DeadTargets
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http.client import HttpClient
from wanderer_console.sim import AppServer, FakeDiscord, webhook_url
from wanderer_console.store import SqliteStore
from wanderer_console.telemetry.metrics import Metrics


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with make_rig(tmp_path) as made:
        yield made


@pytest.mark.slow
async def test_a_dead_webhook_replaced_by_a_new_one_does_not_hold_its_backlog_for_ever(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord deleted the webhook (404): the operator makes a new one, which has another id,
    and puts its URL in the config. No change can revive the old key any more; its backlog was
    held pending for ever and ``/ready`` stayed degraded naming it. It now fails, said, as a
    target no longer configured does; the new webhook takes what is queued from then."""
    dead = rig.hook(3)
    rig.discord.disable_webhook(3)
    rig.enqueue(dead, 4)
    await until(lambda: rig.dispatcher.dead_targets)
    await until(lambda: rig.store.outbox_counts() == {"pending": 4})
    del rig.targets[("home", "webhook:3")]
    fresh = rig.hook(5)
    with caplog.at_level(logging.WARNING, logger="wanderer_console"):
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts() == {"failed": 4}, timeout=10)
    assert not rig.dispatcher.dead_targets
    assert rig.store.dead_targets() == []
    assert {row.last_error for row in rig.store.failed_rows()} == {
        "target no longer configured (wanderer-console outbox retry TARGET re-queues)"
    }
    assert any("dead target no longer configured" in r.getMessage() for r in caplog.records)
    assert rig.discord.rejected_404 == 1
    rig.enqueue(fresh, 2)
    await until(lambda: rig.store.outbox_counts() == {"failed": 4, "sent": 2})
    assert rig.discord.messages_for("webhook:3") == []


def test_a_dead_target_of_a_map_another_instance_holds_is_left_to_it(tmp_path: Path) -> None:
    """On a shared database the engines' configurations may differ for a while (one reloaded,
    the other not yet): a dead target is let go only by the instance that settles its map."""
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        for tenant in ("home", "other"):
            store.set_dead_target(tenant, "webhook:7", reason="404", fingerprint="f", now=1.0)
        dead = DeadTargets(store, Metrics(), OutcomeJournal(), TargetState)
        new = Target(TargetKind.WEBHOOK, webhook_url("http://127.0.0.1:9", 8), "home")
        targets = {(tenant, new.key): ResolvedTarget(new) for tenant in ("home", "other")}
        dead.refresh(targets, lambda tenant: (tenant == "home", None))
        assert [(d.tenant_id, d.target_key) for d in store.dead_targets()] == [
            ("other", "webhook:7")
        ]
    finally:
        store.close()


@pytest.mark.slow
async def test_a_webhook_token_rotated_during_a_backlog_sends_the_rest_with_the_new_one(
    rig: Rig,
) -> None:
    """The operator rotates a webhook's token (same id, so the same target) while its worker
    is part way through a backlog: the messages still to go use the new URL."""
    rig.discord.register_webhook(3, "old")
    old = Target(TargetKind.WEBHOOK, webhook_url(rig.server.url, 3, "old"), "home")
    rig.targets[("home", old.key)] = ResolvedTarget(old)
    rig.discord.answer_delay = 0.3
    rig.enqueue(old, 4, content="<@&1> rally")  # a mention: one message each
    await until(lambda: rig.discord.messages_for("webhook:3"))
    rig.discord.register_webhook(3, "new")
    new = Target(TargetKind.WEBHOOK, webhook_url(rig.server.url, 3, "new"), "home")
    rig.targets[("home", new.key)] = ResolvedTarget(new)
    rig.discord.answer_delay = 0.0
    await until(lambda: rig.store.outbox_counts() == {"sent": 4}, timeout=10)
    assert rig.discord.rejected_401 == 0
    assert rig.metrics.value("wc_targets_disabled_total") == 0


# -- a reload that moves a map's routes to another target (h85) ---------------------------------

_CONFIG = """
[discord]
uncertain_retry_seconds = 600
[maps.home]
url = "http://127.0.0.1:9/map"
api_key = "k"
[maps.home.discord]
webhook_url = "{primary}"
{extra}
"""


def _settings(primary: str, extra: str = "") -> Settings:
    settings, _ = parse_settings_text(_CONFIG.format(primary=primary, extra=extra), environ={})
    return settings


@dataclass
class _Engine:
    discord: FakeDiscord
    url: str
    store: SqliteStore
    live: LiveSettings
    dispatcher: Dispatcher

    def hook(self, webhook_id: int) -> Target:
        return Target(TargetKind.WEBHOOK, webhook_url(self.url, webhook_id), "home")

    def enqueue(self, target: Target, count: int) -> None:
        self.store.enqueue(
            [
                Notification(
                    "home",
                    NotificationType.KILL,
                    f"n{i}",
                    target,
                    {"content": "<@&1> rally", "embeds": [{"title": f"note {i}"}]},
                )
                for i in range(count)
            ]
        )
        self.dispatcher.wake()

    def titles(self, key: str) -> list[str]:
        return sorted(m.body["embeds"][0]["title"] for m in self.discord.messages_for(key))


@contextlib.asynccontextmanager
async def _engine(tmp_path: Path, first: int, extra: str = "") -> AsyncIterator[_Engine]:
    """The engine's dispatcher (``build_dispatcher``) on its running settings, whose map posts
    to webhook ``first`` of a fake Discord on a real socket (``extra``: more of the map's
    Discord settings, ``{url}`` standing for the fake's address). Its store is ``tmp_path``'s:
    a second one in the same test is the engine started again."""
    fake = FakeDiscord()
    server = AppServer(fake.app)
    await server.start()
    store = SqliteStore(tmp_path / "db.sqlite")
    live = LiveSettings(_settings(webhook_url(server.url, first), extra.format(url=server.url)))
    http = HttpClient("discord", metrics=Metrics(), timeout=5.0)
    dispatcher = build_dispatcher(store, Metrics(), http, live)
    task = asyncio.create_task(dispatcher.run())
    try:
        yield _Engine(fake, server.url, store, live, dispatcher)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await http.aclose()
        await server.stop()
        store.close()


@pytest.mark.slow
async def test_a_dead_webhook_replaced_in_the_config_sends_what_it_held_to_the_new_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Discord deleted the webhook; the operator made a new one and put its URL in the config
    (a hot reload). What the dead one held goes to the new one, once each, instead of failing
    as no longer configured. A row whose earlier send had no known outcome (the old webhook
    may have posted it) is not moved: it fails as before."""
    async with _engine(tmp_path, 3) as engine:
        engine.dispatcher.paused = True
        engine.discord.disable_webhook(3)
        engine.enqueue(engine.hook(3), 4)
        unknown = engine.store.due_outbox(now=time.time() + 1)[-1]
        assert engine.store.claim([unknown.id], send_id="s-unknown") == 1
        engine.store.release([unknown.id], next_attempt_at=0.0, error=None, uncertain=True)
        engine.dispatcher.paused = False
        engine.dispatcher.wake()
        await until(lambda: engine.dispatcher.dead_targets)
        with caplog.at_level(logging.INFO, logger="wanderer_console"):
            engine.live.replace(_settings(webhook_url(engine.url, 5)))
            await until(
                lambda: engine.store.outbox_counts() == {"sent": 3, "failed": 1}, timeout=10
            )
        assert engine.titles("webhook:5") == ["note 0", "note 1", "note 2"]
        assert engine.discord.messages_for("webhook:3") == []
        assert engine.store.dead_targets() == []
        (failed,) = engine.store.failed_rows()
        assert failed.id == unknown.id
        moved = [r for r in caplog.records if "moved to the map's new target" in r.getMessage()]
        assert len(moved) == 1


@pytest.mark.slow
async def test_a_route_switched_during_a_rate_limit_pause_sends_the_backlog_to_the_new_one(
    tmp_path: Path,
) -> None:
    """The operator points the map at another webhook while its backlog waits out a 429 of a
    minute: the backlog goes to the new webhook once, none of it to the old one."""
    async with _engine(tmp_path, 3) as engine:
        engine.discord.fail_next(429, {"message": "slow down", "retry_after": 60, "global": False})
        engine.enqueue(engine.hook(3), 4)
        state = engine.dispatcher.state("webhook:3")
        await until(lambda: state.paused_until > time.time() + 30)
        engine.live.replace(_settings(webhook_url(engine.url, 5)))
        await until(lambda: engine.store.outbox_counts() == {"sent": 4}, timeout=10)
        assert engine.titles("webhook:5") == ["note 0", "note 1", "note 2", "note 3"]
        assert engine.discord.messages_for("webhook:3") == []


@pytest.mark.slow
async def test_a_route_split_over_two_targets_moves_nothing(tmp_path: Path) -> None:
    """Webhook 3 carried every route; the reload sends the system route to webhook 5 and the
    rest to webhook 6: which should take the backlog is not delivery's to guess, so it fails
    as no longer configured, as before."""
    async with _engine(tmp_path, 3) as engine:
        engine.discord.disable_webhook(3)
        engine.enqueue(engine.hook(3), 2)
        await until(lambda: engine.dispatcher.dead_targets)
        split = f'system_webhook_url = "{webhook_url(engine.url, 5)}"'
        engine.live.replace(_settings(webhook_url(engine.url, 6), split))
        await until(lambda: engine.store.outbox_counts() == {"failed": 2}, timeout=10)
        assert engine.discord.messages_for("webhook:5") == []
        assert engine.discord.messages_for("webhook:6") == []


async def _reloaded_while_paused(engine: _Engine, count: int) -> None:
    """Webhook 3 dead with ``count`` notifications held; delivery paused, then a hot reload
    points the map at webhook 5: its move waits for the dispatcher's next look."""
    engine.discord.disable_webhook(3)
    engine.enqueue(engine.hook(3), count)
    await until(lambda: engine.dispatcher.dead_targets)
    engine.dispatcher.paused = True
    engine.live.replace(_settings(webhook_url(engine.url, 5)))
    await asyncio.sleep(0)  # the reload's wake finds delivery paused: no look


@pytest.mark.slow
async def test_two_reloads_before_a_look_move_the_backlog_to_the_last_target(
    tmp_path: Path,
) -> None:
    """Webhook 3 is dead with a backlog; two reloads point the map at webhook 5, then at 7,
    before the dispatcher looks again (delivery paused): the backlog goes to 7, once each.
    The second move's old key (5) is gone by the look, and the routing recorded from before
    the first (webhook 3) moves 3's rows to 7."""
    async with _engine(tmp_path, 3) as engine:
        await _reloaded_while_paused(engine, 2)
        engine.live.replace(_settings(webhook_url(engine.url, 7)))
        await asyncio.sleep(0)
        engine.dispatcher.paused = False
        engine.dispatcher.wake()
        await until(lambda: engine.store.outbox_counts() == {"sent": 2}, timeout=10)
        assert engine.titles("webhook:7") == ["note 0", "note 1"]
        assert engine.discord.messages_for("webhook:5") == []
        assert engine.store.recorded_routes()["home"] == dict.fromkeys(ROUTES, "webhook:7")


def test_which_targets_a_reload_moved() -> None:
    """Moved: every route of the old key now goes to one same target. Not moved: routes split,
    the key still used by another route, a route that now goes nowhere."""
    old, new = webhook_url("http://h", 3), webhook_url("http://h", 5)
    other = webhook_url("http://h", 6)
    moved = moved_targets(_settings(old), _settings(new))
    assert {key: target.key for key, target in moved.items()} == {
        ("home", "webhook:3"): "webhook:5"
    }
    split = f'system_webhook_url = "{other}"'
    assert moved_targets(_settings(old), _settings(new, split)) == {}
    kept = f'system_webhook_url = "{old}"'
    assert moved_targets(_settings(old), _settings(new, kept)) == {}  # webhook:3 still posts
    assert moved_targets(_settings(old, split), _settings(old)) == {
        ("home", "webhook:6"): Target(TargetKind.WEBHOOK, old, "home")
    }


# -- the same change made while the engine was stopped (h91) ------------------------------------


def _moved_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "moved to the map's new target" in r.getMessage()]


async def _dead_backlog(tmp_path: Path, count: int) -> None:
    """An engine whose map posts to webhook 3, which Discord deleted: ``count`` notifications
    held for it, then the engine stops."""
    async with _engine(tmp_path, 3) as engine:
        engine.discord.disable_webhook(3)
        engine.enqueue(engine.hook(3), count)
        await until(lambda: engine.dispatcher.dead_targets)
        await until(lambda: engine.store.outbox_counts() == {"pending": count})


@pytest.mark.slow
async def test_a_dead_webhook_replaced_while_the_engine_was_stopped_sends_its_backlog_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator stops the engine, makes a new webhook and puts its URL in the config, then
    starts it. The start knows the routing the map last ran with (recorded in the store), so
    it moves the held backlog as a hot reload would: delivered once to the new webhook, none
    failed. Before, the start did not know the old routing and failed them all as no longer
    configured."""
    await _dead_backlog(tmp_path, 4)
    with caplog.at_level(logging.INFO, logger="wanderer_console"):
        async with _engine(tmp_path, 5) as engine:
            await until(lambda: engine.store.outbox_counts() == {"sent": 4}, timeout=10)
            assert engine.titles("webhook:5") == ["note 0", "note 1", "note 2", "note 3"]
            assert engine.store.dead_targets() == []
            assert engine.store.failed_rows() == []
            assert engine.store.recorded_routes()["home"] == dict.fromkeys(ROUTES, "webhook:5")
    (moved,) = _moved_logs(caplog)
    assert moved.__dict__["ctx"]["notifications"] == 4


@pytest.mark.slow
async def test_a_reloads_move_not_applied_before_a_restart_is_applied_by_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A hot reload pointed the map at webhook 5 while delivery was paused (its move waits for
    the dispatcher's next look), and the engine stopped before that look: the start with the
    new config moves the backlog all the same."""
    async with _engine(tmp_path, 3) as engine:
        await _reloaded_while_paused(engine, 3)
        assert {row.target_key for row in engine.store.due_outbox(now=time.time() + 1)} == {
            "webhook:3"
        }
    with caplog.at_level(logging.INFO, logger="wanderer_console"):
        async with _engine(tmp_path, 5) as engine:
            await until(lambda: engine.store.outbox_counts() == {"sent": 3}, timeout=10)
            assert engine.titles("webhook:5") == ["note 0", "note 1", "note 2"]
    assert len(_moved_logs(caplog)) == 1


@pytest.mark.slow
async def test_routes_split_while_the_engine_was_stopped_move_nothing(tmp_path: Path) -> None:
    """The start applies the reload's rule: webhook 3 carried every route, the config now
    splits them over webhooks 5 and 6, so the backlog fails as no longer configured, as a
    reload leaves it (this passes before the recorded routing too: the rule is unchanged)."""
    await _dead_backlog(tmp_path, 2)
    split = f'system_webhook_url = "{webhook_url("{url}", 5)}"'
    async with _engine(tmp_path, 6, split) as engine:
        await until(lambda: engine.store.outbox_counts() == {"failed": 2}, timeout=10)
        assert engine.discord.messages_for("webhook:5") == []
        assert engine.discord.messages_for("webhook:6") == []
        recorded = engine.store.recorded_routes()["home"]
        assert recorded["system"] == "webhook:5"
        assert set(recorded.values()) == {"webhook:5", "webhook:6"}


@pytest.mark.slow
async def test_a_first_start_with_no_recorded_routing_moves_nothing_and_records_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The first start after the upgrade finds no routing recorded for the map: nothing is
    moved (the held backlog of a webhook the config no longer names fails as before), the
    rest is delivered, and the map's routing is recorded from then on: keys only, no URL."""
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        store.enqueue(
            [
                Notification(
                    "home",
                    NotificationType.KILL,
                    f"old{i}",
                    Target(TargetKind.WEBHOOK, webhook_url("http://127.0.0.1:9", 3), "home"),
                    {"embeds": [{"title": f"old {i}"}]},
                )
                for i in range(2)
            ]
        )
        store.set_dead_target("home", "webhook:3", reason="404", fingerprint="f", now=1.0)
    finally:
        store.close()
    with caplog.at_level(logging.INFO, logger="wanderer_console"):
        async with _engine(tmp_path, 5) as engine:
            await until(lambda: engine.store.outbox_counts() == {"failed": 2}, timeout=10)
            engine.enqueue(engine.hook(5), 2)
            await until(lambda: engine.store.outbox_counts() == {"failed": 2, "sent": 2})
            assert engine.titles("webhook:5") == ["note 0", "note 1"]
            recorded = engine.store.recorded_routes()
    assert recorded == {"home": dict.fromkeys(ROUTES, "webhook:5")}
    assert _moved_logs(caplog) == []


# -- the operations webhook's alert messages (tenant ``_ops``) ----------------------------------


def _ops(webhook_id: int, base: str = "{url}") -> str:
    """Extra settings for :func:`_engine`: the operations webhook (after the map's section)."""
    return f'\n[alerts]\ndiscord_webhook_url = "{webhook_url(base, webhook_id)}"'


def _enqueue_alerts(engine: _Engine, webhook_id: int, count: int) -> None:
    target = Target(TargetKind.WEBHOOK, webhook_url(engine.url, webhook_id), OPS_TENANT)
    engine.store.enqueue(
        [
            Notification(
                OPS_TENANT,
                NotificationType.ALERT,
                f"alert{i}",
                target,
                {"embeds": [{"title": f"alert {i}"}]},
            )
            for i in range(count)
        ]
    )
    engine.dispatcher.wake()


def _alert_titles(engine: _Engine, key: str) -> list[str]:
    """Every alert posted to ``key`` (alerts share a message: up to ten embeds each)."""
    messages = engine.discord.messages_for(key)
    return sorted(embed["title"] for m in messages for embed in m.body["embeds"])


async def _dead_alerts(engine: _Engine, count: int) -> None:
    """``count`` alert messages held for operations webhook 7, which Discord deleted."""
    engine.discord.disable_webhook(7)
    _enqueue_alerts(engine, 7, count)
    await until(lambda: set(engine.dispatcher.dead_targets) == {(OPS_TENANT, "webhook:7")})
    await until(lambda: engine.store.outbox_counts() == {"pending": count})


def test_which_operations_webhook_a_reload_moved() -> None:
    """The operations webhook replaced moves its alert messages; added or removed, nothing
    moves (there was nowhere to post them, or there is nowhere now)."""
    hook = webhook_url("http://h", 3)
    seven, eight = _ops(7, "http://o"), _ops(8, "http://o")
    moved = moved_targets(_settings(hook, seven), _settings(hook, eight))
    assert {key: target.key for key, target in moved.items()} == {
        (OPS_TENANT, "webhook:7"): "webhook:8"
    }
    assert moved[(OPS_TENANT, "webhook:7")].tenant == OPS_TENANT
    assert moved_targets(_settings(hook), _settings(hook, eight)) == {}
    assert moved_targets(_settings(hook, seven), _settings(hook)) == {}
    assert moved_targets(_settings(hook, seven), _settings(hook, seven)) == {}


@pytest.mark.slow
async def test_a_dead_operations_webhook_replaced_in_the_config_sends_what_it_held(
    tmp_path: Path,
) -> None:
    """Discord deleted the operations webhook while alert messages waited for it; the operator
    puts a new one in the config (a hot reload): the alerts go to it, once each, instead of
    failing as no longer configured (as they did: only a map's routes moved)."""
    async with _engine(tmp_path, 3, _ops(7)) as engine:
        await _dead_alerts(engine, 2)
        new = _settings(webhook_url(engine.url, 3), _ops(8, engine.url))
        engine.live.replace(new)
        await until(lambda: engine.store.outbox_counts() == {"sent": 2}, timeout=10)
        assert _alert_titles(engine, "webhook:8") == ["alert 0", "alert 1"]
        assert engine.discord.messages_for("webhook:7") == []
        assert engine.store.dead_targets() == []
        assert engine.store.recorded_routes()[OPS_TENANT] == {"alerts": "webhook:8"}


@pytest.mark.slow
async def test_a_dead_operations_webhook_replaced_while_the_engine_was_stopped(
    tmp_path: Path,
) -> None:
    """The same change made while the engine was stopped: the start moves the held alerts to
    the new operations webhook, as it moves a map's backlog."""
    async with _engine(tmp_path, 3, _ops(7)) as engine:
        await _dead_alerts(engine, 3)
        assert engine.store.recorded_routes()[OPS_TENANT] == {"alerts": "webhook:7"}
    async with _engine(tmp_path, 3, _ops(8)) as engine:
        await until(lambda: engine.store.outbox_counts() == {"sent": 3}, timeout=10)
        assert _alert_titles(engine, "webhook:8") == ["alert 0", "alert 1", "alert 2"]
        assert engine.store.failed_rows() == []
