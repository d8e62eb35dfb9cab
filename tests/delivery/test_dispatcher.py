"""The outbox dispatcher against the fake Discord over real loopback sockets."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.delivery.rig import Rig, count_reads, make_rig, until
from wanderer_console.delivery import dispatcher as dispatcher_module
from wanderer_console.delivery.dispatcher import _SENDS_STARTING, ResolvedTarget
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.clock import FrozenClock
from wanderer_console.domain.notification import (
    Notification,
    NotificationType,
    Target,
    TargetKind,
)
from wanderer_console.store.base import SentMessage
from wanderer_console.telemetry.context import bind_event, bound_fields

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    # Discord's own pacing (5 per 2 s) and the default delivery rules.
    async with make_rig(
        tmp_path, policy=DeliveryPolicy(), webhook_limit=5, webhook_window=2.0, poll_interval=0.1
    ) as built:
        yield built


@pytest.mark.slow
async def test_burst_is_batched_and_paced_without_429(rig: Rig) -> None:
    target = rig.hook(1)
    rig.enqueue(target, 75)
    await until(lambda: rig.store.outbox_counts() == {"sent": 75})
    received = rig.discord.messages_for("webhook:1")
    assert sum(len(m.body["embeds"]) for m in received) == 75
    assert len(received) <= 10  # 75 notifications in messages of up to 10 embeds
    assert all(len(m.body["embeds"]) <= 10 for m in received)
    assert rig.discord.rejected_429 == 0  # paced from the X-RateLimit headers
    # Every confirmed notification is timed from its outbox write.
    assert rig.metrics.value("wc_delivery_seconds_count") == 75
    titles = [e["title"] for m in received for e in m.body["embeds"]]
    assert titles == [f"note {i}" for i in range(75)]  # order kept


async def test_mentions_are_never_batched(rig: Rig) -> None:
    target = rig.hook(2)
    rig.enqueue(target, 3, content="<@&1> rally")
    await until(lambda: rig.store.outbox_counts() == {"sent": 3})
    assert [len(m.body["embeds"]) for m in rig.discord.messages_for("webhook:2")] == [1, 1, 1]


@pytest.mark.slow
async def test_unknown_webhook_holds_its_notifications_after_one_attempt_until_retried(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    dead, alive = rig.hook(3), rig.hook(4)
    rig.discord.disable_webhook(3)
    with caplog.at_level(logging.ERROR, logger="wanderer_console"):
        rig.enqueue(dead, 4)
        rig.enqueue(alive, 2)
        await until(lambda: rig.dispatcher.state("webhook:3").disabled_reason)
        await until(lambda: rig.store.outbox_counts() == {"pending": 4, "sent": 2})
        requests_after = rig.discord.requests
        rig.enqueue(dead, 1, tag="later")  # a later notification waits without a request
        await asyncio.sleep(0.5)
    assert rig.store.outbox_counts() == {"pending": 5, "sent": 2}
    assert rig.discord.rejected_404 == 1
    assert rig.discord.requests == requests_after
    state = rig.dispatcher.snapshot()["targets"]["webhook:3"]
    assert "Unknown Webhook" in state["disabled"]
    assert rig.metrics.value("wc_targets_disabled_total") == 1
    assert rig.metrics.value("wc_targets_dead") == 1
    assert any("outbox retry" in r.getMessage() for r in caplog.records)
    assert all("/tok" not in r.getMessage() for r in caplog.records)
    # The webhook is fixed and the operator retries it: everything held is delivered.
    rig.discord.enable_webhook(3)
    rig.dispatcher.retry_target("webhook:3")
    await until(lambda: rig.store.outbox_counts() == {"sent": 7})
    assert sum(len(m.body["embeds"]) for m in rig.discord.messages_for("webhook:3")) == 5
    assert rig.metrics.value("wc_targets_dead") == 0


@pytest.mark.slow
async def test_429_waits_and_retries_without_losing_anything(tmp_path: Path) -> None:
    """Someone else has spent the webhook's bucket: the dispatcher's message is answered 429,
    waits out the ``retry_after`` it names and goes again, once, nothing lost.

    The fake's window is the test's to end (its clock stands still until the test moves it).
    On the wall clock, a machine under load took the window's 2 s to get the dispatcher's
    request out after the other posts: the window had ended, no 429 came, and the test failed.
    """
    clock = FrozenClock()
    async with make_rig(
        tmp_path,
        policy=DeliveryPolicy(),
        webhook_limit=5,
        webhook_window=2.0,
        poll_interval=0.1,
        discord_clock=clock,
    ) as rig:
        target = rig.hook(5)
        async with httpx.AsyncClient() as client:
            others = [
                await client.post(target.address, json={"embeds": [{"title": "other"}]})
                for _ in range(5)
            ]
        assert [answer.status_code for answer in others] == [204] * 5  # the bucket is spent
        before = time.time()
        rig.enqueue(target, 3)
        state = rig.dispatcher.state(target.key)
        await until(lambda: state.rate_limited == 1)
        # It waits the whole window the 429 named (2 s: the fake's clock stands still).
        paused_until = state.paused_until
        assert paused_until >= before + 2.0
        clock.advance(2.0)  # the window is over: the retry may go
        await until(lambda: rig.store.outbox_counts() == {"sent": 3})
        assert rig.discord.rejected_429 == 1  # the retry did not go before the window ended
        assert rig.dispatcher.snapshot()["targets"][target.key]["rate_limited"] == 1
        assert rig.titles(target.key) == {"other": 5, "note 0": 1, "note 1": 1, "note 2": 1}
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:
        confirmed = [at for (at,) in conn.execute("SELECT sent_at FROM outbox")]
    assert len(confirmed) == 3
    assert min(confirmed) >= paused_until  # sent once the pause was over, not before


@pytest.mark.slow
async def test_sends_queued_behind_a_bucket_pause_go_as_the_bucket_allows(tmp_path: Path) -> None:
    """One webhook shared by several maps: a worker per map. The bucket's pause (its last
    answer said ``X-RateLimit-Remaining: 0``) held them all, and when it ended they all went at
    once, past the bucket's limit: 429s Discord counts against the console. They now go no
    faster than the bucket's answers allow.

    The dispatcher and the fake share one clock that stands still until the test moves it: a
    window (and the pause it sets) ends only then. On the wall clock, a machine under load could
    take the window's second between the two rally posts: the second answer found a new window,
    said ``Remaining: 1``, there was no pause, and the test failed (or, later, the windows rolled
    on their own and the pace was never put to the test)."""
    clock = FrozenClock()
    start = clock.wall()
    async with make_rig(
        tmp_path,
        policy=DeliveryPolicy(),
        webhook_limit=2,
        webhook_window=1.0,
        poll_interval=0.1,
        discord_clock=clock,
        clock=clock,
    ) as rig:
        home = rig.hook(9)
        state = rig.dispatcher.state(home.key)
        rig.enqueue(home, 2, content="<@&1> rally")  # two messages: the bucket's two
        await until(lambda: rig.store.outbox_counts() == {"sent": 2})
        assert state.paused_until == start + 1.0  # the bucket is spent for its whole window
        maps = [f"map{i}" for i in range(6)]
        notes = []
        for tenant in maps:
            target = Target(TargetKind.WEBHOOK, home.address, tenant)
            rig.targets[(tenant, target.key)] = ResolvedTarget(target)
            body = {"embeds": [{"title": f"{tenant} kill", "description": "x"}]}
            notes.append(Notification(tenant, NotificationType.KILL, f"k:{tenant}", target, body))
        rig.store.enqueue(notes, now=start)
        rig.dispatcher.wake()

        def kills() -> list[float]:
            """When the fake took each map's message (its clock: the window it fell in)."""
            return [m.at for m in rig.discord.messages_for(home.key) if "content" not in m.body]

        # Every map's worker waits out the pause; none has sent (none can: the clock stands).
        await until(lambda: kills() or rig.discord.rejected_429 or rig.dispatcher._resting == 6)
        assert kills() == []
        assert rig.discord.rejected_429 == 0
        assert rig.store.outbox_counts() == {"sent": 2, "pending": 6}
        for window in (1, 2, 3):
            clock.advance(1.0)  # the window (and the pause) is over: two more fit the bucket
            await until(
                lambda w=window: (
                    rig.discord.rejected_429
                    or (
                        rig.store.outbox_counts().get("sent") == 2 + 2 * w
                        and rig.dispatcher._resting == 6 - 2 * w
                    )
                )
            )
            assert rig.discord.rejected_429 == 0  # none went past the bucket
            # Two went in this window, the rest wait for the next (they cannot go before it).
            assert kills() == [start + n for n in range(1, window + 1) for _ in range(2)]
        assert rig.store.outbox_counts() == {"sent": 8}
        assert rig.titles(home.key) == {"note 0": 1, "note 1": 1} | {f"{t} kill": 1 for t in maps}


