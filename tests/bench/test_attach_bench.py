"""The ``attach`` benchmark: its figures, their directions, and the scenario at its smallest size
(a real engine process, three attached consoles, the attach probe with and without the UI)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from wanderer_console.attach import AttachError
from wanderer_console.bench import attach_probe, suite
from wanderer_console.bench.attach import proc_cpu_seconds

SMALLEST = replace(suite.QUICK, attach_seconds=1.0, attach_pairs=1, attach_probe_runs=1)

_RESULT: dict[str, Any] = {
    "attach_s": 0.7,
    "connect_first_frame_s": 0.4,
    "engine_cpu_share_none": 0.52,
    "engine_cpu_share_attached": 0.53,
    "consoles_added_cpu_share": 0.01,
    "lost": 0,
    "cpu": {"consoles": 3},
}


def test_figures_are_flat_and_higher_is_worse_except_the_uncompared_difference() -> None:
    figures = suite.figures_of({"attach": _RESULT})
    assert figures == {
        "attach.attach_s": 0.7,
        "attach.connect_first_frame_s": 0.4,
        "attach.engine_0_consoles_cpu_share": 0.52,
        "attach.engine_3_consoles_cpu_share": 0.53,
        "attach.consoles_added_cpu": 0.01,
    }
    for figure in figures:
        expected = None if figure == "attach.consoles_added_cpu" else "lower"
        assert suite.direction_of(figure) == expected, figure
    busier = {"attach": {**_RESULT, "engine_cpu_share_attached": 0.7}}
    rows = suite.compare({"scenarios": {"attach": _RESULT}}, {"scenarios": busier})
    regressed = [row["figure"] for row in rows if row["regressed"]]
    assert regressed == ["attach.engine_3_consoles_cpu_share"]


def test_lost_kills_are_a_failure_and_sizes_without_a_window_leave_the_scenario_out() -> None:
    assert suite.problems_of({"attach": {**_RESULT, "lost": 4}}) == [
        "attach: 4 kills not delivered"
    ]
    assert suite.problems_of({"attach": _RESULT}) == []
    assert suite.QUICK.attach_seconds == 3.0
    assert suite.FULL.attach_seconds == 10.0
    without = replace(suite.QUICK, attach_seconds=None)
    doc = suite.run_suite(without, only=["attach"])
    assert doc["scenarios"] == {}


def test_cpu_time_is_read_from_proc() -> None:
    first = proc_cpu_seconds(os.getpid())
    deadline = first + 0.05
    while proc_cpu_seconds(os.getpid()) < deadline:
        sum(range(10_000))
    assert proc_cpu_seconds(os.getpid()) >= deadline


async def test_the_probe_says_why_it_could_not_attach(tmp_path: Path) -> None:
    with pytest.raises(AttachError, match="nothing to attach to"):
        await attach_probe.probe_attach(tmp_path / "control.sock", ui=False)


def test_the_probe_reports_a_failure_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert attach_probe.main(["--socket", str(tmp_path / "control.sock"), "--no-ui"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert "nothing to attach to" in report["error"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_scenario_at_its_smallest_measures_both_figures_without_losing_a_kill() -> None:
    doc = suite.run_suite(SMALLEST, only=["attach"])
    assert doc["problems"] == []
    result = doc["scenarios"]["attach"]
    figures = doc["figures"]
    for figure in (
        "attach.attach_s",
        "attach.connect_first_frame_s",
        "attach.engine_0_consoles_cpu_share",
        "attach.engine_3_consoles_cpu_share",
    ):
        assert figures[figure] > 0, figure
    assert "attach.consoles_added_cpu" in figures

    # Engine CPU: one round of each kind at 1,000 kills/s, every kill delivered in both.
    cpu = result["cpu"]
    assert cpu["rate"] == 1000.0
    assert cpu["consoles"] == 3
    assert [r["consoles"] for r in cpu["rounds"]] == [0, 3]
    for entry in [cpu["warmup"], *cpu["rounds"]]:
        assert entry["kills"] == (3000 if entry is cpu["warmup"] else 1000)  # 3 s, 1 s
        assert entry["sent_per_second"] == pytest.approx(1000, rel=0.1)
        assert entry["received"] == entry["delivered"] == entry["kills"]
        assert entry["discord_embeds"] == entry["kills"]
        assert entry["lost"] == 0
        assert 0 < entry["engine_cpu_share"] < (os.cpu_count() or 1)
    none, three = cpu["rounds"]
    assert none["frames_per_console"] == []
    assert len(three["frames_per_console"]) == 3
    assert all(frames >= 1 for frames in three["frames_per_console"])
    assert result["lost"] == cpu["lost"] == 0
    idle = cpu["idle"]
    assert [r["kills"] for r in idle["rounds"]] == [0, 0]

    # Attach time: the probe's steps come in order, and the command's total includes them.
    attach = result["attach"]
    ui, no_ui = attach["samples"]["ui"][0], attach["samples"]["no_ui"][0]
    steps = [ui[k] for k in ("cli_import_s", "connected_s", "ui_import_s", "frame_shown_s")]
    assert steps == sorted(steps)
    assert 0 < ui["frame_shown_s"] <= ui["drawn_s"] < ui["total_s"] == result["attach_s"]
    assert 0 < no_ui["connected_s"] <= no_ui["first_frame_s"] < no_ui["total_s"]
    assert no_ui["total_s"] == result["connect_first_frame_s"]
