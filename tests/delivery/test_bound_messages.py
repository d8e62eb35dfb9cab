"""Messages bound to a send id (re-sent as the same message) against the fake Discord.

A row that keeps its ``send_id`` goes out again only as the message it was first sent in: for a
bot channel that means under the same nonce, which Discord answers with the message it already
created under it. Sending only part of such a message under that nonce would make Discord answer
the rest with the part: those notifications would be marked sent and never posted.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.delivery.rig import FAST, make_rig, until
from wanderer_console.delivery import dispatcher as dispatcher_module
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
