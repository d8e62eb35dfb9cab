"""The console's advice is the troubleshooting runbook: the page lists exactly the entries of
:mod:`wanderer_console.ui.runbook`, in the same words, and each error the detail views explain is
recognised as the entry the page would send an operator to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wanderer_console.ui.runbook import RUNBOOK, SECTIONS, advice_for, plain

PAGE = Path(__file__).parents[2] / "docs" / "operations" / "troubleshooting.md"
HEADERS = {"message", "message / state", "message / metric", "symptom"}


def page_rows() -> list[tuple[str, str, str, str]]:
    """``(section, message, meaning, action)`` of every table row of the page."""
    rows: list[tuple[str, str, str, str]] = []
    section = None
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if section is None or not line.startswith("|"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if all(set(cell) <= set("-: ") for cell in cells) or cells[0] in HEADERS:
            continue
        assert len(cells) == 3, f"{section}: a row of {len(cells)} cells: {line}"
        rows.append((section, cells[0], cells[1], cells[2]))
    return rows


def test_the_page_lists_exactly_the_consoles_entries_in_the_same_words() -> None:
    page = page_rows()
    table = [(a.section, a.message, a.meaning, a.action) for a in RUNBOOK]
    only_page = [row for row in page if row not in table]
    only_code = [row for row in table if row not in page]
    assert not only_page, f"rows on the page the console does not know: {only_page}"
    assert not only_code, f"entries the page does not list (or words differ): {only_code}"
    assert page == table  # and in the same order
    assert [s for s in dict.fromkeys(row[0] for row in page)] == list(SECTIONS)


@pytest.mark.parametrize(
    ("text", "subject", "message_start"),
    [
        ("HTTP 401: invalid api key", "map_sse", "`map stream refused`, `error: HTTP 401"),
        ("HTTP 404: map not found", "map_sse", "`map stream refused`, `HTTP 404`"),
        ("initial load failed: connection refused", "map_sse", "`map load failed; retrying`"),
        ("stream lost: read timeout", "map_sse", "`map stream lost`"),
        ("closed before 'connected' frame", "map_sse", "state `degraded`, `closed before"),
        ("join refused: {'reason': 'bad'}", "killstream", "`killstream join refused"),
        (
            "join refused over the server's limit ({'reason': '[validation:too_many_systems]"
            " Too many systems: 80 (max: 50)'}); resharded, reconnecting",
            "killstream",
            "`killstream server's limit is lower",
        ),
        (
            "killstream server's limit is lower; resharding (mode=systems, limit=50, was=80)",
            "log",
            "`killstream server's limit is lower",
        ),
        (
            "no reply to the join within 10 s; reconnecting",
            "killstream",
            "`killstream join not answered",
        ),
        ("heartbeat reply missed", "killstream", "`killstream heartbeat missed`"),
        ("socket lost: [Errno 111] refused", "killstream", "`killstream lost`"),
        ("REST poll failed: timeout", "fallback", "`killstream REST poll failed`"),
        ("403 Forbidden from R2Z2: polling stopped for 60 min", "r2z2", "`r2z2 forbidden"),
        ("429 rate limited; waiting 5 s", "r2z2", "`r2z2 rate limited`"),
        ("HTTP 502", "r2z2", "`r2z2 request failed`"),
        ("404 Unknown Webhook", "target", "`discord refused a target"),
        ("401 Unauthorized", "target", "same, `status`: 401"),
        ("403 Missing Access", "target", "same, `status`: 403"),
        ("no bot token configured", "target", "same, `detail`: `no bot token"),
        ("503 upstream connect error", "target", "`notification delivery failed`"),
        ("5 failures in 30s, last: timeout", "breaker", "`http circuit breaker closed -> open`"),
        ("line 6 · (syntax): invalid TOML: unclosed array", "config", "`config.toml:7: (syntax)"),
        ("line 3 · notifications.kil: unknown key", "config", "`config.toml:42:"),
        (
            "line 9 · maps.home.api_key: overridden by the environment variable MAP_API_KEY:"
            " the value here is not used (unset MAP_API_KEY to use it, or change it there)",
            "config",
            "`warning: config.toml:12: console.dry_run: overridden",
        ),
        (
            "configuration edit has no effect: the environment overrides these keys; unset the"
            " variable, or change it there (keys={'console.dry_run': 'DRY_RUN'})",
            "log",
            "`warning: config.toml:12: console.dry_run: overridden",
        ),
        (
            "operations alert messages wait: no map is shared out on this database, and they go"
            " out under the first map's lease; enable a map in the configuration (or add one on"
            " the map server when hosted) (instance=h:1:abc)",
            "log",
            "`operations alert messages wait",
        ),
        (
            "http request failed (service=map, url=http://127.0.0.1:1/x, error=refused)",
            "log",
            "`http request failed`",
        ),
        (
            "map stream refused (tenant=alpha, error=HTTP 404: no such map)",
            "log",
            "`map stream refused`, `HTTP 404`",
        ),
        ("killstream channel ended; rejoining (mode=systems)", "log", "`killstream channel ended"),
        (
            "WAL checkpoint failed; retrying with backoff until one succeeds"
            " (error=database or disk is full)",
            "log",
            "`WAL checkpoint failed",
        ),
        (
            "outcomes not recorded at stop: the store cannot write; their notifications are"
            " re-sent as uncertain at the next start (a webhook message confirmed here may post"
            " twice) (outcomes=1, operations=['mark sent'])",
            "log",
            "`outcomes not recorded at stop",
        ),
        (
            "retention could not prune old records; tries again later"
            " (error=StoreWriteError: cannot write db.sqlite (prune events): database or disk"
            " is full)",
            "log",
            "`retention could not prune",
        ),
        (
            "configuration change rejected; the running configuration is kept (problems=x)",
            "log",
            "`configuration change rejected",
        ),
    ],
)
def test_an_error_is_explained_by_the_entry_an_operator_would_look_up(
    text: str, subject: str, message_start: str
) -> None:
    advice = advice_for(text, subject)
    assert advice is not None
    assert advice.message.startswith(message_start), advice.message


def test_a_log_line_no_entry_knows_has_no_advice_but_a_fault_always_has() -> None:
    assert advice_for("operator: delivery paused", "log") is None
    assert advice_for("something new", "killstream") is not None
    assert advice_for(None, "target") is not None
    with pytest.raises(ValueError, match="unknown subject"):
        advice_for("x", "nothing")


def test_markdown_is_shown_plain() -> None:
    assert plain("see [restarts](restarts.md): run `outbox retry`") == (
        "see restarts: run outbox retry"
    )
