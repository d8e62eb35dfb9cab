"""The integrity check at open reads a file once per process while it is unchanged."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from wanderer_console.store import integrity
from wanderer_console.store.integrity import StorageError
from wanderer_console.store.sqlite import open_database


def test_an_unchanged_file_is_checked_once_and_a_changed_one_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "db.sqlite"
    conn = open_database(db)  # fresh: nothing to check yet
    conn.executemany(
        "INSERT INTO events (tenant_id, event_id, source, type, received_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [("home", f"e{i}", "sse", "add_system", 1.0, "x" * 600) for i in range(2000)],
    )
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    conn.close()
    real = integrity._quick_check
    checks: list[Path] = []

    def counted(*args: Any) -> Any:
        checks.append(db)
        return real(*args)

    monkeypatch.setattr(integrity, "_quick_check", counted)
    for _ in range(3):  # the store, the config audit and the tenant registry at start
        open_database(db).close()
    assert len(checks) == 1
    time.sleep(0.01)  # a later modification time, on any file system's clock
    with db.open("r+b") as handle:
        handle.seek((pages - 3) * page_size)
        handle.write(os.urandom(page_size))
    with pytest.raises(StorageError, match=r"damaged|malformed|corrupt"):
        open_database(db)
    assert len(checks) == 2