async def test_rejected_batch_is_split_to_find_the_bad_message(rig: Rig) -> None:
    target = rig.hook(6)
    rig.enqueue(target, 3)
    bad = Notification(
        "home", NotificationType.KILL, "bad", target, {"embeds": [{"title": "t" * 300}]}
    )
    rig.store.enqueue([bad])
    rig.enqueue(target, 0)
    await until(lambda: rig.store.outbox_counts() == {"sent": 3, "failed": 1})
    assert rig.discord.rejected_400 >= 1


@pytest.mark.slow
async def test_too_many_invalid_answers_pause_all_delivery(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wanderer_console.delivery.outcomes as dispatcher_module

    monkeypatch.setattr(dispatcher_module, "_INVALID_BUDGET", 2)
    bad_a, bad_b = rig.hook(21), rig.hook(22)
    rig.discord.register_webhook(21, "other-token")  # our URL's token is wrong: 401
    rig.discord.register_webhook(22, "other-token")
    rig.enqueue(bad_a, 1)
    rig.enqueue(bad_b, 1)
    await until(lambda: len(rig.dispatcher.dead_targets) == 2)
    assert rig.dispatcher.snapshot()["invalid_answers_10m"] == 2
    good = rig.hook(23)
    rig.enqueue(good, 1)
    await asyncio.sleep(0.5)
    # The budget is spent: nothing more goes out, even to a healthy target.
    assert rig.discord.messages_for("webhook:23") == []
    assert rig.store.outbox_counts().get("pending") == 3  # two held, one paused


async def test_a_fan_out_completes_in_order_not_all_at_the_end(tmp_path: Path) -> None:
    """A kill that notifies many maps queues one notification on each of many targets at once.
    Their sends start a few at a time, the next once a request is out, so the first are
    confirmed while later ones are still being sent; all sent in one turn of the loop before
    any answer was read, the first confirmation came after the last request."""
    async with make_rig(tmp_path, poll_interval=0.05) as rig:
        count = 4 * _SENDS_STARTING  # several turnstile widths
        hooks = [rig.hook(1_000 + i) for i in range(count)]
        notes = [
            Notification(
                "home", NotificationType.KILL, f"fan:{i}", hook, {"embeds": [{"title": f"{i}"}]}
            )
            for i, hook in enumerate(hooks)
        ]
        rig.store.enqueue(notes)
        rig.dispatcher.wake()
        await until(lambda: len(rig.discord.received) == len(hooks))
        await until(lambda: rig.store.outbox_counts().get("sent") == len(hooks))
        with sqlite3.connect(tmp_path / "db.sqlite") as conn:
            confirmed = sorted(at for (at,) in conn.execute("SELECT sent_at FROM outbox"))
        requests = sorted(message.at for message in rig.discord.received)
        assert len(confirmed) == len(requests) == len(hooks)
        assert confirmed[0] < requests[-1]
        # Nothing doubled on the way.
        assert sorted(m.target for m in rig.discord.received) == sorted(
            f"webhook:{1_000 + i}" for i in range(count)
        )


async def test_a_wake_for_new_rows_claims_and_sends_them_in_the_next_turn(tmp_path: Path) -> None:
    """The engine wakes the dispatcher right after its commit: while the loop waits, the wake
    starts the rows' worker itself, so the very next turn of the loop claims the row and puts
    its request out (through the loop's own look it took a turn more), and it goes out once.
    The worker runs in the dispatcher's context, not the waking event's (its log fields)."""
    async with make_rig(tmp_path, poll_interval=5.0) as rig:
        fields: list[tuple[str | None, str | None, str | None]] = []
        send = rig.dispatcher.sender.send

        async def recording(*args: object, **kwargs: object) -> object:
            fields.append(bound_fields())
            return await send(*args, **kwargs)  # type: ignore[arg-type]

        rig.dispatcher.sender.send = recording  # type: ignore[method-assign,assignment]
        hook = rig.hook(31)
        rig.enqueue(hook, 1, tag="first")
        await until(lambda: rig.store.outbox_counts().get("sent") == 1)
        await until(lambda: rig.dispatcher.waiting)
        note = Notification(
            "home", NotificationType.KILL, "next:1", hook, {"embeds": [{"title": "next"}]}
        )
        rig.store.enqueue([note])
        with bind_event("corr-waker", tenant="home", source="api"):
            rig.dispatcher.wake({hook.key})
        await asyncio.sleep(0)  # one turn of the loop
        assert rig.store.outbox_counts().get("sending") == 1
        await until(lambda: rig.store.outbox_counts().get("sent") == 2)
        assert [m.body["embeds"][0]["title"] for m in rig.discord.received] == [
            "first" + "note 0",
            "next",
        ]
        assert len(fields) == 2
        assert all(f[2] != "corr-waker" and f[1] != "api" for f in fields)


async def test_a_worker_alone_sends_in_its_own_step_a_fan_out_takes_turns(
    tmp_path: Path,
) -> None:
    """One worker has nobody to take turns with: its request is made in the worker's own task.
    Several at once pass the turnstile, each request in a task of its own, started one by one."""
    async with make_rig(tmp_path) as rig:
        senders: list[str] = []
        send = rig.dispatcher.sender.send

        async def recording(*args: object, **kwargs: object) -> object:
            task = asyncio.current_task()
            senders.append("" if task is None else task.get_name())
            return await send(*args, **kwargs)  # type: ignore[arg-type]

        rig.dispatcher.sender.send = recording  # type: ignore[method-assign,assignment]
        alone = rig.hook(41)
        rig.enqueue(alone, 1)
        await until(lambda: rig.store.outbox_counts().get("sent") == 1)
        assert senders == [f"deliver:{alone.key}"]
        senders.clear()
        hooks = [rig.hook(50 + i) for i in range(3)]
        rig.store.enqueue(
            [
                Notification("home", NotificationType.KILL, f"fan:{i}", h, {"content": f"{i}"})
                for i, h in enumerate(hooks)
            ]
        )
        rig.dispatcher.wake()
        await until(lambda: rig.store.outbox_counts().get("sent") == 4)
        assert len(senders) == 3
        assert not any(name.startswith("deliver:") for name in senders)


def _fan_out(rig: Rig, name: str, hooks: list[int]) -> set[str]:
    """Queue one notification on each hook and wake the dispatcher as the engine does (with
    the rows' targets); return the targets."""
    targets = [rig.hook(hook) for hook in hooks]
    rig.store.enqueue(
        [
            Notification("home", NotificationType.KILL, f"{name}:{i}", t, {"content": f"{i}"})
            for i, t in enumerate(targets)
        ]
    )
    keys = {target.key for target in targets}
    rig.dispatcher.wake(keys)
    return keys


async def test_a_fan_outs_workers_ending_cleanly_cost_no_new_look(tmp_path: Path) -> None:
    """A fan-out's rows are read once, by the wake that queued them; each of its workers ends
    having sent everything it was given, with nothing queued for its target since, so no end
    reads the outbox again (each did: a look per end that found nothing)."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        reads = count_reads(rig)
        _fan_out(rig, "fan", [2_000 + i for i in range(40)])
        await until(lambda: rig.store.outbox_counts().get("sent") == 40, timeout=10.0)
        await rig.dispatcher.quiesce("home", 10.0)  # every worker has ended
        for _turn in range(5):  # a look woken by an end would run in the next turn or two
            await asyncio.sleep(0)
        assert rig.dispatcher.waiting
        assert len(reads) == 1
        assert len(rig.discord.received) == 40


async def test_rows_queued_for_a_busy_target_go_when_its_worker_ends(tmp_path: Path) -> None:
    """A wake for a target whose worker is running is skipped (the worker was given its rows
    before): that worker's end looks again and sends the new row, long before the next poll."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        rig.discord.answer_delay = 1.0
        keys = _fan_out(rig, "first", [61])
        await until(lambda: len(rig.discord.received) == 1)
        reads = count_reads(rig)
        hook = rig.hook(61)
        rig.store.enqueue(
            [Notification("home", NotificationType.KILL, "second", hook, {"content": "again"})]
        )
        rig.dispatcher.wake(keys)
        # Still in flight when woken: the wake read nothing.
        assert rig.store.outbox_counts().get("sending") == 1
        assert reads == []
        rig.discord.answer_delay = 0.0
        await until(lambda: rig.store.outbox_counts().get("sent") == 2, timeout=10.0)
        assert [m.body["content"] for m in rig.discord.received] == ["0", "again"]
        assert len(reads) == 1  # the first worker's end


async def test_a_read_cut_at_its_limit_is_read_on_at_the_next_workers_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More rows due than one read takes: the rows left are read when a worker ends, though
    that worker's end is clean and the poll is far off."""
    monkeypatch.setattr(dispatcher_module, "_FETCH", 3)
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        _fan_out(rig, "cut", [3_000 + i for i in range(10)])
        await until(lambda: rig.store.outbox_counts().get("sent") == 10, timeout=10.0)
        assert sorted(m.target for m in rig.discord.received) == sorted(
            f"webhook:{3_000 + i}" for i in range(10)
        )


async def test_a_failed_sends_retry_goes_at_its_time_not_at_the_next_poll(tmp_path: Path) -> None:
    """A worker that puts its rows back for a retry ends unclean: the loop looks again and waits
    for that retry's time (50 ms backoff), not for the poll."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        rig.discord.fail_next(500)
        _fan_out(rig, "retry", [71, 72])
        await until(lambda: rig.store.outbox_counts().get("sent") == 2, timeout=10.0)
        assert rig.discord.requests == 3
        assert sorted(m.target for m in rig.discord.received) == ["webhook:71", "webhook:72"]


async def test_a_dead_targets_held_rows_do_not_hold_a_retry_back_to_the_poll(
    tmp_path: Path,
) -> None:
    """A dead target's rows stay pending and long due: the wait after a look counted from the
    earliest pending row, found it due already and slept the whole poll (30 s here, 1 s by
    default), so every other target's retry waited for it. Only rows not due at the look's read
    shorten the wait now: the failed send goes again at its 50 ms backoff."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        rig.discord.disable_webhook(81)
        _fan_out(rig, "dead", [81])
        await until(lambda: len(rig.dispatcher.dead_targets) == 1, timeout=10.0)
        _fan_out(rig, "held", [81])  # pending behind the dead target, due since it came
        await until(lambda: rig.dispatcher.waiting and not rig.dispatcher.delivering)
        rig.discord.fail_next(500)
        _fan_out(rig, "retry", [71])
        await until(lambda: rig.store.outbox_counts().get("sent") == 1, timeout=10.0)
        assert [m.target for m in rig.discord.received] == ["webhook:71"]
        assert rig.store.outbox_counts() == {"pending": 2, "sent": 1}  # the dead one's two


async def test_a_revived_target_sends_at_once_though_the_loop_was_settled(tmp_path: Path) -> None:
    """Reviving a dead target from the console wakes a full look (the loop had nothing to do and
    its next poll is far off)."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        rig.discord.disable_webhook(81)
        keys = _fan_out(rig, "dead", [81])
        await until(lambda: len(rig.dispatcher.dead_targets) == 1, timeout=10.0)
        rig.discord.enable_webhook(81)
        (key,) = keys
        assert rig.dispatcher.retry_target(key) == 0  # held pending, not failed
        await until(lambda: rig.store.outbox_counts().get("sent") == 1, timeout=10.0)


async def test_a_fan_outs_sends_starting_together_are_claimed_in_one_transaction(
    tmp_path: Path,
) -> None:
    """The sends that pass the turnstile in one turn (_SENDS_STARTING) are claimed by one
    commit, which stamps them with one claim time; each is still claimed before its own request
    and sent once."""
    width = _SENDS_STARTING
    count = 2 * width + width // 4  # two full groups and part of a third
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        requests_at_claim: list[int] = []
        claim_all = rig.store.claim_all

        def recording(claims: object, **kwargs: object) -> list[int]:
            requests_at_claim.append(len(rig.discord.received))
            return claim_all(claims, **kwargs)  # type: ignore[arg-type]

        rig.store.claim_all = recording  # type: ignore[method-assign]
        _fan_out(rig, "together", [4_000 + i for i in range(count)])
        await until(lambda: rig.store.outbox_counts().get("sent") == count, timeout=10.0)
        with sqlite3.connect(tmp_path / "db.sqlite") as conn:
            stamps = [at for (at,) in conn.execute("SELECT sending_at FROM outbox")]
        assert None not in stamps
        assert len(set(stamps)) == len(requests_at_claim) == 3
        # Every group was claimed before any of its requests reached Discord.
        assert all(seen <= width * group for group, seen in enumerate(requests_at_claim))
        assert sorted(m.target for m in rig.discord.received) == sorted(
            f"webhook:{4_000 + i}" for i in range(count)
        )


async def test_a_fan_outs_answers_read_together_are_recorded_in_one_transaction(
    tmp_path: Path,
) -> None:
    """Answers to a fan-out's requests read in the same turn of the loop (here all forty,
    held until every request is out) are recorded by one commit, at the next turn; until then
    their rows stay claimed (a crash between the two leaves them uncertain, never pending).
    Each row is recorded once."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        answers = asyncio.Event()
        send = rig.dispatcher.sender.send
        answered: list[object] = []

        async def held(*args: object, **kwargs: object) -> object:
            result = await send(*args, **kwargs)  # type: ignore[arg-type]
            answered.append(result)  # read: now held until all forty are
            await answers.wait()
            return result

        rig.dispatcher.sender.send = held  # type: ignore[method-assign,assignment]
        writes: list[list[int]] = []
        mark_sent_all = rig.store.mark_sent_all

        def recording(messages: list[SentMessage]) -> None:
            ids = [row_id for message in messages for row_id in message.row_ids]
            with sqlite3.connect(tmp_path / "db.sqlite") as conn:
                marks = ",".join("?" * len(ids))
                states = conn.execute(
                    f"SELECT DISTINCT status FROM outbox WHERE id IN ({marks})", ids
                ).fetchall()
            assert states == [("sending",)]
            writes.append(ids)
            mark_sent_all(messages)

        rig.store.mark_sent_all = recording  # type: ignore[method-assign]
        _fan_out(rig, "answers", [5_000 + i for i in range(40)])
        # Every answer read, not only every request received: an answer still on its way when
        # the event is set would be recorded a turn later, on its own (CI's loaded runner).
        await until(lambda: len(answered) == 40)
        answers.set()
        await until(lambda: rig.store.outbox_counts().get("sent") == 40, timeout=10.0)
        assert len(writes) == 1
        assert sorted(writes[0]) == sorted(set(writes[0]))
        assert len(writes[0]) == 40


