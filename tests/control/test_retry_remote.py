"""Retrying a target from an attached console (``POST /v1/retry``), as ``outbox retry`` does.

A real engine on the simulator, a console attached over its control socket. The command line
refuses a target with nothing to retry (a mistyped key, another engine's target) and says when
a dead target's held notifications go out; the console's retry said ``Retrying …: 0
notifications re-queued.`` with ``ok`` in both cases: a typo read as done, and a revived dead
target (whose notifications wait pending, not failed) read as if nothing would be sent.
"""

from __future__ import annotations

import time

from tests.support import wait_for
from wanderer_console.domain.notification import Notification, NotificationType
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.runtime import Runtime

ACTOR = "tui:alice@laptop"


async def test_retrying_a_target_with_nothing_to_retry_is_refused_and_changes_nothing(
    engine: Runtime, remote: RemoteBackend
) -> None:
    before = engine.store.outbox_counts()
    result = await remote.retry_target("webhook:4242424242", actor=ACTOR)
    assert not result.ok
    assert "nothing to retry for webhook:4242424242" in result.message
    assert "outbox list" in result.message
    assert engine.store.outbox_counts() == before


async def test_retrying_a_dead_target_says_its_held_notifications_go_and_sends_them_once(
    engine: Runtime, remote: RemoteBackend
) -> None:
    (tenant, key), resolved = next(iter(engine.dispatcher._targets().items()))
    assert (await remote.set_paused(True, actor=ACTOR)).ok  # nothing goes while it is set up
    engine.store.set_dead_target(
        tenant, key, reason="404 Unknown Webhook", fingerprint=resolved.fingerprint, now=time.time()
    )
    engine.store.enqueue(
        [
            Notification(
                tenant, NotificationType.KILL, f"held:{i}", resolved.target, {"content": "x"}
            )
            for i in range(2)
        ]
    )
    sent_before = engine.store.outbox_counts().get("sent", 0)

    result = await remote.retry_target(key, actor=ACTOR)
    assert result.ok
    assert result.message == f"Retrying {key}: 2 held notifications go out now."

    assert (await remote.set_paused(False, actor=ACTOR)).ok
    await wait_for(lambda: engine.store.outbox_counts().get("sent", 0) >= sent_before + 2, 20)
    assert not engine.store.dead_targets()
