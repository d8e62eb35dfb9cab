"""Delivery through outages, dead targets, slow answers and long pauses, over real sockets.

The dispatcher runs against the simulator's fake Discord on 127.0.0.1 with its real HTTP chain
(retry, rate limit, circuit breaker); the fake injects the faults. Waits are scaled down through
the :class:`DeliveryPolicy` (an 18-minute outage becomes a few seconds of 500s with a backoff
capped at a fraction of a second) so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.delivery.rig import BOT_TOKEN, FAST, Rig, make_rig, until
from wanderer_console.delivery.dispatcher import ResolvedTarget
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.sim import webhook_url
from wanderer_console.store.writes import StoreWriteError

pytestmark = pytest.mark.timeout(90)


@pytest.mark.slow
async def test_a_long_discord_outage_delays_but_never_drops_notifications(tmp_path: Path) -> None:
    # The old rule gave up after 12 attempts (about 17 minutes of backoff): here the outage
    # outlasts 12 attempts many times over, with the circuit breaker opening and closing.
    async with make_rig(tmp_path, chain=True) as rig:
        hook = rig.hook(1)
        rig.discord.outage = (500, {"message": "Internal Server Error"}, {})
        rig.enqueue(hook, 10)
        await until(lambda: rig.discord.requests >= 15)
        await asyncio.sleep(1.0)
        # Nothing given up: every row waits for a retry or is in one.
        assert set(rig.store.outbox_counts()) <= {"pending", "sending"}
        assert sum(rig.store.outbox_counts().values()) == 10
        rig.discord.outage = None
        await until(lambda: rig.store.outbox_counts() == {"sent": 10})
    assert sum(rig.titles("webhook:1").values()) == 10
    assert rig.metrics.value("wc_delivery_failures_total", reason="retry") >= 12


@pytest.mark.slow
async def test_an_open_breaker_is_not_an_attempt(tmp_path: Path) -> None:
    # Retries come faster (0.2 s at most) than the breaker's probes (every 0.6 s).
    async with make_rig(tmp_path, chain=True, cooldown=0.6) as rig:
        hook = rig.hook(2)
        rig.discord.outage = (503, {"message": "Service Unavailable"}, {})
        rig.enqueue(hook, 1)
        fast_failures = "wc_errors_total"
        await until(
            lambda: rig.metrics.value(fast_failures, component="http:discord:circuit_open") >= 3
        )
        rig.discord.outage = None
        await until(lambda: rig.store.outbox_counts() == {"sent": 1})
        (attempts,) = rig.store._conn.execute("SELECT attempts FROM outbox").fetchone()
    # Every request that reached Discord is one attempt (the last one confirmed it); the
    # failures the open breaker answered without sending anything are not.
    assert attempts == rig.discord.requests


@pytest.mark.slow
async def test_a_notification_expires_only_after_its_maximum_age_with_the_reason_kept(
    tmp_path: Path,
) -> None:
    policy = DeliveryPolicy(backoff_base=0.05, backoff_cap=0.1, max_age=1.0)
    async with make_rig(tmp_path, policy=policy) as rig:
        hook = rig.hook(3)
        rig.discord.outage = (502, {"message": "Bad Gateway"}, {})
        rig.enqueue(hook, 1)
        await until(lambda: rig.discord.requests >= 3)
        # Still trying: between attempts (pending) or in one (sending), never given up yet.
        assert set(rig.store.outbox_counts()) <= {"pending", "sending"}
        assert rig.store.failed_rows() == []
        await until(lambda: rig.store.outbox_counts() == {"failed": 1})
        reason = rig.store.failed_rows()[0].last_error or ""
    assert reason.startswith("expired: undelivered after")
    assert "502" in reason


@pytest.mark.slow
async def test_a_webhook_404_then_fixed_by_config_delivers_everything_held(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        broken = rig.hook(4)
        rig.discord.disable_webhook(4)
        rig.enqueue(broken, 5)
        await until(lambda: rig.dispatcher.dead_targets)
        rig.enqueue(broken, 5, tag="later ")
        await asyncio.sleep(0.3)
        assert rig.discord.rejected_404 == 1  # one request, then the target is held
        assert rig.store.outbox_counts() == {"pending": 10}
        # The operator fixes the webhook URL (a new token): the target revives by itself.
        rig.discord.enable_webhook(4)
        fixed = Target(TargetKind.WEBHOOK, webhook_url(rig.server.url, 4, "new-token"), "home")
        rig.targets[("home", fixed.key)] = ResolvedTarget(fixed)
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts() == {"sent": 10})
    assert sum(rig.titles("webhook:4").values()) == 10
    assert rig.dispatcher.dead_targets == {}


async def test_a_wrong_bot_token_then_fixed_delivers_everything_held(tmp_path: Path) -> None:
    async with make_rig(tmp_path) as rig:
        rig.channel("100000000000000001", token="wrong-token")
        target = rig.targets[("home", "channel:100000000000000001")].target
        rig.enqueue(target, 24)
        await until(lambda: rig.dispatcher.dead_targets)
        assert rig.discord.rejected_401 == 1
        assert rig.store.outbox_counts() == {"pending": 24}
        rig.channel("100000000000000001")  # the right token, as a hot reload brings it
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts() == {"sent": 24})
    assert sum(rig.titles("channel:100000000000000001").values()) == 24


@pytest.mark.slow
async def test_slow_answers_post_bot_messages_once_and_webhook_messages_at_most_twice(
    tmp_path: Path,
) -> None:
    # Discord posts at once but answers after 1 s; the client gives up after 0.3 s.
    async with make_rig(tmp_path, timeout=0.3) as rig:
        rig.discord.answer_delay = 1.0
        bot = rig.channel("100000000000000002")
        hook = rig.hook(5)
        rig.enqueue(bot, 5)
        rig.enqueue(hook, 5)
        await until(lambda: rig.store.outbox_counts() == {"sent": 10}, timeout=60)
        await asyncio.sleep(1.2)  # answers still on their way are counted too
    bot_titles = rig.titles("channel:100000000000000002")
    hook_titles = rig.titles("webhook:5")
    assert set(bot_titles) == {f"note {i}" for i in range(5)}
    assert max(bot_titles.values()) == 1  # the nonce made every re-send return the original
    assert rig.discord.nonce_replays >= 1
    assert set(hook_titles) == {f"note {i}" for i in range(5)}
    assert max(hook_titles.values()) <= 2  # at most one double per uncertain message
    doubled = sum(n - 1 for n in hook_titles.values())
    counted = rig.metrics.value(
        "wc_delivery_uncertain_total", target_kind="webhook", resend="unprotected"
    )
    assert doubled <= counted


@pytest.mark.slow
async def test_an_uncertain_message_re_sent_through_a_429_and_a_500_is_counted_once(
    tmp_path: Path,
) -> None:
    """A webhook message's send gets no answer in time (Discord posted it). Its re-send, the one
    that may post it twice, is answered 429, then 500: neither posted anything, so the risk is
    still the one re-send that finally goes through. ``wc_delivery_uncertain_total`` counts one
    possible double for the one unknown outcome, not one per attempt. The target's snapshot
    counts it too, with when it was re-sent (the console marks the target for an hour after)."""
    async with make_rig(tmp_path, timeout=0.3) as rig:
        rig.discord.answer_delay = 1.0
        hook = rig.hook(8)
        before = time.time()
        rig.enqueue(hook, 1)
        await until(lambda: rig.metrics.value("wc_delivery_failures_total", reason="uncertain"))
        rig.discord.answer_delay = 0.0
        rig.discord.fail_next(429, {"message": "slow down", "retry_after": 0.05, "global": False})
        rig.discord.fail_next(500)
        await until(lambda: rig.store.outbox_counts() == {"sent": 1})
        view = rig.dispatcher.snapshot()["targets"]["webhook:8"]
    assert view["uncertain"] == 1
    assert before <= view["last_uncertain_at"] <= time.time()
    assert rig.discord.requests == 4  # the lost answer, the 429, the 500, the confirmation
    doubled = sum(n - 1 for n in rig.titles("webhook:8").values())
    assert doubled == 1
    counted = rig.metrics.value(
        "wc_delivery_uncertain_total", target_kind="webhook", resend="unprotected"
    )
    assert counted == 1


@pytest.mark.slow
async def test_a_global_429_of_an_hour_is_shown_with_its_end_and_the_backlog_stays_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with make_rig(tmp_path) as rig:
        hook = rig.hook(6)
        rig.discord.fail_next(
            429,
            {"message": "You are being rate limited.", "retry_after": 3600, "global": True},
            {"X-RateLimit-Global": "true"},
        )
        with caplog.at_level(logging.WARNING, logger="wanderer_console"):
            rig.enqueue(hook, 6)
            await until(lambda: rig.dispatcher.global_pause_until > time.time() + 3000)
            await asyncio.sleep(1.2)  # the pending gauge is refreshed at most once a second
            snapshot = rig.dispatcher.snapshot()
    warning = next(r for r in caplog.records if r.getMessage() == "all delivery paused")
    assert warning.levelno == logging.WARNING
    assert warning.ctx["resume_in_seconds"] > 3500  # type: ignore[attr-defined]
    assert "resume_at" in warning.ctx  # type: ignore[attr-defined]
    assert snapshot["global_pause_until"] > time.time() + 3000
    assert rig.metrics.value("wc_outbox_pending") == 6
    assert rig.metrics.value("wc_delivery_paused_seconds") > 3500


@pytest.mark.slow
async def test_channel_messages_per_minute_applies_live(tmp_path: Path) -> None:
    policy = FAST
    async with make_rig(tmp_path, policy=policy) as rig:
        rig.dispatcher.channel_per_minute = 2
        bot = rig.channel("100000000000000003")
        # Mentions are never batched: one message per notification.
        notes = [
            Notification(
                "home", NotificationType.RALLY, f"r{i}", bot, {"content": f"<@&1> rally {i}"}
            )
            for i in range(6)
        ]
        rig.store.enqueue(notes)
        rig.dispatcher.wake()
        await until(lambda: len(rig.discord.messages_for("channel:100000000000000003")) == 2)
        await asyncio.sleep(0.5)
        assert len(rig.discord.messages_for("channel:100000000000000003")) == 2  # paced
        rig.dispatcher.channel_per_minute = 120  # the reload raises the budget
        await until(lambda: rig.store.outbox_counts() == {"sent": 6}, timeout=10)


_SHARED_CHANNEL = "100000000000000002"


async def _dead_for_home_only(rig: Rig) -> tuple[Target, Target]:
    """``home`` and ``other`` post into one channel, each with its own bot token; ``home``'s is
    refused (401) on its first notification, so the channel is dead for ``home`` only. Returns
    both maps' targets (``home``'s, ``other``'s)."""
    refused = Target(TargetKind.BOT_CHANNEL, _SHARED_CHANNEL, "home")
    good = Target(TargetKind.BOT_CHANNEL, _SHARED_CHANNEL, "other")
    rig.targets[("home", refused.key)] = ResolvedTarget(refused, "revoked-token")
    rig.targets[("other", good.key)] = ResolvedTarget(good, BOT_TOKEN)
    body = {"embeds": [{"title": "held", "description": "x"}]}
    rig.store.enqueue([Notification("home", NotificationType.KILL, "h", refused, body)])
    rig.dispatcher.wake()
    await until(lambda: rig.dispatcher.dead_targets)
    return refused, good


