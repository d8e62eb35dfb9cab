"""A target's configuration changed while its notifications wait (a dead webhook replaced)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.delivery.rig import Rig, make_rig, until
from wanderer_console.delivery.outcomes import OutcomeJournal
from wanderer_console.delivery.policy import ResolvedTarget, TargetState
from wanderer_console.delivery.targets import DeadTargets
from wanderer_console.domain.notification import Target, TargetKind
from wanderer_console.sim import webhook_url
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
        dead.refresh(targets, lambda tenant: tenant == "home")
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
