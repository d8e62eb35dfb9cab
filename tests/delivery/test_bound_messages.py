"""Messages bound to a send id (re-sent as the same message) against the fake Discord.

A row that keeps its ``send_id`` goes out again only as the message it was first sent in: for a
bot channel that means under the same nonce, which Discord answers with the message it already
created under it. Sending only part of such a message under that nonce would make Discord answer
the rest with the part: those notifications would be marked sent and never posted.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.delivery.rig import FAST, make_rig, until
from wanderer_console.delivery import dispatcher as dispatcher_module
from wanderer_console.delivery.dispatcher import Dispatcher
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.notification import Notification, NotificationType, Target

pytestmark = pytest.mark.timeout(60)


def _note(target: Target, title: str) -> Notification:
    body = {"embeds": [{"title": title, "description": "x"}]}
    return Notification("home", NotificationType.KILL, f"n:{title}", target, body)


async def test_a_message_cut_by_the_read_limit_is_never_half_sent_under_its_nonce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bot message answered 429 keeps its nonce; when the next read's limit falls between its
    rows (other targets' rows were queued between them), its first part must not go out under
    that nonce alone, or Discord answers the rest with the first part and they are lost."""
    monkeypatch.setattr(dispatcher_module, "_FETCH", 4)  # a small read limit, not 500
    async with make_rig(tmp_path, policy=FAST, webhook_limit=100) as rig:
        rig.dispatcher.channel_per_minute = 1000
        bot, other = rig.channel("111"), rig.channel("222")
        # Queued before the dispatcher's first look: ids 1 (bot), 2-4 (other), 5 (bot).
        rig.store.enqueue([_note(bot, "first")])
        rig.store.enqueue([_note(other, f"other {i}") for i in range(3)])
        rig.store.enqueue([_note(bot, "second")])
        # What the dispatcher writes after a 429 to the message of rows 1 and 5 (nothing posted).
        assert rig.store.claim([1, 5], send_id="a1b2c3d4e5f60718") == 2
        rig.store.release([1, 5], next_attempt_at=time.time(), error="429", keep_send_id=True)
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts() == {"sent": 5})
        assert rig.titles("channel:111") == {"first": 1, "second": 1}


@pytest.mark.slow
async def test_a_message_sent_once_is_re_sent_even_when_packed_with_one_already_sent_twice(
    tmp_path: Path,
) -> None:
    """A webhook notification whose send had no known outcome was re-sent in its message,
    which Discord refused (400): the message was split, so the notification lost its send id,
    and the engine restarted before it went out alone (the split is kept in memory only). It now
    goes in one message with a new notification, whose answer is lost too. The old one has been
    sent twice without an answer and stops there; the new one was sent once and gets its one
    re-send, never given up as "probably delivered" after one try."""
    async with make_rig(tmp_path, timeout=0.3) as rig:
        rig.discord.answer_delay = 1.0  # Discord posts, the answer comes after the client gives up
        hook = rig.hook(9)
        rig.store.enqueue([_note(hook, "old")])
        # What the outbox holds after that split: pending, uncertain once, no send id.
        assert rig.store.claim([1], send_id="0f1e2d3c4b5a6978") == 1
        rig.store.release([1], next_attempt_at=time.time(), error="400", uncertain=True)
        rig.store.enqueue([_note(hook, "new")])
        rig.dispatcher.wake()
        await until(lambda: rig.metrics.value("wc_delivery_failures_total", reason="uncertain"))
        assert [e["title"] for e in rig.discord.messages_for(hook.key)[0].body["embeds"]] == [
            "old",
            "new",
        ]
        rig.discord.answer_delay = 0.0
        await until(lambda: not {"pending", "sending"} & set(rig.store.outbox_counts()))
        assert rig.store.outbox_counts() == {"uncertain": 1, "sent": 1}
    assert rig.titles(hook.key) == {"old": 1, "new": 2}