async def test_a_map_refused_on_a_channel_holds_only_its_own_notifications_there(
    tmp_path: Path,
) -> None:
    """Two maps post into the same channel, each with its own bot token. One map's token is
    refused (401): its target, held as dead, is that map's alone; the other map's notifications
    to the same channel are still delivered (they waited, unread, for the first map's fix)."""
    channel = _SHARED_CHANNEL
    async with make_rig(tmp_path) as rig:
        _refused, good = await _dead_for_home_only(rig)
        assert list(rig.dispatcher.dead_targets) == [("home", f"channel:{channel}")]
        body = {"embeds": [{"title": "delivered", "description": "x"}]}
        rig.store.enqueue([Notification("other", NotificationType.KILL, "o", good, body)])
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts() == {"pending": 1, "sent": 1}, timeout=5.0)
    assert rig.titles(f"channel:{channel}") == {"delivered": 1}
    assert rig.discord.rejected_401 == 1


async def test_the_snapshot_counts_what_a_dead_mark_holds_for_its_map_apart(
    tmp_path: Path,
) -> None:
    """A channel two maps post to, dead for one: the snapshot's ``pending`` counts the key's
    rows of both maps; ``held_for`` counts, per map it is dead for, the rows that wait for the
    fix, and not the other map's rows, which are on their way."""
    channel = _SHARED_CHANNEL
    async with make_rig(tmp_path) as rig:
        refused, good = await _dead_for_home_only(rig)
        body = {"embeds": [{"title": "held", "description": "x"}]}
        rig.dispatcher.paused = True  # the other map's rows stay pending while counted
        rig.store.enqueue(
            [Notification("home", NotificationType.KILL, f"h{i}", refused, body) for i in range(2)]
            + [Notification("other", NotificationType.KILL, f"o{i}", good, body) for i in range(4)]
        )
        key = f"channel:{channel}"
        await until(lambda: rig.dispatcher.snapshot()["targets"][key]["pending"] == 7, timeout=10)
        target = rig.dispatcher.snapshot()["targets"][key]
        assert target["held_for"] == {"home": 3}
        assert target["disabled"] is not None


