"""The HTTP overhead benchmark runs in quick mode and prints the documented JSON keys (the
Discord post figures and the map's REST calls beside its streams included)."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_http_overhead_quick_prints_json() -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "wanderer_console.bench.http_overhead"),
            *("--quick", "-n", "40", "--streams", "50"),
        ],
        capture_output=True,
        check=True,
        timeout=80,
    )
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert set(result) == {
        "n",
        "bare_httpx_median_us",
        "plain_client_median_us",
        "chain_median_us",
        "overhead_us",
        "middleware_overhead_us",
        "ratio",
        "discord_post_median_us",
        "discord_post_cpu_us",
        "map_streams_open",
        "map_rest_cpu_us_one_pool",
        "map_rest_cpu_us_split",
    }
    assert result["n"] == 40
    assert result["bare_httpx_median_us"] > 0
    assert result["chain_median_us"] > 0
    assert result["ratio"] > 0
    assert result["discord_post_median_us"] > 0
    assert result["discord_post_cpu_us"] > 0
    assert result["map_streams_open"] == 50
    assert result["map_rest_cpu_us_one_pool"] > 0
    assert result["map_rest_cpu_us_split"] > 0
