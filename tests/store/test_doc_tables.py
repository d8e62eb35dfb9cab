"""The deployment guide's "What is in the database" lists every table the store creates, so an
operator deciding what a backup holds (or what losing the file costs) sees all of it."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

from wanderer_console.config.audit import ConfigAudit
from wanderer_console.store.sqlite import DB_NAME, SqliteStore

GUIDE = Path(__file__).parents[2] / "docs" / "operations" / "deployment.md"


def documented_tables() -> set[str]:
    """The tables named in the first column of the guide's table of tables."""
    text = GUIDE.read_text(encoding="utf-8")
    table = text.split("What is in the database:", 1)[1].split("\n\n", 2)[1]
    return {
        name
        for row in table.splitlines()[2:]
        for name in re.findall(r"`([a-z_]+)`", row.split(" | ", 1)[0])
    }


def test_every_table_of_a_fresh_store_is_documented(tmp_path: Path) -> None:
    SqliteStore(tmp_path / DB_NAME).close()  # created and migrated to this build's schema
    ConfigAudit(tmp_path / DB_NAME).close()  # its one-time rewrites are recorded at its start
    with contextlib.closing(sqlite3.connect(tmp_path / DB_NAME)) as conn:
        created = {
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    assert "outbox" in created
    assert sorted(created - documented_tables()) == [], "in the store, not in the guide"
    assert sorted(documented_tables() - created) == [], "in the guide, not in the store"