async def test_a_send_cancelled_after_its_shared_claim_stays_claimed_never_pending(
    tmp_path: Path,
) -> None:
    """Cancelled between the commit of its turn's claims and its own next step (as the engine
    cancels its workers when it is stopped outright), a send's request is cancelled with it and
    its rows stay claimed: the next start recovers them as uncertain, never as plain pending
    (which could post twice)."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        loop = asyncio.get_running_loop()
        claim_all = rig.store.claim_all

        def cancel_workers() -> None:
            for task in asyncio.all_tasks():
                if task.get_name().startswith("deliver:"):
                    task.cancel()

        def claim_then_cancel(claims: object, **kwargs: object) -> list[int]:
            counts = claim_all(claims, **kwargs)  # type: ignore[arg-type]
            loop.call_soon(cancel_workers)  # runs before the claimed sends' workers resume
            return counts

        rig.store.claim_all = claim_then_cancel  # type: ignore[method-assign]
        _fan_out(rig, "stopped", [6_000 + i for i in range(3)])

        def requests_running() -> list[asyncio.Task[object]]:
            return [
                t
                for t in asyncio.all_tasks()
                if t.get_coro().__qualname__ == "DiscordSender.send" and not t.done()
            ]

        await until(lambda: rig.store.outbox_counts() == {"sending": 3})
        await until(lambda: not requests_running())
        assert rig.discord.received == []  # cancelled with their sends, before reaching Discord
        assert rig.store.outbox_counts() == {"sending": 3}
        recovered = rig.store.recover_in_flight()
        assert len(recovered) == 3
        assert all(send_id for _id, _kind, send_id, _at in recovered)


async def test_a_shared_claims_send_cancelled_as_its_answer_came_records_the_answer(
    tmp_path: Path,
) -> None:
    """A send through the turnstile has its request in a task of its own. Its worker cancelled
    in the very turn that request took Discord's confirmation (a stop's deadline, an outright
    cancellation) must still record it: left claimed, the row would be recovered as uncertain
    and a webhook message posted a second time."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        loop = asyncio.get_running_loop()
        send = rig.dispatcher.sender.send

        def cancel_worker(name: str) -> None:
            for task in asyncio.all_tasks():
                if task.get_name() == name:
                    task.cancel()

        async def answered_then_cancelled(
            target: Target, *args: object, **kwargs: object
        ) -> object:
            result = await send(target, *args, **kwargs)  # type: ignore[arg-type]
            # Runs before the worker resumes with this answer (its wake-up comes after).
            loop.call_soon(cancel_worker, f"deliver:{target.key}")
            return result

        rig.dispatcher.sender.send = answered_then_cancelled  # type: ignore[method-assign,assignment]
        _fan_out(rig, "answered", [7_000 + i for i in range(3)])
        await until(lambda: len(rig.discord.received) == 3)
        await until(
            lambda: not any(t.get_name().startswith("deliver:") for t in asyncio.all_tasks())
        )
        await until(lambda: rig.store.outbox_counts() == {"sent": 3}, timeout=5.0)
        assert len(rig.discord.received) == 3


