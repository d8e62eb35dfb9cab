"""Audit of configuration changes: who changed what, when, and every version to restore.

Each row keeps the time, the source (``file``, ``tui``, ``cli:restore``, ``startup``), the config
file path, a diff with every secret masked, and the full text of that version (the database is
private to the operator, mode 0600) so ``config restore N`` can bring it back. Rejected edits are
recorded too, with their located problems and no applied change.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, SecretStr

from wanderer_console.config.model import Settings
from wanderer_console.store.sqlite import open_database

__all__ = ["AuditEntry", "ConfigAudit", "Change", "diff_settings", "flatten"]

MASK = "***"


@dataclass(frozen=True, slots=True)
class Change:
    """One changed key; secret values are masked."""

    key: str
    old: Any
    new: Any

    def as_json(self) -> dict[str, Any]:
        """JSON-safe view."""
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audit row."""

    id: int
    at: float
    source: str
    path: str | None
    diff: dict[str, Any]
    content: str

    def as_json(self) -> dict[str, Any]:
        """JSON-safe view without the file text (which may hold secrets)."""
        return {"id": self.id, "at": self.at, "source": self.source, "path": self.path, **self.diff}


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key → leaf value of a settings tree (SecretStr leaves are kept as they are)."""
    if isinstance(value, BaseModel):
        value = {name: getattr(value, name) for name in type(value).model_fields}
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        if not value and prefix:
            out[prefix] = {}
        return out
    return {prefix: value}


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, Path):
        return str(value)
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, SecretStr) or isinstance(b, SecretStr):
        av = a.get_secret_value() if isinstance(a, SecretStr) else a
        bv = b.get_secret_value() if isinstance(b, SecretStr) else b
        return bool(av == bv)
    return bool(a == b)


def diff_settings(old: Settings | None, new: Settings) -> list[Change]:
    """Every key whose value differs, secrets masked (a changed secret shows as changed)."""
    before = flatten(old) if old is not None else {}
    after = flatten(new)
    changes = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if not _same(a, b):
            changes.append(Change(key, _plain(a), _plain(b)))
    return changes


class ConfigAudit:
    """The ``config_audit`` table in the console's database (own connection)."""

    def __init__(self, db_path: Path) -> None:
        self._conn = open_database(db_path)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.close()

    def record(
        self,
        source: str,
        path: Path | None,
        content: str,
        diff: dict[str, Any],
        *,
        now: float | None = None,
    ) -> int:
        """Append one row; return its id."""
        cursor = self._conn.execute(
            "INSERT INTO config_audit (at, source, path, diff, content) VALUES (?, ?, ?, ?, ?)",
            (
                time.time() if now is None else now,
                source,
                None if path is None else str(path),
                orjson.dumps(diff, default=str).decode(),
                content,
            ),
        )
        return int(cursor.lastrowid or 0)

    def history(self, limit: int = 100) -> list[AuditEntry]:
        """The latest rows, oldest first."""
        rows = self._conn.execute(
            "SELECT id, at, source, path, diff, content FROM config_audit ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._entry(row) for row in reversed(rows)]

    def get(self, entry_id: int) -> AuditEntry | None:
        """One row by id."""
        row = self._conn.execute(
            "SELECT id, at, source, path, diff, content FROM config_audit WHERE id = ?",
            (entry_id,),
        ).fetchone()
        return None if row is None else self._entry(row)

    def latest_applied(self) -> AuditEntry | None:
        """The newest row that describes an applied version (not a rejected edit)."""
        for entry in reversed(self.history(1000)):
            if entry.diff.get("status") != "rejected":
                return entry
        return None

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> AuditEntry:
        return AuditEntry(
            int(row[0]), float(row[1]), str(row[2]), row[3], orjson.loads(row[4]), row[5]
        )
