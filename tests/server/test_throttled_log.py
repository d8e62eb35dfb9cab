"""The refusal log's throttle: one line per key per interval, bounded memory under many keys."""

from __future__ import annotations

import logging

import pytest

from wanderer_console.server.refusals import OTHER_CLIENTS, ThrottledLog, clip


def test_a_flood_from_many_addresses_keeps_the_table_bounded_and_still_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="throttle-test")
    now = [0.0]
    throttle = ThrottledLog(
        logging.getLogger("throttle-test"), interval=60, max_keys=100, clock=lambda: now[0]
    )
    for i in range(10_000):
        throttle.emit(f"10.0.{i // 256}.{i % 256}", logging.WARNING, "refused", {"n": i})
    assert len(throttle._seen) <= 101
    # 100 addresses got their own line, the rest share one.
    assert len(caplog.records) == 101
    assert OTHER_CLIENTS in throttle._seen
    now[0] = 61.0  # stale entries are pruned to make room again
    assert throttle.emit("192.0.2.1", logging.WARNING, "refused", {})
    assert "192.0.2.1" in throttle._seen
    assert len(throttle._seen) <= 101


def test_clip_keeps_a_short_prefix_and_optionally_the_verdict() -> None:
    quoted = "'" + "9" * 10_000 + "' is not a semantic version"
    assert len(clip(quoted)) == 200
    kept = clip(quoted, 160, tail=60)
    assert len(kept) == 160
    assert kept.endswith("' is not a semantic version")
    assert clip("short") == "short"
