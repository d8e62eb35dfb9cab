"""Textual-free parts of the console: themes, throughput rates, activity, flags, frames."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.ui.conftest import HEALTHY, NOW, RALLY, degraded_snapshot
from tests.ui.fakes import SeededBackend, seeded_settings
from wanderer_console.console_api import (
    EngineIdentity,
    EngineSnapshot,
    FlagSet,
    Frame,
    LinkState,
    LogLine,
)
from wanderer_console.ui.flags import FlagRef, all_flags, flag_value, scope_label
from wanderer_console.ui.model import (
    ActivityLog,
    ConsoleState,
    ThroughputHistory,
    engine_label,
    format_ago,
    format_uptime,
)
from wanderer_console.ui.themes import (
    DEFAULT_THEME,
    ThemeProblem,
    load_theme,
    load_themes,
    select_theme,
)
from wanderer_console.ui.widgets.breakers import format_in


def test_repo_themes_load_with_domain_variables() -> None:
    themes = load_themes()
    assert {"wanderer-dark", "wanderer-light"} <= set(themes)
    assert themes["wanderer-light"].dark is False
    for name in ("health-ok", "health-degraded", "health-down", "breaker-open", "cache-hit"):
        assert name in themes["wanderer-light"].variables


def test_unknown_theme_falls_back_to_dark() -> None:
    assert select_theme(load_themes(), "no-such-theme").name == DEFAULT_THEME


def test_invalid_theme_file_is_reported_and_skipped(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text('name = "broken"\nprimary = "not-a-colour"\n', encoding="utf-8")
    with pytest.raises(ThemeProblem, match="primary"):
        load_theme(bad)
    themes = load_themes([tmp_path])
    assert "broken" not in themes
    assert select_theme(themes, "broken").name == DEFAULT_THEME


def _snapshot(data: dict[str, Any]) -> EngineSnapshot:
    return EngineSnapshot.model_validate(data)


def test_history_rates_from_successive_snapshots() -> None:
    history = ThroughputHistory()
    later = degraded_snapshot()
    later["counters"]["events_received"] = {"map": 1533, "killstream": 363}
    history.observe(_snapshot(HEALTHY), 100.0)
    history.observe(_snapshot(HEALTHY), 100.0)  # no time passed: no sample
    history.observe(_snapshot(later), 102.0)
    assert len(history.samples) == 1
    assert history.samples[0].events_per_second == pytest.approx(10.0)
    assert history.samples[0].notifications_per_second == 0.0


def test_history_charts_on_after_the_wall_clock_steps_back() -> None:
    """An hour's step back (NTP, a VM resumed) left every later frame "before" the last one:
    no rate was recorded until the clock caught up, so the chart froze for that hour."""
    history = ThroughputHistory()

    def at(events: int, when: float) -> None:
        data = degraded_snapshot()
        data["counters"]["events_received"] = {"map": events, "killstream": 0}
        history.observe(_snapshot(data), when)

    at(1000, 10_000.0)
    at(1010, 10_002.0)
    assert [s.at for s in history.samples] == [10_002.0]
    at(1020, 6_400.0)  # the clock stepped back an hour
    at(1040, 6_402.0)
    assert history.samples, "no rate after the step back"
    assert history.samples[-1].at == 6_402.0
    assert history.samples[-1].events_per_second == pytest.approx(10.0)
    # Samples stamped by the clock before its step would sit an hour in the future.
    assert all(sample.at <= 6_402.0 for sample in history.samples)


def test_activity_reports_changes_only() -> None:
    activity = ActivityLog()
    activity.observe(_snapshot(HEALTHY), 1.0)
    first = activity.added
    activity.observe(_snapshot(HEALTHY), 2.0)
    assert activity.added == first
    activity.observe(_snapshot(degraded_snapshot()), 3.0)
    texts = [text for _, text in list(activity.entries)[first:]]
    assert any("killstream:characters connected → failed" in t for t in texts)
    assert any(f"target alpha/rally ({RALLY}) disabled" in t for t in texts)


def test_format_ago_rounds_down_so_it_rolls_over_and_agrees_with_the_uptime() -> None:
    # Rounded, 59.6 s read "60s", 59m40s "60m" and 23h50m "24h"; and 1m59s "2m" beside the
    # title's uptime "up 0h01m" (which counts whole minutes): both floor now.
    assert format_ago(0.0, 59.6) == "59s"
    assert format_ago(0.0, 3580.0) == "59m"
    assert format_ago(0.0, 3600.0) == "1h"
    assert format_ago(0.0, 86_000.0) == "23h"
    assert format_ago(0.0, 86_400.0) == "1d"
    assert (format_ago(0.0, 119.0), format_uptime(119.0)) == ("1m", "0h01m")


def test_format_ago() -> None:
    assert format_ago(None, 10.0) == "-"
    assert format_ago(5.0, 10.0) == "5s"
    assert format_ago(0.0, 7200.0) == "2h"


def test_flags_read_from_the_snapshot_settings() -> None:
    settings = seeded_settings().model_copy(
        update={"maps": {"alpha": FlagSet(kill=False), "bravo": FlagSet()}}
    )
    refs = all_flags(settings)
    assert refs[:2] == [FlagRef(None, "enabled"), FlagRef(None, "kill")]
    assert len(refs) == 15
    assert flag_value(settings, FlagRef("alpha", "kill")) is False
    assert flag_value(settings, FlagRef(None, "kill")) is True
    assert FlagRef("alpha", "kill").label == "map alpha kill"
    assert scope_label(settings, "alpha") == "map Alpha"
    assert scope_label(settings.model_copy(update={"map_names": {}}), "alpha") == "map alpha"
    assert scope_label(settings, None) == "global"


def test_engine_label() -> None:
    identity = EngineIdentity(
        host="wc-prod-1", pid=1, data_dir="/var/lib/wc", version="0.5.0", started_at=0.0
    )
    snapshot = _snapshot({**HEALTHY, "uptime": 3 * 3600 + 125.0})
    assert engine_label(identity, snapshot) == "wc-prod-1 · /var/lib/wc · v0.5.0 · up 3h02m"
    assert engine_label(None, snapshot) == "v0.1.0 · up 3h02m"
    assert engine_label(None, None) == ""


def _state() -> ConsoleState:
    return ConsoleState(
        backend=SeededBackend(HEALTHY),
        actor="tui:tester@host",
        clock=None,  # type: ignore[arg-type]  # accept() is given the time
        history=ThroughputHistory(),
        activity=ActivityLog(),
    )


def test_accept_takes_logs_and_observes_live_frames_only() -> None:
    state = _state()
    live = Frame(
        snapshot=_snapshot(HEALTHY),
        logs=(LogLine(at=NOW - 1, level="warning", text="map alpha: slow"),),
    )
    change = state.accept(live, NOW)
    assert change.settings_changed
    assert not change.link_changed
    assert state.latest == live.snapshot
    assert state.live_at == NOW
    texts = [text for _, text in state.activity.entries]
    assert texts[0] == "warning: map alpha: slow"
    assert "map:alpha new → connected" in texts

    lost = Frame(
        snapshot=_snapshot(degraded_snapshot()),
        link=LinkState(state="lost", detail="engine stopped"),
        dropped=4,
    )
    before = state.activity.added
    change = state.accept(lost, NOW + 5)
    assert change.link_changed
    assert not change.settings_changed
    assert not state.live
    assert state.live_at == NOW  # the figures shown are from then
    added = state.activity.added - before
    new = [text for _, text in list(state.activity.entries)[-added:]]
    # A stale snapshot is not read as changes: only the link and the missed lines are said.
    assert new == [
        "engine lost: engine stopped",
        "console missed 4 frame(s) or log line(s): it read too slowly",
    ]
    assert state.dropped == 4

    state.accept(Frame(snapshot=_snapshot(HEALTHY)), NOW + 9)
    assert state.live
    assert "engine link live again" in [text for _, text in state.activity.entries]


def test_a_backlog_sent_again_is_not_shown_twice() -> None:
    """A reopened frame stream (a new interval) starts with lines already taken in."""
    state = _state()
    first = LogLine(at=NOW - 2, level="info", text="map alpha: connected")
    second = LogLine(at=NOW - 1, level="info", text="map alpha: connected")
    state.accept(Frame(snapshot=_snapshot(HEALTHY), logs=(first,)), NOW)
    state.accept(Frame(snapshot=_snapshot(HEALTHY), logs=(first, second)), NOW + 1)
    logs = [text for _, text in state.activity.entries if text.startswith("info:")]
    assert logs == ["info: map alpha: connected", "info: map alpha: connected"]  # two lines


def test_next_probe_formatting() -> None:
    assert format_in(None, 100.0) == "-"
    assert format_in(90.0, 100.0) == "now"
    assert format_in(112.0, 100.0) == "in 12s"
