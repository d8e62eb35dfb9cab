"""A start that fails with the console UI wanted (the default) says what ``--no-ui`` would.

While the console owns the terminal the engine's lines go to its log ring only (the activity
panel reads it). A start that fails never shows that panel, so without more the operator at the
terminal never read the lines that say why: that delivery was paused, or what the start did
before it failed.

Driven in-process through ``cli.main`` (its refusal is the failure's reason, as the operator
reads it) on a real pseudo-terminal, so the console UI is what the command runs; the start fails
before the UI draws anything. The store's failure is injected: a real SQLite file cannot be made
to fail on demand as the name cache loads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pty
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wanderer_console import cli
from wanderer_console.delivery.hold import PAUSE_FILE
from wanderer_console.launch import run_demo
from wanderer_console.store.integrity import StorageError
from wanderer_console.store.sql import SqlStore
from wanderer_console.telemetry.logging import LIBRARY_LOGGERS

SECRET_PASSWORD = "hunter2secret"
SECRET_TOKEN = "WebhookTokenThatMustNotShow"


@pytest.fixture
def engine_logging() -> Iterator[None]:
    """The engine's loggers put back as they were: the command configures them for itself."""
    loggers = [logging.getLogger(name) for name in ("wanderer_console", *LIBRARY_LOGGERS)]
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


@contextlib.contextmanager
def _on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """stdin and stdout on a real pseudo-terminal (as the console UI needs); yields its master
    side, to read what reached the terminal's stdout. Set in the test's body: pytest puts its
    own capture back on sys.stdout between a fixture's set-up and the test."""
    master, slave = pty.openpty()
    stdin = os.fdopen(os.dup(slave), "r", encoding="utf-8")
    stdout = os.fdopen(os.dup(slave), "w", encoding="utf-8")
    try:
        with monkeypatch.context() as patch:
            patch.setattr("sys.stdin", stdin)
            patch.setattr("sys.stdout", stdout)
            yield master
    finally:
        stdin.close()
        stdout.close()
        os.close(slave)
        os.close(master)


def _written(master: int) -> str:
    """What the terminal received so far (never waits)."""
    os.set_blocking(master, False)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""\
[console]
startup_suppression_seconds = 0

[esi]
enabled = false

[maps.home]
url = "http://127.0.0.1:9/"
api_key = "map-key"
name = "Home"

[maps.home.discord]
webhook_url = "https://discord.com/api/webhooks/1/{SECRET_TOKEN}"
""",
        encoding="utf-8",
    )
    path.chmod(0o600)
    return path


def _assert_masked_and_readable(shown: str) -> None:
    """No secret unmasked and no JSON log line in what the operator was shown."""
    assert SECRET_PASSWORD not in shown, shown
    assert SECRET_TOKEN not in shown, shown
    assert '"level"' not in shown, shown
    assert '"event"' not in shown, shown


def _store_gone(self: Any, version: int, now: float) -> Any:
    raise StorageError(
        self.path,
        f"it did not answer (at https://discord.com/api/webhooks/1/{SECRET_TOKEN})",
        "check the database",
    )


@pytest.mark.usefixtures("engine_logging")
def test_a_failed_start_under_the_console_ui_says_its_lines_on_stderr(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The saved pause's warning (with its context), the start's info lines and the failure's
    reason reach stderr, one readable masked line each; no JSON line anywhere."""
    data = tmp_path / "data"
    data.mkdir()
    actor = f"tui:alice via https://alice:{SECRET_PASSWORD}@proxy.example"
    (data / PAUSE_FILE).write_text(json.dumps({"paused_by": actor, "paused_at": 1.0}))
    monkeypatch.setattr(SqlStore, "load_cache_entries", _store_gone)

    with _on_a_terminal(monkeypatch) as terminal:
        code = cli.main(["--config", str(_config(tmp_path)), "--data-dir", str(data)])
        on_terminal = _written(terminal)

    err = capsys.readouterr().err
    shown = err + on_terminal
    assert code != 0
    lines = err.splitlines()
    paused = [line for line in lines if "delivery paused by an operator before this start" in line]
    assert paused, err
    assert paused[0].startswith("wanderer-console: warning: "), err
    assert "paused_by=tui:alice via https://alice:***@proxy.example" in paused[0], err
    reason = [i for i, line in enumerate(lines) if "did not answer" in line]
    assert reason, err
    assert reason[0] > lines.index(paused[0]), err
    assert "wanderer-console: info: wanderer console stopped" in lines, err
    _assert_masked_and_readable(shown)


@pytest.mark.usefixtures("engine_logging")
def test_a_failed_demo_start_under_the_console_ui_says_its_lines_on_stderr(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The demo starts its engine under the console UI the same way: a start that fails says
    the saved pause's warning on stderr, readable and masked, not only in the unseen log ring."""
    actor = f"tui:alice via https://alice:{SECRET_PASSWORD}@proxy.example"
    (tmp_path / PAUSE_FILE).write_text(json.dumps({"paused_by": actor, "paused_at": 1.0}))
    monkeypatch.setattr(SqlStore, "load_cache_entries", _store_gone)

    with pytest.raises(StorageError):
        run_demo(duration=None, rate=1.0, seed=1, data_dir=tmp_path, tui=True)

    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    paused = [line for line in lines if "delivery paused by an operator before this start" in line]
    assert paused, captured.err
    assert paused[0].startswith("wanderer-console: warning: "), captured.err
    _assert_masked_and_readable(captured.err + captured.out)


@pytest.mark.usefixtures("engine_logging")
def test_a_failed_headless_start_still_stops_the_engine(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--no-ui``: what the start had begun is stopped as at any stop (its workers, the store,
    the data directory's lock), not left to the event loop's cancellation at exit."""
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(SqlStore, "load_cache_entries", _store_gone)

    code = cli.main(["--no-ui", "--config", str(_config(tmp_path)), "--data-dir", str(data)])

    captured = capfd.readouterr()
    logged = captured.out + captured.err  # the JSON log is the process's output stream
    assert code != 0
    events = [json.loads(line) for line in logged.splitlines() if line.startswith("{")]
    assert any(e.get("event") == "wanderer console stopped" for e in events), logged
    assert SECRET_TOKEN not in logged, logged
