"""What a store holds, read without changing it (``wanderer-console db status``).

The backend, the schema version (and this build's), the rows of every table, the outbox by
status, who holds the data directory, and the instances sharing the database when the schema has
their tables. Nothing is created or migrated: the SQLite file is opened read-only, PostgreSQL
through one plain connection, so it runs beside a running engine and on a database a newer build
wrote.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from wanderer_console.store.base import DatabaseUrl, StoreLocation
from wanderer_console.store.integrity import StorageError, open_error
from wanderer_console.store.lock import lock_holder
from wanderer_console.store.migrations import SCHEMA_VERSION

if TYPE_CHECKING:
    import psycopg

__all__ = ["INSTANCE_TABLE_WORDS", "store_status"]

INSTANCE_TABLE_WORDS: Final = ("lease", "instance")
"""A table whose name holds one of these words describes the instances sharing the database
(their leases): ``db status`` lists its rows."""
_INSTANCE_ROWS: Final = 100
"""At most this many rows of each such table."""


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


class _Reader:
    """The few reads ``db status`` makes, on either backend."""

    backend: str
    clock: str
    """The database's wall clock now, in Unix seconds (lease expiry is judged by it)."""

    def tables(self) -> list[str]:
        raise NotImplementedError

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def extra(self) -> dict[str, Any]:
        return {}


class _SqliteReader(_Reader):
    backend = "sqlite"
    clock = "((julianday('now') - 2440587.5) * 86400.0)"

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise StorageError(
                path,
                "there is no database file",
                "Pass the engine's --data-dir (or --config, or --database for PostgreSQL); the"
                " engine creates it at its first start.",
            )
        try:
            self._conn = sqlite3.connect(
                f"file:{quote(str(path))}?mode=ro", uri=True, isolation_level=None
            )
            self._conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as exc:
            raise StorageError(path, f"it cannot be read ({exc})", "Check the path.") from exc

    def tables(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name"
        ).fetchall()
        return [str(row[0]) for row in rows]

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._conn.execute(sql)
        names = [str(d[0]) for d in cur.description or ()]
        return names, [tuple(row) for row in cur.fetchall()]

    def close(self) -> None:
        self._conn.close()


class _PgReader(_Reader):
    backend = "postgresql"
    clock = "extract(epoch from clock_timestamp())::double precision"

    def __init__(self, url: DatabaseUrl) -> None:
        import psycopg

        from wanderer_console.store.postgres import CONNECT_TIMEOUT, open_error

        self._url = url
        try:
            self._conn: psycopg.Connection[Any] = psycopg.connect(
                url.secret(), autocommit=True, connect_timeout=CONNECT_TIMEOUT
            )
        except psycopg.Error as exc:
            raise open_error(url, exc) from None

    def tables(self) -> list[str]:
        rows = self._conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            " ORDER BY table_name"
        ).fetchall()
        return [str(row[0]) for row in rows]

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        cur = self._conn.execute(sql.encode())
        names = [str(d.name) for d in cur.description or ()]
        return names, [tuple(row) for row in cur.fetchall()]

    def extra(self) -> dict[str, Any]:
        row = self._conn.execute(
            "SELECT current_setting('server_version'), current_database(), current_schema()"
        ).fetchone()
        if row is None:
            return {}
        return {"server_version": row[0], "database_name": row[1], "schema": row[2]}

    def close(self) -> None:
        self._conn.close()


def _reader(location: StoreLocation) -> _Reader:
    if isinstance(location, DatabaseUrl):
        return _PgReader(location)
    return _SqliteReader(location)


def _count(reader: _Reader, table: str) -> int:
    _names, rows = reader.query(f'SELECT COUNT(*) FROM "{table}"')
    return int(rows[0][0])


def store_status(location: StoreLocation, *, data_dir: Path | None = None) -> dict[str, Any]:
    """The status document of the store at ``location`` (JSON-ready, its URL masked).

    ``data_dir``, when given, adds who holds its engine lock (``engine``).
    """
    import_error: type[BaseException] = sqlite3.Error
    if isinstance(location, DatabaseUrl):
        import psycopg

        import_error = psycopg.Error
    reader = _reader(location)
    try:
        try:
            return _status(reader, location, data_dir)
        except import_error as exc:
            if not isinstance(location, DatabaseUrl):
                raise _sqlite_error(location, exc) from None
            text = " ".join(location.scrub(str(exc)).split())
            raise StorageError(
                location, f"it cannot be read ({text})", "Check the server."
            ) from None
    finally:
        reader.close()