async def test_a_target_that_answers_again_no_longer_reports_its_last_error(rig: Rig) -> None:
    """The snapshot's ``last_error`` is the target's trouble now: Discord answering again clears
    it. It was kept after the outage ended, so the console's delivery detail still showed the
    500 (or the open breaker) and its advice hours later, for a target delivering fine."""
    target = rig.hook(6)
    rig.discord.fail_next(500)
    rig.enqueue(target, 1)
    await until(lambda: rig.store.outbox_counts() == {"sent": 1})
    assert rig.discord.requests == 2  # the 500, then the message
    view = rig.dispatcher.snapshot()["targets"]["webhook:6"]
    assert view["sent"] == 1
    assert view["last_error"] is None


async def test_a_targets_next_message_is_claimed_only_once_the_last_one_is_marked_sent(
    tmp_path: Path,
) -> None:
    """A target sends one message at a time, so a crash leaves at most one of its messages
    unconfirmed (re-sent after the restart: delivered twice at worst). The confirmation of a
    message is gathered and written at the next turn; the worker claimed and sent the target's
    next message before that write, so a crash in between left two of them ``sending`` and both
    were posted again (``tests/e2e/test_crash_recovery.py`` saw 20 embeds doubled, not 10)."""
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        unconfirmed_at_claim: list[int] = []
        claim_all = rig.store.claim_all

        def recording(claims: object, **kwargs: object) -> list[int]:
            sent = rig.store.outbox_counts().get("sent", 0)
            unconfirmed_at_claim.append(len(rig.discord.received) - sent)
            return claim_all(claims, **kwargs)  # type: ignore[arg-type]

        rig.store.claim_all = recording  # type: ignore[method-assign]
        target = rig.hook(77)
        rig.enqueue(target, 4, content="rally")  # with content: a message each, one at a time
        await until(lambda: rig.store.outbox_counts().get("sent") == 4, timeout=10.0)
        assert len(unconfirmed_at_claim) == 4
        # Each claim came with every message Discord already holds recorded as sent.
        assert unconfirmed_at_claim == [0, 0, 0, 0]
        assert len(rig.discord.received) == 4


