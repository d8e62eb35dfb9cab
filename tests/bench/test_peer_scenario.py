"""The ``peer`` benchmark without Alertmanager: its figures, ratios, budget and table from given
rounds, the skip when Alertmanager is not installed, pinning, and the console's side of a run
at its smallest size (a real ``--no-ui`` engine, the sink, a 503 burst and the sink down)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from wanderer_console.bench import peer, suite


def _loads(
    side: str, p50: float, cpu: float, burst: float, rss: tuple[float, float], calls: int = 500
) -> Any:
    return {
        "side": side,
        "rss_idle_mb": rss[0],
        "rss_peak_mb": rss[1],
        "paced": {
            "50": {"p50_ms": p50, "p99_ms": p50 * 3, "cpu_per_1000_s": cpu, "calls": 500},
            "200": {"p50_ms": p50, "p99_ms": p50 * 4, "cpu_per_1000_s": cpu, "calls": 2000},
        },
        "burst": {"all_delivered_s": burst, "p50_ms": burst * 300, "calls": calls},
        "lost": 0,
        "doubled": 0,
        "refused_posts": 0,
    }


def _faults(side: str, all_s: float, first_s: float | None) -> list[Any]:
    return [
        {"side": side, "refused_calls": 25, "all_delivered_s": all_s, "after_last_503_s": 1.0},
        {
            "side": side,
            "posted_while_down": 500,
            "drain_after_return_s": 2.0,
            "first_delivery_after_return_s": first_s,
            "after_return_p50_ms": 3.0,
            "lost": 0,
            "doubled": 1,
        },
    ]


RUNS = [
    _loads("console", 2.0, 2.0, 1.0, (50.0, 60.0)),
    _loads("alertmanager", 1.0, 1.0, 2.0, (30.0, 100.0), 5000),
    _loads("console", 4.0, 4.0, 3.0, (52.0, 62.0)),
    _loads("alertmanager", 1.0, 1.0, 2.0, (30.0, 100.0)),
    _loads("console", 3.0, 3.0, 2.0, (51.0, 61.0)),
    _loads("alertmanager", 2.0, 2.0, 2.0, (30.0, 100.0)),
    *_faults("console", 30.0, 0.5),
    *_faults("alertmanager", 10.0, None),
]


def test_medians_per_side_and_ratios_console_over_alertmanager() -> None:
    summary = peer.summarise(RUNS)
    console, am = summary["medians"]["console"], summary["medians"]["alertmanager"]
    assert console["at_50_per_s.p50_ms"] == 3.0
    assert am["at_50_per_s.p50_ms"] == 1.0
    assert console["burst.all_delivered_s"] == 2.0
    assert am["sink_down.first_delivery_after_return_s"] is None
    ratios = summary["console_over_am"]
    assert ratios["at_50_per_s.p50"] == 3.0
    assert ratios["at_200_per_s.cpu_per_1000"] == 3.0
    assert ratios["burst.all_delivered"] == 1.0
    assert ratios["rss_peak"] == 0.61
    assert ratios["fault_503.all_delivered"] == 3.0
    assert ratios["sink_down.first_delivery_after_return"] is None
    # The console's own losses and doubles fail a run; Alertmanager's are only reported.
    assert (summary["lost"], summary["doubled"], summary["refused_posts"]) == (0, 1, 0)
    assert (summary["alertmanager_lost"], summary["alertmanager_doubled"]) == (0, 1)
    assert peer.ratio(1.0, 0.0) is None
    assert peer.ratio(None, 1.0) is None


def test_flat_figures_in_the_suite_and_which_are_compared() -> None:
    figures = peer.figures_of(peer.summarise(RUNS))
    assert "sink_down.first_delivery_after_return_s" not in {
        k.split(".", 1)[1] for k in figures if k.startswith("alertmanager.")
    }
    flat = suite.figures_of({"peer": {"figures": figures}})
    assert flat["peer.console.at_50_per_s.p50_ms"] == 3.0
    assert flat["peer.console_over_am.at_50_per_s.p50"] == 3.0
    assert suite.direction_of("peer.console.at_50_per_s.p50_ms") == "lower"
    assert suite.direction_of("peer.console.rss_peak_mb") == "lower"
    assert suite.direction_of("peer.console.at_200_per_s.cpu_per_1000_s") == "lower"
    # Alertmanager is the reference and the ratios are judged by the budget: neither compared.
    assert suite.direction_of("peer.alertmanager.at_50_per_s.p50_ms") is None
    assert suite.direction_of("peer.console_over_am.at_50_per_s.p50") is None


def test_the_budget_is_judged_on_the_ratios_and_losses_are_failures() -> None:
    figures = peer.figures_of(peer.summarise(RUNS))
    lines = {line["figure"]: line for line in peer.budget_of(figures)}
    assert lines["peer.console_over_am.at_50_per_s.p50"]["met"] is False
    assert lines["peer.console_over_am.burst.all_delivered"]["met"] is True
    assert lines["peer.console_over_am.rss_peak"]["met"] is True
    assert lines["peer.console_over_am.fault_503.all_delivered"]["met"] is False
    assert lines["peer.console.sink_down.first_delivery_after_return_s"]["met"] is True
    assert lines["peer.console_over_am.rss_idle"]["rule"] == "<= 1.5"
    assert len(lines) == len(peer.BUDGET)
    assert suite.problems_of({"peer": {"lost": 0, "doubled": 2}}) == [
        "peer: 2 events delivered twice"
    ]
    assert suite.problems_of({"peer": {"lost": 3, "refused_posts": 1}}) == [
        "peer: 3 events lost",
        "peer: 1 events refused",
    ]
    assert suite.problems_of({"peer": peer.skipped("why")}) == []


def test_the_table_has_every_row_of_the_issue_with_ratios() -> None:
    summary = peer.summarise(RUNS)
    result = {
        "summary": summary,
        "sizes": {"rounds": 3, "fault_rounds": 1},
        "alertmanager_version": "0.25.0",
        "budget": peer.budget_of(peer.figures_of(summary)),
    }
    rows = peer.table_rows(result)
    assert len(rows) == 8
    assert rows[0] == ["paced 50/s: p50 / p99 latency", "3 ms / 9 ms", "1 ms / 3 ms", "3× / 3×"]
    assert rows[6][1:] == ["51 MB; 61 MB", "30 MB; 100 MB", "1.7×; 0.61×"]
    assert rows[7][1:3] == ["500; 2,000; 500", "500; 2,000; 500"]  # the median of 500, 5,000, 500
    result["pinning"] = {"bench_cpu": 0, "router_cpu": 1}
    text = peer.format_table(result)
    assert text.startswith(
        "| figure (median of 3 rounds; faults 1) | console | Alertmanager 0.25.0"
    )
    assert "budget peer.console_over_am.at_50_per_s.p50 <= 1: NOT MET (3)" in text
    assert "console: lost 0, doubled 1, refused posts 0; Alertmanager: lost 0, doubled 1" in text
    assert "the router under test on CPU 1" in peer.format_table(result)
    result["pinning"] = {"router_cpu": None, "why_not": "1 usable CPU"}
    assert "not pinned: 1 usable CPU" in peer.format_table(result)


@pytest.mark.slow
def test_the_import_floor_adds_each_layer_to_a_fresh_interpreter() -> None:
    rows = peer.import_floor()
    assert [row["layer"] for row in rows] == [label for label, _mods in peer.IMPORT_LAYERS]
    sizes = [row["rss_mb"] for row in rows]
    assert sizes == sorted(sizes)  # each layer adds to the one above it
    assert sizes[0] > 1.0
    assert sizes[-1] - sizes[0] > 10.0  # the libraries and the engine are not free
    summary = peer.summarise(RUNS)
    text = peer.format_table({"summary": summary, "sizes": {}, "import_floor": rows})
    am = summary["medians"][peer.ALERTMANAGER]["rss_idle_mb"]
    assert f"budget: idle ≤ 1.5 × {am:.1f} MB = {1.5 * am:.1f} MB" in text
    assert f"{sizes[1]:6.1f} MB + the required packages a headless console loads (" in text


async def test_without_alertmanager_the_scenario_says_it_skipped_and_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert peer.find_alertmanager() is None
    said: list[str] = []
    result = await peer.run_peer(peer.QUICK, progress=said.append)
    assert result["scenario"] == "peer"
    assert "prometheus-alertmanager is not on the PATH" in result["skipped"]
    assert said == [f"peer: skipped: {result['skipped']}"]
    assert suite.figures_of({"peer": result}) == {}
    fake = tmp_path / "alertmanager"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    assert peer.find_alertmanager() == str(fake)


def _recorder(names: list[str], name: str = "peer") -> Any:
    async def scenario(_sizes: suite.Sizes) -> dict[str, Any]:
        names.append(name)
        return {}

    return scenario


def test_the_suite_runs_the_scenario_only_when_named_and_with_rounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert suite.QUICK.peer_rounds == 2
    assert suite.FULL.peer_rounds == 5
    monkeypatch.setenv("PATH", "/nonexistent")
    doc = suite.run_suite(replace(suite.QUICK, peer_rounds=None), only=["peer"])
    assert doc["scenarios"] == {}
    doc = suite.run_suite(suite.QUICK, only=["peer"])
    assert "skipped" in doc["scenarios"]["peer"]
    assert doc["problems"] == []
    assert doc["budget"] == []
    assert doc["figures"] == {}
    names: list[str] = []
    stand_ins = {name: _recorder(names, name) for name in suite.SCENARIOS}
    monkeypatch.setattr(suite, "SCENARIOS", stand_ins)
    suite.run_suite(suite.QUICK)
    assert "peer" not in names  # only when named
    assert "attach" in names


def test_pinning_takes_two_cpus_and_taskset() -> None:
    pinned = peer.choose_pinning([0, 1, 2], taskset="/usr/bin/taskset")
    assert (pinned.bench_cpu, pinned.router_cpu) == (0, 2)
    assert pinned.prefix() == ["/usr/bin/taskset", "-c", "2"]
    one = peer.choose_pinning([3], taskset="/usr/bin/taskset")
    assert one.prefix() == []
    assert one.why_not == "1 usable CPU"
    assert peer.choose_pinning([0, 1], taskset="").why_not == "taskset is not on the PATH"
    with peer.Pinning().bench():
        pass


def test_the_routers_configurations() -> None:
    text = peer.console_config_text(port=8123, map_url="http://127.0.0.1:1", sink_url="http://s")
    assert 'webhook_url = "http://s/api/webhooks/1200000000000000001/peer"' in text
    assert "rate_per_second = 0" in text
    assert "port = 8123" in text
    am = peer.alertmanager_config_text("http://s")
    assert "group_by: ['...']" in am
    assert "group_wait: 0s" in am
    assert 'url: "http://s/alertmanager"' in am
    assert "send_resolved: false" in am


TINY = peer.PeerSizes(
    rounds=1,
    fault_rounds=1,
    paced_seconds=0.4,
    rates=(50.0,),
    burst=200,
    batch=50,
    fault_events=40,
    fault_rate=50.0,
    fail_requests=3,
    down_seconds=1.0,
    around_down_seconds=0.4,
    drain_timeout=30.0,
    fault_timeout=60.0,
)


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_the_console_side_at_the_smallest_size_delivers_every_event_once() -> None:
    said: list[str] = []
    result = await peer.run_peer(TINY, sides=("console",), progress=said.append)
    assert result["lost"] == 0, result
    assert result["doubled"] == 0
    assert result["refused_posts"] == 0
    assert result["budget"] == []  # nothing to compare with
    loads, refused, down = result["runs"]
    assert loads["paced"]["50"]["delivered"] == 20
    assert loads["burst"]["delivered"] == 200
    assert loads["burst"]["calls"] <= 200  # packed: up to 10 events per call
    assert loads["rss_peak_mb"] >= loads["rss_idle_mb"] > 0
    assert refused["refused_calls"] == 3
    assert refused["delivered"] == 40
    assert refused["after_last_503_s"] is not None
    assert down["posted_while_down"] > 0
    assert down["drain_after_return_s"] is not None
    figures = result["figures"]
    assert figures["console.at_50_per_s.cpu_per_1000_s"] > 0
    assert not any(name.startswith("alertmanager.") for name in figures)
    assert said[0] == "peer: round 1/1 loads, console"
