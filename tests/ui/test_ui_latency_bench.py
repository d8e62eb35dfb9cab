"""The UI latency benchmark runs in quick mode and reports every figure (timing is not judged)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def test_quick_run_reports_latency_and_cpu() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console.bench.ui_latency", "--quick", "--rate", "200"],
        capture_output=True,
        text=True,
        timeout=140,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["benchmark"] == "ui_latency"
    assert report["quick"] is True
    assert report["presses"] >= 4
    for figures in (report["latency_ms"], report["screen_active_ms"], report["settled_ms"]):
        assert set(figures) == {"p50", "p95", "max"}
    assert set(report["by_key_ms"]) == {"t", "escape"}
    assert report["target_p95_ms"] == 100.0
    assert isinstance(report["p95_within_target"], bool)
    assert set(report["cpu"]) == {
        "ui_share",
        "engine_share",
        "baseline_share",
        "with_ui_share",
        "difference_share",
        "saturated",
    }
    assert 0 < report["cpu"]["ui_share"] < 1  # measured directly: never negative
    assert set(report["windows"]) == {"baseline_before", "with_ui", "baseline_after"}
    assert report["windows"]["with_ui"]["kills_pushed_per_s"] > 0
    assert isinstance(report["teardown_ok"], bool)
