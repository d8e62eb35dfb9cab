"""The ``tracing`` bench scenario: the hot path off, on at 10 %, and its seam-free baseline."""

from __future__ import annotations

import pytest

from wanderer_console.bench import suite
from wanderer_console.bench.tracing_cost import MODES, _stubbed, run_tracing_bench
from wanderer_console.telemetry import tracing


@pytest.mark.slow
async def test_the_scenario_measures_each_mode_against_the_same_rounds_baseline() -> None:
    result = await run_tracing_bench(kills=300, rounds=2)
    assert set(result["per_kill_us"]) == set(MODES)
    assert all(value > 0 for value in result["per_kill_us"].values())
    assert set(result["to_baseline_ratio"]) == {"off", "on_10pct"}
    # Parent-based ratio sampling: about one kill in ten carries a sampled context to its row.
    assert 0.02 <= result["on_10pct_sampled_share"] <= 0.25
    assert result["seam_ns_per_call"]["off"] > 0
    assert not tracing.enabled()  # left off afterwards
    figures = suite.figures_of({"tracing": result})
    assert set(figures) >= {
        "tracing.baseline_per_kill_us",
        "tracing.off_per_kill_us",
        "tracing.on_10pct_per_kill_us",
        "tracing.off_to_baseline",
        "tracing.on_10pct_to_baseline",
    }
    assert suite.direction_of("tracing.off_per_kill_us") == "lower"
    assert "tracing" in suite.SCENARIOS


def test_the_baseline_stubs_answer_as_the_seam_does_while_off_and_are_restored() -> None:
    original = tracing.span
    off = (tracing.span("dedup"), tracing.current_traceparent(), tracing.enabled())
    with _stubbed():
        assert tracing.span is not original
        stubbed = (tracing.span("dedup"), tracing.current_traceparent(), tracing.enabled())
        assert tracing.start_spans("outbox.write", ["00-a-b-01"]) is None
    assert off == stubbed
    assert tracing.span is original