async def test_a_fault_left_by_another_writer_does_not_hold_delivery(tmp_path: Path) -> None:
    # A write that does not try again (the name cache's save, an alert, a trend minute) fails
    # and marks the store failing; the store then writes again, but nothing else writes (no
    # event comes in). Delivery, with no outcome of its own to record, probes the store itself
    # instead of waiting for the next event or the hourly prune.
    async with make_rig(tmp_path) as rig:
        hook = rig.hook(1)
        rig.dispatcher.paused = True
        rig.enqueue(hook, 1)
        rig.store._conn.execute("PRAGMA query_only = ON")  # the store refuses for real
        with pytest.raises(StoreWriteError):
            rig.store.save_cache_entries([("system", "1", 1, '"Jita"', 2e9)])
        rig.store._conn.execute("PRAGMA query_only = OFF")
        assert rig.store.write_fault is not None
        rig.dispatcher.fault_recheck_after = 0.5  # 15 s: three of the pipeline's retries
        rig.dispatcher.paused = False
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts() == {"sent": 1}, timeout=15)
        assert rig.store.write_fault is None
        assert len(rig.discord.received) == 1


class _CommitAnswerLost:
    """The store's connection, losing the answer to one claim's COMMIT after it applied (as a
    PostgreSQL connection dropped during the COMMIT does: the caller sees an error, the server
    has the rows claimed). A fault a real server cannot be made to produce on cue."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._claiming = False
        self.lost = 0

    def execute(self, sql: str, params: object = ()) -> sqlite3.Cursor:
        if sql.startswith("UPDATE outbox SET status = 'sending'"):
            self._claiming = True
        cursor = self._conn.execute(sql, params)  # type: ignore[arg-type]
        if sql in ("COMMIT", "ROLLBACK"):
            claimed, self._claiming = self._claiming, False
            if sql == "COMMIT" and claimed and not self.lost:
                self.lost += 1
                raise sqlite3.OperationalError("server closed the connection unexpectedly")
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


async def test_a_claim_applied_but_reported_failed_is_undone_and_sent_once(
    tmp_path: Path,
) -> None:
    # The claim's COMMIT applied but its answer was lost: delivery believes nothing was
    # claimed, yet the rows are 'sending' under its own live claim: never due again, and no
    # recovery touches a live claim. They must be put back and sent, once.
    async with make_rig(tmp_path) as rig:
        hook = rig.hook(1)
        rig.dispatcher.paused = True
        rig.enqueue(hook, 2)
        guard = rig.store._writes
        lossy = _CommitAnswerLost(guard._conn)
        guard._conn = lossy  # type: ignore[assignment]
        rig.dispatcher.paused = False
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts() == {"sent": 2}, timeout=10)
        assert lossy.lost == 1
        titles = Counter(embed["title"] for embed in rig.discord.embeds)
        assert titles == {"note 0": 1, "note 1": 1}  # each posted once


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        ({"message": "slow down", "global": False}, {"Retry-After": "inf"}),
        ({"message": "slow down", "global": False}, {"Retry-After": "nan"}),
        (
            {"message": "slow down", "global": False},
            {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "inf"},
        ),
        ({"message": "slow down", "retry_after": -5, "global": False}, {}),
    ],
    ids=["retry-after-inf", "retry-after-nan", "reset-after-inf", "retry-after-negative"],
)
async def test_a_429_asking_for_a_wait_that_is_no_number_is_waited_out_briefly(
    tmp_path: Path, body: dict[str, Any], headers: dict[str, str]
) -> None:
    """A 429 whose wait is ``inf``, ``nan`` or negative (a proxy's garbage, ``1e999``): the
    message waited for ever (parked at ``inf``). Such a wait is no wait Discord asked for: the
    usual fallback applies and the message is delivered."""
    async with make_rig(tmp_path) as rig:
        hook = rig.hook(11)
        rig.discord.fail_next(429, body, headers)
        rig.enqueue(hook, 1)
        await until(lambda: rig.store.outbox_counts() == {"sent": 1}, timeout=15)
    assert rig.discord.requests == 2


async def test_a_wait_of_years_asked_by_discord_is_cut_to_a_day(tmp_path: Path) -> None:
    """A 429 (or a spent bucket) asking for 10^9 s parked the message for 31 years, shown as
    pending all along; the delivery layer now waits at most a day, as the gateway does."""
    async with make_rig(tmp_path) as rig:
        hook = rig.hook(12)
        rig.discord.fail_next(429, {"message": "slow down", "retry_after": 1e9, "global": False})
        rig.enqueue(hook, 1)
        await until(
            lambda: rig.discord.requests >= 1 and rig.store.outbox_counts() == {"pending": 1}
        )
        state = rig.dispatcher.state(hook.key)
        assert time.time() + 3600 < state.paused_until <= time.time() + 86_400 + 5
        (next_at,) = rig.store._conn.execute("SELECT next_attempt_at FROM outbox").fetchone()
        assert next_at <= time.time() + 86_400 + 5


async def test_a_confirmation_the_store_still_refuses_at_stop_is_said_with_what_follows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Discord confirmed a message while the store could not write: the confirmation is kept in
    # memory and delivery pauses. The engine is stopped before the store writes again: the
    # message is posted but its row stays claimed, so the next start re-sends it as uncertain
    # (a webhook message may post twice). The stop said only "in-flight rows not settled at
    # stop; the next start does it", a warning that hides it; it now says at ERROR how many
    # outcomes are lost and what follows, and does not settle rows whose outcome it lost.
    async with make_rig(tmp_path) as rig:
        hook = rig.hook(1)
        rig.discord.answer_delay = 1.0  # posted at once, answered a second later
        rig.enqueue(hook, 1)
        await until(lambda: len(rig.discord.received) == 1)
        rig.store._conn.execute("PRAGMA query_only = ON")  # the store refuses for real
        await until(lambda: len(rig.dispatcher._journal) == 1)  # the confirmation is kept
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wanderer_console.delivery.dispatcher"):
            await rig.dispatcher.stop()
        said = [r for r in caplog.records if r.name == "wanderer_console.delivery.dispatcher"]
        assert [r.levelno for r in said] == [logging.ERROR], [r.getMessage() for r in said]
        assert said[0].getMessage().startswith("outcomes not recorded at stop")
        ctx = said[0].ctx  # type: ignore[attr-defined]
        assert ctx["outcomes"] == 1
        assert ctx["operations"] == ["mark sent"]
        rig.store._conn.execute("PRAGMA query_only = OFF")
        assert rig.store.outbox_counts() == {"sending": 1}  # claimed: uncertain at the next start