def _sqlite_error(path: Path, exc: BaseException) -> StorageError:
    """What to do about a SQLite file that cannot be read: the advice the engine gives at open
    (damaged, not a database …), except for a lock, which ``db status`` only waits out: it
    reads beside a running engine, so stopping the engine is not the answer."""
    text = " ".join(str(exc).split())
    if "locked" in text.lower() or "busy" in text.lower():
        return StorageError(
            path,
            f"another process holds it locked ({text})",
            "Run db status again in a moment; if it stays locked, find the process holding the"
            f" file (fuser {path}) and end its transaction.",
        )
    return open_error(path, exc)


def _status(reader: _Reader, location: StoreLocation, data_dir: Path | None) -> dict[str, Any]:
    tables = reader.tables()
    version: int | None = None
    if "schema_version" in tables:
        _names, rows = reader.query("SELECT version FROM schema_version")
        version = int(rows[0][0]) if rows else 0
    counts = {name: _count(reader, name) for name in tables if name != "schema_version"}
    outbox: dict[str, int] = {}
    if "outbox" in tables:
        _names, rows = reader.query(
            "SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status"
        )
        outbox = {str(status): int(count) for status, count in rows}
    doc: dict[str, Any] = {
        "backend": reader.backend,
        "database": str(location),
        **reader.extra(),
        "schema_version": version,
        "build_schema_version": SCHEMA_VERSION,
        "schema": _schema_state(version),
        "tables": counts,
        "outbox": outbox,
        "instances": _instances(reader, tables),
    }
    if data_dir is not None:
        holder = lock_holder(data_dir)
        doc["engine"] = {
            "data_dir": str(data_dir),
            "running": holder is not None,
            **(
                {}
                if holder is None
                else {
                    "pid": holder.pid,
                    "host": holder.host,
                    "since": holder.since,
                    "command": holder.command,
                    "holder": holder.describe(),
                }
            ),
        }
    return doc


def _schema_state(version: int | None) -> str:
    if not version:
        return "empty: the console creates its tables at its first start (or db migrate-to)"
    if version < SCHEMA_VERSION:
        return "older than this build: migrated at the next start"
    if version > SCHEMA_VERSION:
        return "newer than this build: upgrade wanderer-console"
    return "current"


def _instances(reader: _Reader, tables: list[str]) -> dict[str, Any]:
    """The instances sharing this database and their leases, judged by the database's clock.

    With the registry (``instances``) and the leases (``leases``) of schema version 8: each
    instance alive or not (its expiry ahead of the database's clock, not stopped), each lease
    held or free, and by whom. Any other table named for instances or leases is listed as rows.
    """
    found = [name for name in tables if any(word in name for word in INSTANCE_TABLE_WORDS)]
    if not found:
        return {
            "available": False,
            "why": "this schema has no instance leases: one engine per data directory (its"
            " engine.lock; see engine with --data-dir)",
        }
    _names, rows = reader.query(f"SELECT {reader.clock}")
    now = float(rows[0][0])
    out: dict[str, Any] = {"available": True, "now": round(now, 3)}
    for name in found:
        out[name] = _table_rows(reader, name)
    registry = out.get("instances")
    if isinstance(registry, list):
        for row in registry:
            expires, stopped = row.get("expires_at"), row.get("stopped_at")
            row["alive"] = stopped is None and isinstance(expires, int | float) and expires > now
        out["alive"] = sorted(str(row.get("instance_id")) for row in registry if row["alive"])
    leases = out.get("leases")
    if isinstance(leases, list):
        for row in leases:
            expires = row.get("expires_at")
            live = isinstance(expires, int | float) and expires > now
            row["held"] = row.get("owner") is not None and live
            row["expires_in_s"] = (
                round(expires - now, 3) if isinstance(expires, int | float) else None
            )
        out["held"] = {
            str(row.get("resource")): str(row.get("owner")) for row in leases if row["held"]
        }
    return out


def _table_rows(reader: _Reader, name: str) -> list[dict[str, Any]]:
    names, rows = reader.query(f'SELECT * FROM "{name}" LIMIT {_INSTANCE_ROWS}')
    return [
        {column: _plain(value) for column, value in zip(names, row, strict=True)} for row in rows
    ]
