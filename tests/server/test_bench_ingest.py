"""The ingest API benchmark runs in quick mode and prints the documented JSON keys."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_ingest_api_bench_quick_prints_json() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console.bench.ingest_api", "--quick", "--rate", "100"],
        capture_output=True,
        check=True,
        timeout=80,
    )
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == {
        "benchmark",
        "requests",
        "target_rate",
        "achieved_rate",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "stored",
        "statuses",
        "target_p50_ms",
        "p50_within_target",
    }
    assert result["requests"] == 100
    assert result["statuses"] == {"ok": 100}
    assert result["stored"] == 101  # plus the warm-up event
    assert 0 < result["p50_ms"] <= result["p99_ms"]