@pytest.mark.slow
async def test_a_webhook_re_send_cut_by_a_stop_is_not_sent_a_third_time(tmp_path: Path) -> None:
    """A webhook message's send had no known outcome (Discord posted it); its one re-send is
    posted too but still unanswered when the engine stops. At the next start it has been sent
    twice without an answer: it stays ``uncertain`` for the operator, never posted a third time
    (as when the re-send's answer is lost while the engine runs)."""
    async with make_rig(tmp_path, timeout=0.3) as rig:
        rig.discord.answer_delay = 1.0
        hook = rig.hook(10)
        rig.store.enqueue([_note(hook, "once")])
        rig.dispatcher.wake()
        await until(lambda: rig.metrics.value("wc_delivery_failures_total", reason="uncertain"))
        rig.discord.answer_delay = 3.0  # the re-send (30 s to answer) is still out at the stop
        await until(lambda: len(rig.discord.messages_for(hook.key)) == 2)
        await rig.dispatcher.stop(grace=0.1)
        rig.discord.answer_delay = 0.0
        # The next start: a new dispatcher on the same outbox.
        restarted = Dispatcher(
            rig.store, rig.dispatcher.sender, rig.metrics, lambda: rig.targets, policy=FAST
        )
        task = asyncio.create_task(restarted.run())
        try:
            await until(lambda: "pending" not in rig.store.outbox_counts())
            await asyncio.sleep(FAST.uncertain_window + 0.3)  # a third send would be out by now
        finally:
            await restarted.stop(grace=1.0)
            await task
        assert rig.store.outbox_counts() == {"uncertain": 1}
    assert rig.titles(hook.key) == {"once": 2}


async def test_a_bot_message_re_queued_by_the_operator_goes_again_under_its_nonce(
    tmp_path: Path,
) -> None:
    """A bot message's send had no known outcome (Discord posted it); before its re-send its
    channel left the config, so it failed. The channel comes back and the operator re-queues it
    (``outbox retry``) within Discord's nonce window: it goes again under its first nonce, and
    Discord returns the message it already posted instead of posting it twice."""
    async with make_rig(tmp_path, timeout=0.3) as rig:
        rig.discord.answer_delay = 1.0
        bot = rig.channel("333")
        resolved = rig.targets[("home", bot.key)]
        rig.store.enqueue([_note(bot, "once")])
        rig.dispatcher.wake()
        await until(lambda: rig.metrics.value("wc_delivery_failures_total", reason="uncertain"))
        del rig.targets[("home", bot.key)]
        await until(lambda: rig.store.outbox_counts() == {"failed": 1})
        rig.discord.answer_delay = 0.0
        rig.targets[("home", bot.key)] = resolved
        assert rig.dispatcher.retry_target(bot.key) == 1
        await until(lambda: rig.store.outbox_counts() == {"sent": 1})
    assert rig.titles(bot.key) == {"once": 1}
    assert rig.discord.nonce_replays == 1


async def test_a_send_with_no_answer_past_the_maximum_age_is_kept_as_probably_delivered(
    tmp_path: Path,
) -> None:
    """A notification past its maximum age whose last send had no known outcome (Discord
    posted it) is not "undelivered": it ends ``uncertain`` (probably delivered), which
    ``outbox retry`` leaves alone, rather than ``failed``, which it would post a second time."""
    policy = DeliveryPolicy(backoff_base=0.05, uncertain_window=0.5, max_age=0.1)
    async with make_rig(tmp_path, timeout=0.3, policy=policy) as rig:
        rig.discord.answer_delay = 1.0
        hook = rig.hook(11)
        rig.store.enqueue([_note(hook, "late")])
        rig.dispatcher.wake()
        await until(lambda: not {"pending", "sending"} & set(rig.store.outbox_counts()))
        rig.discord.answer_delay = 0.0
        rig.dispatcher.retry_target(hook.key)
        await until(lambda: not {"pending", "sending"} & set(rig.store.outbox_counts()))
        assert rig.store.outbox_counts() == {"uncertain": 1}
    assert rig.titles(hook.key) == {"late": 1}


async def test_an_earlier_send_with_no_answer_keeps_a_notification_past_its_age_probably_delivered(
    tmp_path: Path,
) -> None:
    """Its first send had no known outcome (Discord posted it), its re-send was answered 503
    (nothing posted then), and by that answer it was past its maximum age: the 503 says nothing
    of the first send, so it ends ``uncertain`` (probably delivered), not ``failed`` as
    "undelivered", which ``outbox retry`` would post a second time."""
    policy = DeliveryPolicy(backoff_base=0.05, uncertain_window=2.0, max_age=1.5)
    async with make_rig(tmp_path, timeout=0.3, policy=policy) as rig:
        rig.discord.answer_delay = 1.0
        hook = rig.hook(12)
        rig.store.enqueue([_note(hook, "early")])
        rig.dispatcher.wake()
        await until(lambda: [r.uncertain for r in rig.store.due_outbox(now=1e12)] == [1])
        rig.discord.answer_delay = 0.0
        rig.discord.fail_next(503)
        await until(lambda: not {"pending", "sending"} & set(rig.store.outbox_counts()))
        assert rig.discord.pending_faults() == 0  # the re-send met the 503
        assert rig.store.outbox_counts() == {"uncertain": 1}
        assert rig.dispatcher.retry_target(hook.key) == 0
        assert rig.store.outbox_counts() == {"uncertain": 1}
    assert rig.titles(hook.key) == {"early": 1}
