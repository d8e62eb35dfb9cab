"""Audit of configuration changes: who changed what, when, and every version to restore.

Each row keeps the time, the source (``file``, ``tui``, ``cli:restore``, ``startup``), the config
file path, a diff with every secret masked, and the text of that version with every secret value
replaced by ``«redacted»`` (:mod:`wanderer_console.config.redact`; comments and layout kept), so
``config restore N`` can bring it back with the secrets of the current file or the environment.
No secret is stored: a copy of the data directory does not leak the keys ever written into the
config. Rejected edits are recorded too, with their located problems and no applied change.

Versions written by older builds held the full text, secrets included. Opening the audit rewrites
them once (recorded in ``data_migrations``) and compacts the database, so the old bytes leave the
file and its write-ahead log instead of lingering in free pages. The table lives in the store's
database, SQLite or PostgreSQL (:func:`wanderer_console.store.backends.connect`); no build before
PostgreSQL support stored secrets there, so on it the rewrite is a sweep with nothing to compact.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, SecretStr

from wanderer_console.config.model import Settings
from wanderer_console.config.redact import redact_config, redact_text
from wanderer_console.store.backends import connect
from wanderer_console.store.base import StoreLocation

__all__ = ["AuditEntry", "ConfigAudit", "Change", "diff_settings", "flatten"]

MASK = "***"

log = logging.getLogger(__name__)

_REDACT_MIGRATION = "config_audit.redact_secrets"
"""The one-time rewrite of versions stored in full by older builds."""


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
        """JSON-safe view without the file text."""
        return {"id": self.id, "at": self.at, "source": self.source, "path": self.path, **self.diff}

    def matches(self, text: str) -> bool:
        """True when ``text`` is this version (compared as stored: with its secrets redacted).

        A change of secrets alone is therefore not seen here; the hot reload still audits it as a
        changed key when it applies the edit.
        """
        return self.content == redact_config(text)


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

    def __init__(self, db_path: StoreLocation) -> None:
        self._conn = connect(db_path)
        self._sqlite = isinstance(self._conn, sqlite3.Connection)
        if self._sqlite:
            self._redact_stored_versions()
        else:
            self._sweep_stored_versions()

    def _sweep_stored_versions(self) -> None:
        """PostgreSQL: redact any stored version not redacted yet, once (no file to compact)."""
        try:
            if self._migration_state() == "done":
                return
            updates = self._redactions()
            for new_diff, new_content, row_id in updates:
                self._conn.execute(
                    "UPDATE config_audit SET diff = ?, content = ? WHERE id = ?",
                    (new_diff, new_content, row_id),
                )
            self._conn.execute(
                "INSERT INTO data_migrations (name, applied_at) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET applied_at = excluded.applied_at",
                (_REDACT_MIGRATION, time.time()),
            )
        except Exception as exc:  # psycopg's errors: reading the history must keep working
            log.warning(
                "config history: stored versions not scrubbed of secrets yet (tried again at"
                " the next open)",
                extra={"ctx": {"error": str(exc)}},
            )

    def _redact_stored_versions(self) -> None:
        """Rewrite, once per database, the versions older builds stored with their secrets.

        The rows are redacted before the write lock is taken (parsing is the slow part), then
        updated in one transaction with ``secure_delete`` on, so the freed cells and overflow
        pages are zeroed. ``VACUUM`` then rebuilds every page (page splits of the old inserts may
        have left stale copies in free space) and a ``TRUNCATE`` checkpoint empties the
        write-ahead log, which held those pages too. Done is recorded only after the compaction;
        a database that cannot be written now (read-only, locked) is left for a later open.
        """
        try:
            state = self._migration_state()
            if state == "done":
                return
            if state is None and not self._rewrite_rows():
                return
            self._compact()
        except sqlite3.OperationalError as exc:
            # Reading the history must keep working on a read-only copy or a busy database.
            log.warning(
                "config history: stored versions not scrubbed of secrets yet (tried again at"
                " the next open)",
                extra={"ctx": {"error": str(exc)}},
            )

    def _migration_state(self) -> str | None:
        """``None`` (not begun), ``compact`` (rows rewritten, file not compacted) or ``done``."""
        # A record of one-time data rewrites, apart from the schema version: it fixes content,
        # and it is the audit, not the schema, that knows how.
        real = "REAL" if self._sqlite else "DOUBLE PRECISION"
        self._conn.execute(
            f"CREATE TABLE IF NOT EXISTS data_migrations (name TEXT PRIMARY KEY, applied_at {real})"
        )
        row = self._conn.execute(
            "SELECT applied_at FROM data_migrations WHERE name = ?", (_REDACT_MIGRATION,)
        ).fetchone()
        if row is None:
            return None
        return "compact" if row[0] is None else "done"

    def _rewrite_rows(self) -> bool:
        """Redact every stored row; True when some changed (the file then needs compacting)."""
        conn = self._conn
        updates = self._redactions()
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if self._migration_state() is not None:  # another process did it meanwhile
                conn.execute("ROLLBACK")
                return self._migration_state() == "compact"
            conn.executemany("UPDATE config_audit SET diff = ?, content = ? WHERE id = ?", updates)
            conn.execute(
                "INSERT INTO data_migrations (name, applied_at) VALUES (?, ?)",
                (_REDACT_MIGRATION, None if updates else time.time()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if updates:
            log.info(
                "config history: secrets removed from stored versions",
                extra={"ctx": {"versions": len(updates)}},
            )
        return bool(updates)

    def _redactions(self) -> list[tuple[str, str, int]]:
        """``(diff, content, id)`` of every stored row whose redaction differs from it."""
        updates = []
        rows = self._conn.execute("SELECT id, diff, content FROM config_audit").fetchall()
        for row_id, diff, content in rows:
            new_diff, new_content = redact_text(diff), redact_config(content)
            if (new_diff, new_content) != (diff, content):
                updates.append((new_diff, new_content, row_id))
        return updates

    def _compact(self) -> None:
        """Rebuild the file and empty the write-ahead log, then record the rewrite as done."""
        conn = self._conn
        conn.execute("VACUUM")
        busy, _log, _done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            # A reader still uses the log: leave "done" unrecorded, the next open tries again
            # (meanwhile the store's checkpoints fold the log in and its clean stop empties it).
            log.warning("config history: the write-ahead log could not be emptied yet")
            return
        conn.execute(
            "UPDATE data_migrations SET applied_at = ? WHERE name = ?",
            (time.time(), _REDACT_MIGRATION),
        )

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
        """Append one row, its secrets redacted; return its id."""
        returning = "" if self._sqlite else " RETURNING id"
        cursor = self._conn.execute(
            "INSERT INTO config_audit (at, source, path, diff, content) VALUES (?, ?, ?, ?, ?)"
            + returning,
            (
                time.time() if now is None else now,
                source,
                None if path is None else str(path),
                # Masked already; swept anyway, as a problem message may quote the text.
                redact_text(orjson.dumps(diff, default=str).decode()),
                redact_config(content),
            ),
        )
        if not self._sqlite:
            return int(cursor.fetchone()[0])
        return int(getattr(cursor, "lastrowid", 0) or 0)

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
