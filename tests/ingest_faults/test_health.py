"""Connection health: events per minute and the 0–100 quality score."""

from __future__ import annotations

from wanderer_console.ingest.health import ConnectionHealth, ConnectionState, quality_score


def test_events_per_minute_counts_only_the_last_minute() -> None:
    now = [10_000.0]
    health = ConnectionHealth("sse:m", "map_sse", clock=lambda: now[0])
    for _ in range(30):
        health.saw_event()
    now[0] += 30
    for _ in range(12):
        health.saw_event()
    assert health.snapshot()["events_per_minute"] == 42
    now[0] += 45  # the first 30 are now older than a minute
    assert health.snapshot()["events_per_minute"] == 12
    assert health.events == 42


def test_quality_score_reflects_state_reconnects_rtt_and_errors() -> None:
    now = [10_000.0]
    health = ConnectionHealth("killstream:systems", "killstream", clock=lambda: now[0])
    health.set_state(ConnectionState.CONNECTED)
    health.heartbeat_rtt_ms = 3.0
    for _ in range(100):
        health.saw_event()
    assert health.snapshot()["quality"] == 100

    health.reconnects += 2
    health.set_state(ConnectionState.RECONNECTING, "socket lost")
    snap = health.snapshot()
    assert snap["reconnects_last_hour"] == 2
    assert snap["errors_last_hour"] == 1
    assert snap["quality"] < 50
    health.set_state(ConnectionState.CONNECTED)
    assert 80 <= health.snapshot()["quality"] < 100

    now[0] += 3601  # an hour later the record is clean again
    health.saw_event()
    assert health.snapshot()["reconnects_last_hour"] == 0
    assert health.snapshot()["quality"] == 100

    health.set_state(ConnectionState.FAILED, "HTTP 401: Invalid API key")
    assert health.snapshot()["quality"] == 0


def test_quality_score_bounds() -> None:
    assert quality_score(ConnectionState.CONNECTED, 0, None, 0.0) == 100
    assert quality_score(ConnectionState.CONNECTED, 0, 1500.0, 0.0) == 80
    assert quality_score(ConnectionState.CONNECTED, 100, 1500.0, 1.0) == 10
    assert quality_score(ConnectionState.DEGRADED, 100, 1500.0, 1.0) == 0
    assert quality_score(ConnectionState.STOPPED, 0, None, 0.0) == 0
