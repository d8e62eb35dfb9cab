"""``wanderer-console db status`` on a SQLite file it cannot read: the advice fits a file.

``db status`` reads the store beside a running engine; when the SQLite file is damaged or
another process holds it locked, the operator needs what to do with that file, not the
PostgreSQL advice ("Check the server.") that has no server to check.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.support import json_refusal
from wanderer_console.command import EXIT_INVALID
from wanderer_console.store.sqlite import DB_NAME


def _status(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wanderer_console", "db", "status", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_file_that_is_not_a_database_is_explained_as_a_file(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"this was overwritten by something else\n" * 200)
    done = _status(tmp_path)
    assert done.returncode == EXIT_INVALID
    assert "Traceback" not in done.stderr
    assert "not a SQLite database" in done.stderr
    assert "restore the latest backup" in done.stderr
    assert "server" not in done.stderr
    answer = json_refusal(done.stdout, done.stderr, "db status")
    assert set(answer) == {"error", "command", "exit_code"}  # no status of another store


def test_a_file_another_process_holds_locked_says_to_try_again(tmp_path: Path) -> None:
    """An exclusive lock (a rollback-journal file, e.g. an ``sqlite3`` shell mid-write): the
    engine need not be stopped, status only reads."""
    path = tmp_path / DB_NAME
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("CREATE TABLE outbox (id INTEGER PRIMARY KEY, status TEXT)")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("INSERT INTO outbox (status) VALUES ('pending')")
        done = _status(tmp_path)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert done.returncode == EXIT_INVALID
    assert "Traceback" not in done.stderr
    assert "locked" in done.stderr
    assert "run db status again" in done.stderr.lower()
    assert "server" not in done.stderr
