"""Textual-free parts of the console: themes, throughput rates, activity, flag writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.conftest import HEALTHY, degraded_snapshot
from wanderer_console.ui.flags import FlagRef, write_flag
from wanderer_console.ui.model import ActivityLog, ThroughputHistory, format_ago
from wanderer_console.ui.themes import (
    DEFAULT_THEME,
    ThemeProblem,
    load_theme,
    load_themes,
    select_theme,
)


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


def test_history_rates_from_successive_snapshots() -> None:
    history = ThroughputHistory()
    later = degraded_snapshot()
    later["counters"]["events_received"] = {"map": 1533, "killstream": 363}
    history.observe(HEALTHY, 100.0)
    history.observe(HEALTHY, 100.0)  # no time passed: no sample
    history.observe(later, 102.0)
    assert len(history.samples) == 1
    assert history.samples[0].events_per_second == pytest.approx(10.0)
    assert history.samples[0].notifications_per_second == 0.0


def test_activity_reports_changes_only() -> None:
    activity = ActivityLog()
    activity.observe(HEALTHY, 1.0)
    first = activity.added
    activity.observe(HEALTHY, 2.0)
    assert activity.added == first
    activity.observe(degraded_snapshot(), 3.0)
    texts = [text for _, text in list(activity.entries)[first:]]
    assert any("killstream:characters connected → failed" in t for t in texts)
    assert any("alpha/webhook:rally disabled" in t for t in texts)


def test_format_ago() -> None:
    assert format_ago(None, 10.0) == "-"
    assert format_ago(5.0, 10.0) == "5s"
    assert format_ago(0.0, 7200.0) == "2h"


def test_write_flag_creates_missing_file_and_tables(tmp_path: Path) -> None:
    path = tmp_path / "new.toml"
    write_flag(path, FlagRef("alpha", "kill"), False)
    assert "kill = false" in path.read_text(encoding="utf-8")
