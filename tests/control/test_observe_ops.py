"""The alerts and trends operations through the control endpoint's real Unix socket."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.control.conftest import text_of
from tests.support import wait_for
from wanderer_console.console_api import BackendError
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.runtime import Runtime
from wanderer_console.store.observe import TrendMinute


async def test_an_alert_threshold_set_by_an_attached_console_fires_and_is_listed(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    result = await remote.set_alert_rule("disk_space", "threshold", 1e12, actor="tui:bob@host")
    assert result.ok, result.message
    assert "[alerts.disk_space]" in text_of(config_file)
    await wait_for(lambda: engine.alerts.firing(), 30, "disk_space firing")  # next evaluation
    snapshot = await remote.snapshot()
    assert [a.rule for a in snapshot.alerts.firing] == ["disk_space"]
    assert snapshot.alerts.rules["disk_space"].threshold == 1e12
    history = await remote.alert_history()
    assert history[0].rule == "disk_space"
    assert history[0].resolved_at is None
    refused = await remote.set_alert_rule("nope", "threshold", 1, actor="t")
    assert not refused.ok
    assert "unknown alert rule 'nope'" in refused.message
    refused = await remote.set_alert_rule("disk_space", "for_seconds", -5, actor="t")
    assert not refused.ok
    assert "alerts.disk_space.for_seconds" in refused.message


async def test_trends_cross_the_socket(engine: Runtime, remote: RemoteBackend) -> None:
    minute = int(time.time() // 60 * 60) - 120
    engine.store.save_trend(TrendMinute(minute=minute, instance="x", events=42, errors=3))
    view = await remote.trends("1h")
    assert view.step == 60
    assert sum(p.events for p in view.points) >= 42
    assert sum(p.errors for p in view.points) >= 3
    with pytest.raises(BackendError, match="unknown trends range 'forever'"):
        await remote.trends("forever")
