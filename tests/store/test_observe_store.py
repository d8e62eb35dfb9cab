"""The alert history and the per-minute trends in the store, on both backends."""

from __future__ import annotations

from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.base import Store
from wanderer_console.store.observe import AlertRecord, TrendMinute


def test_an_alert_fires_once_and_resolves(store: Store) -> None:
    record = AlertRecord("disk_space", "data_dir", 100.0, None, 5.0, 1024.0, "low")
    store.alert_fired(record)
    store.alert_fired(record)  # the same firing again: refused by the unique key
    assert store.open_alerts() == [record]
    store.alert_fired(AlertRecord("outbox_depth", "outbox", 150.0, None, 9.0, 2.0, "deep"))
    store.alert_resolved("disk_space", "data_dir", 100.0, 200.0)
    history = store.alert_history()
    assert [(r.rule, r.resolved_at) for r in history] == [
        ("outbox_depth", None),
        ("disk_space", 200.0),
    ]
    assert [r.rule for r in store.open_alerts()] == ["outbox_depth"]
    assert store.prune_observations(trends_before=0, alerts_before=300) == 1  # resolved only
    assert [r.rule for r in store.alert_history()] == ["outbox_depth"]


def test_a_trend_minute_is_replaced_and_pruned(store: Store) -> None:
    store.save_trend(TrendMinute(60, "a", events=3, latency_p50=0.1))
    store.save_trend(TrendMinute(60, "a", events=4))  # the same minute again: replaced
    store.save_trend(TrendMinute(60, "b", events=1))
    store.save_trend(TrendMinute(600, "a", delivered=2, latency_p99=0.5))
    assert [(r.minute, r.instance, r.events) for r in store.trends(0)] == [
        (60, "a", 4), (60, "b", 1), (600, "a", 0)
    ]  # fmt: skip
    assert store.trends(0)[0].latency_p50 is None
    assert [r.minute for r in store.trends(100, 700)] == [600]
    assert store.prune_observations(trends_before=120, alerts_before=0) == 2
    assert [r.minute for r in store.trends(0)] == [600]


def test_the_oldest_pending_notification_leaves_out_a_tenant(store: Store) -> None:
    assert store.oldest_pending_at() is None

    def note(tenant: str, key: str) -> Notification:
        target = Target(TargetKind.WEBHOOK, "https://discord.test/api/webhooks/1/t", tenant)
        return Notification(tenant, NotificationType.ALERT, key, target, {"content": key})

    store.enqueue([note("_ops", "a")], now=50.0)
    store.enqueue([note("demo", "b")], now=80.0)
    assert store.oldest_pending_at() == 50.0
    assert store.oldest_pending_at(exclude_tenant="_ops") == 80.0


def test_retention_keeps_the_firing_message_of_an_alert_still_firing(store: Store) -> None:
    """An alert fires and stays firing past ``retention_days``: its firing message (sent long
    ago) is what tells the engine, after a restart, that a resolved message must follow. The
    retention keeps it while the alert is open and prunes it once the alert has resolved."""
    record = AlertRecord("breaker_open", "discord.com", 100.0, None, 40.0, 30.0, "open")
    store.alert_fired(record)
    key = record.message_key("firing")
    target = Target(TargetKind.WEBHOOK, "https://discord.test/api/webhooks/1/t", "_ops")
    firing = Notification("_ops", NotificationType.ALERT, key, target, {"content": "firing"})
    other = Notification("_ops", NotificationType.ALERT, "other", target, {"content": "x"})
    store.enqueue([firing, other], now=100.0)
    store.mark_sent([row.id for row in store.due_outbox(now=100.0)])
    assert store.prune(before=100.0 + 31 * 86_400) == (0, 1)  # the other one only
    assert store.has_notification("_ops", key)
    store.alert_resolved("breaker_open", "discord.com", 100.0, 100.0 + 40 * 86_400)
    assert store.prune(before=100.0 + 41 * 86_400) == (0, 1)
    assert not store.has_notification("_ops", key)
