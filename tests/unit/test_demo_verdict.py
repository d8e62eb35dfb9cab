"""The demo's closing verdict and its counters: what became of every expected kill Discord did
not receive (pending at Discord's rate limits is not lost), integer counts."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from wanderer_console.command import EXIT_INVALID, EXIT_OK
from wanderer_console.launch import MissingKill, demo_exit_status, demo_verdict, integer_counts


def summary(expected: int = 10, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "scenario": {"kills_expected": expected, "untracked_kills_notified": []},
        "discord": {"duplicate_deliveries": 0},
        "errors": 0,
    }
    for key, value in extra.items():
        if key in ("untracked_kills_notified",):
            base["scenario"][key] = value
        elif key == "duplicates":
            base["discord"]["duplicate_deliveries"] = value
        else:
            base[key] = value
    return base


def test_everything_delivered() -> None:
    assert demo_verdict(summary(), {}, kept=False) == (
        "demo verdict: OK — 10 of 10 expected kills delivered; no duplicates, no errors"
    )


def test_pending_kills_are_not_lost() -> None:
    missing = {1: MissingKill(True, ("pending",)), 2: MissingKill(True, ("sending",))}
    verdict = demo_verdict(summary(), missing, kept=True)
    assert verdict.startswith("demo verdict: OK — 8 of 10 expected kills delivered")
    assert "2 pending (rate limited), not lost: in the outbox (delivered at the next start)" in (
        verdict
    )
    temporary = demo_verdict(summary(), missing, kept=False)
    assert "--data-dir keeps it" in temporary


def test_unread_kills_are_said_apart() -> None:
    verdict = demo_verdict(summary(), {3: MissingKill(False, ())}, kept=False)
    assert verdict.startswith("demo verdict: OK")
    assert "1 still unread from the killstream when the demo stopped" in verdict


@pytest.mark.parametrize(
    ("missing", "extra", "said"),
    [
        ({4: MissingKill(True, ())}, {}, "1 kill(s) read but never queued: [4]"),
        ({5: MissingKill(True, ("failed",))}, {}, "1 kill(s) failed for good: [5]"),
        ({}, {"duplicates": 2}, "2 duplicate deliveries"),
        ({}, {"untracked_kills_notified": [7]}, "1 untracked kill(s) notified: [7]"),
        ({}, {"errors": 3}, "3 error(s)"),
    ],
)
def test_a_problem_is_named(
    missing: dict[int, MissingKill], extra: dict[str, Any], said: str
) -> None:
    verdict = demo_verdict(summary(**extra), missing, kept=False)
    assert verdict.startswith("demo verdict: PROBLEM — ")
    assert said in verdict


@pytest.mark.parametrize(
    ("missing", "extra", "status"),
    [
        ({}, {}, EXIT_OK),
        ({1: MissingKill(True, ("pending",))}, {}, EXIT_OK),
        ({2: MissingKill(False, ())}, {}, EXIT_OK),
        ({4: MissingKill(True, ())}, {}, EXIT_INVALID),
        ({5: MissingKill(True, ("failed",))}, {}, EXIT_INVALID),
        ({}, {"duplicates": 1}, EXIT_INVALID),
        ({}, {"untracked_kills_notified": [7]}, EXIT_INVALID),
        ({}, {"errors": 1}, EXIT_INVALID),
    ],
)
def test_a_problem_is_an_exit_status(
    missing: dict[int, MissingKill], extra: dict[str, Any], status: int
) -> None:
    """``demo --duration`` exited 0 whatever its verdict, so ``make demo`` (and a script
    running it as a smoke test) passed with duplicates or kills lost."""
    verdict = demo_verdict(summary(**extra), missing, kept=False)
    assert demo_exit_status(verdict) == status


def test_counters_are_integers() -> None:
    assert integer_counts({"a": 65.0, "b": [1.0, 0.5], "c": {"d": 2.0}, "e": "x"}) == {
        "a": 65,
        "b": [1, 0.5],
        "c": {"d": 2},
        "e": "x",
    }


async def _demo_for_4_seconds(tmp_path: Path, *options: str) -> tuple[dict[str, Any], str]:
    """``demo --no-ui [options] --duration 4`` run as the operator runs it: its JSON summary
    (the last line of stdout) and its stderr; it must exit 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wanderer_console",
        "demo",
        "--no-ui",
        *options,
        "--duration",
        "4",
        "--data-dir",
        str(tmp_path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out.decode().splitlines()[-1]), err.decode()


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_the_demo_prints_its_verdict_and_integer_counters(tmp_path: Path) -> None:
    result, err = await _demo_for_4_seconds(tmp_path)
    [line] = [x for x in err.splitlines() if x.startswith("demo verdict: ")]
    assert result["verdict"] == line
    assert line.startswith("demo verdict: OK")
    for section in ("events_received", "notifications_delivered", "notifications_queued"):
        assert all(isinstance(v, int) for v in result[section].values()), result[section]


def test_a_dry_run_renders_without_sending() -> None:
    """``demo --dry-run`` marks each notification done once rendered and logged, and Discord
    gets nothing: the verdict said "PROBLEM — N kill(s) failed for good" of every kill."""
    missing = {1: MissingKill(True, ("sent",)), 2: MissingKill(True, ("sent", "sent"))}
    verdict = demo_verdict(summary(expected=2), missing, kept=False, dry_run=True)
    assert verdict == (
        "demo verdict: OK — 0 of 2 expected kills delivered; 2 rendered and logged, not sent"
        " (--dry-run); no duplicates, no errors"
    )
    assert demo_verdict(summary(expected=2), missing, kept=False).startswith(
        "demo verdict: PROBLEM"
    )


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_the_demo_in_a_dry_run_says_nothing_was_sent(tmp_path: Path) -> None:
    result, _err = await _demo_for_4_seconds(tmp_path, "--dry-run")
    assert result["discord"]["messages"] == 0
    assert result["verdict"].startswith("demo verdict: OK — 0 of "), result["verdict"]
    assert "not sent (--dry-run)" in result["verdict"]
