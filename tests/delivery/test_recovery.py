"""Recovering as fast as the sink does: probes early and often while it fails, and the first
success on a target makes everything it held back due at once (no sleeping out backoffs)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.delivery.rig import Rig, make_rig, until
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.clock import FrozenClock
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http import CircuitOpenError, HttpServiceSettings
from wanderer_console.http.breaker import CircuitBreakers
from wanderer_console.http.settings import resolve_settings
from wanderer_console.store import SqliteStore

SLOW_BACKOFF = DeliveryPolicy(backoff_base=600.0, backoff_cap=3600.0, stop_grace=2.0)
"""Failed batches wait ten minutes or more: only an early resume delivers them within a test."""


def posted_titles(rig: Rig, target: str) -> list[str]:
    """Every embed title the fake Discord took for ``target``, in the order it was posted."""
    return [
        embed["title"]
        for message in rig.discord.messages_for(target)
        for embed in message.body["embeds"]
    ]


async def test_a_failing_target_is_retried_from_its_oldest_message_and_keeps_its_order(
    tmp_path: Path,
) -> None:
    """Four messages of ten; Discord fails the first three requests. The failed message waits
    ten minutes (its backoff), but the target's later messages are due: they bring it back
    first, a moment later, until it goes; then the rest, in the order they were queued (before,
    the fourth message went first and the success brought the three failed ones back after it)."""
    async with make_rig(tmp_path, policy=SLOW_BACKOFF, webhook_limit=1000) as rig:
        hook = rig.hook(41)
        rig.discord.fail_next(503, times=3)
        rig.enqueue(hook, 40)

        await until(lambda: rig.store.outbox_counts() == {"sent": 40}, timeout=20)
        assert posted_titles(rig, "webhook:41") == [f"note {i}" for i in range(40)]
        assert rig.discord.requests == 3 + 4


async def test_a_target_that_keeps_failing_is_tried_again_only_after_a_pause(
    tmp_path: Path,
) -> None:
    """No breaker here (a plain client) and a ten-minute backoff: the failed message's later
    messages keep the target due, and each try brings the failed one back first. The target's
    pause (``retry_pause``) bounds those tries; without it they followed each other at once."""
    async with make_rig(tmp_path, policy=SLOW_BACKOFF, webhook_limit=1000) as rig:
        hook = rig.hook(43)
        rig.discord.fail_next(500, times=1_000_000)
        rig.enqueue(hook, 40)
        await until(lambda: rig.discord.requests >= 1)
        await asyncio.sleep(1.0)
        tries = rig.discord.requests
        assert 2 <= tries <= 2 + 1.0 / SLOW_BACKOFF.retry_pause
        counts = rig.store.outbox_counts()  # one try may be in flight (its rows sending)
        assert set(counts) <= {"pending", "sending"}
        assert sum(counts.values()) == 40
        assert posted_titles(rig, "webhook:43") == []


def _note(target: Target, key: str) -> Notification:
    return Notification("home", NotificationType.KILL, key, target, {"content": key})


def test_resume_target_moves_only_that_targets_waiting_rows(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        mine = Target(TargetKind.WEBHOOK, "https://discord.test/api/webhooks/1/tok", "home")
        other = Target(TargetKind.WEBHOOK, "https://discord.test/api/webhooks/2/tok", "home")
        store.enqueue([_note(mine, f"m{i}") for i in range(3)] + [_note(other, "o")], now=100.0)
        ids = {row.dedup_key: row.id for row in store.due_outbox(1e12, limit=10)}
        store.release([ids["m0"], ids["m1"], ids["o"]], next_attempt_at=5000.0, error="503")
        # m2 waits out an unknown outcome: that wait is what keeps a webhook from posting twice.
        store.release([ids["m2"]], next_attempt_at=5000.0, error="timeout", uncertain=True)

        moved = store.resume_target(mine.key, now=200.0)

        assert moved == 2
        due = {row.dedup_key for row in store.due_outbox(200.0, limit=10)}
        assert due == {"m0", "m1"}
    finally:
        store.close()


def test_probes_start_early_and_slow_down_to_the_cooldown() -> None:
    settings = HttpServiceSettings(
        breaker_failures=1, breaker_probe_seconds=0.25, breaker_cooldown_seconds=1.0
    )
    clock = FrozenClock()
    breakers = CircuitBreakers(settings, clock=clock)
    assert [breakers.probe_delay(n) for n in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    breakers.failure("h", False, "503")
    with pytest.raises(CircuitOpenError) as refused:
        breakers.acquire("h")
    assert refused.value.retry_in == pytest.approx(0.25)
    clock.advance(0.25)
    assert breakers.acquire("h") is True  # the first probe, a quarter second after opening
    breakers.failure("h", True, "503 again")
    clock.advance(0.3)
    with pytest.raises(CircuitOpenError):
        breakers.acquire("h")  # the next one waits twice as long
    clock.advance(0.2)
    assert breakers.acquire("h") is True
    breakers.success("h", True)
    assert breakers.acquire("h") is False  # closed again: no probe needed


def test_without_a_probe_setting_the_breaker_waits_its_cooldown() -> None:
    breakers = CircuitBreakers(
        HttpServiceSettings(breaker_cooldown_seconds=30.0), clock=FrozenClock()
    )
    assert breakers.probe_delay(0) == breakers.probe_delay(7) == 30.0


def _probe_times(settings: HttpServiceSettings, clock: FrozenClock, horizon: float) -> list[float]:
    """Open the breaker, then ask for a probe at every moment it allows one for ``horizon``
    seconds, every probe failing: the most requests a caller could make to a host that is down."""
    breakers = CircuitBreakers(settings, clock=clock)
    start = clock.monotonic()
    for _ in range(settings.breaker_failures):
        breakers.failure("h", False, "503")
    times = []
    while clock.monotonic() - start <= horizon:
        wait: float | None = None
        probe: bool | None = None
        try:
            probe = breakers.acquire("h")
        except CircuitOpenError as refused:
            wait = refused.retry_in
        if wait is None:
            assert probe is True
            times.append(clock.monotonic() - start)
            breakers.failure("h", True, "503 again")
        else:
            assert wait > 0  # it says how long: never a refusal to ask again at once
            clock.advance(wait)
    return times


def test_discord_probes_every_quarter_second_then_backs_off_to_once_a_second() -> None:
    discord = resolve_settings("discord", None)
    clock = FrozenClock()
    times = _probe_times(discord, clock, 600.0)
    gaps = [round(b - a, 6) for a, b in zip([0.0, *times], times, strict=False)]
    # The first 40 probes (the first 10 s of an outage) come every 0.25 s: a short outage is
    # over for the console within a quarter second of the host's return.
    assert gaps[:40] == [0.25] * 40
    assert times[39] == pytest.approx(10.0)
    # Then the wait doubles to the cool-down and stays there.
    assert gaps[40] == 0.5
    assert set(gaps[41:]) == {1.0}
    # The bound: 630 requests in 10 minutes of outage (5 more opened the breaker), far under
    # the 10,000 invalid requests Discord bans an IP for (and 5xx answers are not among those).
    assert len(times) == 630
    assert len(times) + discord.breaker_failures < 10_000 / 10


def test_fast_probes_default_to_doubling_from_the_first() -> None:
    settings = HttpServiceSettings(breaker_probe_seconds=0.5, breaker_cooldown_seconds=8.0)
    fast = settings.model_copy(update={"breaker_fast_probes": 3})
    plain = CircuitBreakers(settings, clock=FrozenClock())
    assert [plain.probe_delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    quick = CircuitBreakers(fast, clock=FrozenClock())
    assert [quick.probe_delay(n) for n in range(7)] == [0.5, 0.5, 0.5, 1.0, 2.0, 4.0, 8.0]


async def test_a_503_burst_is_probed_through_and_everything_is_delivered_once(
    tmp_path: Path,
) -> None:
    # Discord's own breaker schedule (cool-down 1 s); failed batches would wait ten minutes.
    # The sink refuses the first 12 requests: 5 open the breaker, 7 are failed probes. Only
    # probing while the breaker is open, with the remaining rows waiting for the next probe
    # slot rather than a backoff, and the first success resuming the target deliver the rest.
    async with make_rig(
        tmp_path, policy=SLOW_BACKOFF, chain=True, cooldown=1.0, webhook_limit=1000
    ) as rig:
        hook = rig.hook(42)
        rig.discord.fail_next(503, times=12)
        rig.enqueue(hook, 200)  # 20 messages of ten

        await until(lambda: rig.store.outbox_counts() == {"sent": 200}, timeout=60)
        titles = rig.titles("webhook:42")
        assert sum(titles.values()) == 200
        assert max(titles.values()) == 1
        # Every request that reached the sink was a failure the breaker counted or a message
        # that was posted: the open breaker's refusals sent nothing.
        assert rig.discord.requests == 12 + len(rig.discord.messages_for("webhook:42"))
        events = [(e.from_state, e.to_state) for e in rig.http.breaker_events]
        assert events[0] == ("closed", "open")
        assert events.count(("open", "half_open")) == 8  # 7 failed probes, then the good one
        assert events[-1] == ("half_open", "closed")
