"""Recovering as fast as the sink does: probes early and often while it fails, and the first
success on a target makes everything it held back due at once (no sleeping out backoffs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.delivery.rig import make_rig, until
from wanderer_console.delivery.policy import DeliveryPolicy
from wanderer_console.domain.clock import FrozenClock
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.http import CircuitOpenError, HttpServiceSettings
from wanderer_console.http.breaker import CircuitBreakers
from wanderer_console.http.settings import resolve_settings
from wanderer_console.store import SqliteStore

SLOW_BACKOFF = DeliveryPolicy(backoff_base=600.0, backoff_cap=3600.0, stop_grace=2.0)
"""Failed batches wait ten minutes or more: only an early resume delivers them within a test."""


async def test_the_first_success_after_failures_sends_what_waits_out_a_backoff(
    tmp_path: Path,
) -> None:
    async with make_rig(tmp_path, policy=SLOW_BACKOFF, webhook_limit=1000) as rig:
        hook = rig.hook(41)
        rig.discord.fail_next(503, times=3)
        rig.enqueue(hook, 40)  # four messages of ten: the first three fail, the fourth goes

        await until(lambda: len(rig.discord.messages_for("webhook:41")) >= 1)
        # The three failed batches were scheduled ten minutes out; the success brought them
        # back, and they go now, in order, at the target's pace.
        await until(lambda: rig.store.outbox_counts() == {"sent": 40}, timeout=20)
        assert sum(rig.titles("webhook:41").values()) == 40
        assert max(rig.titles("webhook:41").values()) == 1


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


def test_discord_is_probed_at_most_once_a_second() -> None:
    discord = resolve_settings("discord", None)
    breakers = CircuitBreakers(discord, clock=FrozenClock())
    assert max(breakers.probe_delay(n) for n in range(40)) <= 1.0