async def test_a_worker_is_delivering_while_its_message_is_out_not_while_it_waits_a_limit(
    tmp_path: Path,
) -> None:
    """What the garbage collector's idle moments wait for (``gcpolicy.IdleCollector``): a
    message in hand counts, a worker waiting out its bucket's reset does not."""
    async with make_rig(
        tmp_path, policy=DeliveryPolicy(), webhook_limit=1, webhook_window=60.0
    ) as rig:
        target = rig.hook(5)
        assert not rig.dispatcher.delivering
        answer = rig.discord.answer_gate = asyncio.Event()  # taken, answered when we say
        rig.enqueue(target, 1, content="<@&1> first")
        await until(lambda: rig.discord.messages_for("webhook:5"))
        assert rig.dispatcher.delivering
        answer.set()
        await until(lambda: rig.store.outbox_counts() == {"sent": 1})
        await until(lambda: not rig.dispatcher.delivering)
        rig.enqueue(target, 1, content="<@&1> second")  # the bucket is spent for a minute
        await until(lambda: rig.dispatcher.state(target.key).paused_until > 0)
        await until(lambda: rig.dispatcher._resting == 1)  # its worker waits out the reset
        assert not rig.dispatcher.delivering
        assert rig.store.outbox_counts() == {"sent": 1, "pending": 1}
