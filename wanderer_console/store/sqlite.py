"""SQLite implementation of the store (WAL, one connection, used from the event loop), the default.

Every call is a short indexed statement, so it runs inline on the loop: an executor hop would
cost more than the query. An event and the notifications it caused are written in one
transaction, so a crash between "decided" and "delivered" loses nothing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from wanderer_console.store.checkpoint import WalCheckpointer
from wanderer_console.store.dialect import SQLITE
from wanderer_console.store.integrity import (
    SchemaTooNewError,
    StorageError,
    check_file,
    ensure_data_dir,
    open_error,
    verify_at_open,
)
from wanderer_console.store.migrations import SCHEMA_VERSION, migrate
from wanderer_console.store.sql import SqlStore
from wanderer_console.store.writes import StoreWriteError, WriteGuard

__all__ = ["DB_NAME", "SqliteStore", "StoreWriteError", "open_database"]

DB_NAME = "wanderer-console.db"
"""The SQLite database's file name inside the data directory."""


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the console's database with its schema migrated.

    Every part that keeps its own connection (the store, the config audit, the tenant registry)
    opens the file here, so whichever creates it makes it private to the operator: the outbox,
    the audit's config versions and the tenants all hold sensitive data.

    Whatever stops it (a data directory it cannot create or write, a file that is not a
    database, a database ``quick_check`` finds damaged, a schema from a newer build) raises
    :class:`~wanderer_console.store.integrity.StorageError`: one paragraph naming the path and
    what to do, which the command line prints instead of a traceback.
    """
    ensure_data_dir(path.parent)
    fresh = not path.exists()
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise open_error(path, exc) from exc
    try:
        if fresh:
            os.chmod(path, 0o600)
        conn.execute("PRAGMA busy_timeout=5000")
        if not fresh:
            verify_at_open(conn, path)  # before the migration, which would trip on damage
        migrate(conn)
    except StorageError:
        conn.close()
        raise
    except (sqlite3.Error, OSError) as exc:
        conn.close()
        raise open_error(path, exc) from exc
    except RuntimeError as exc:
        conn.close()
        if "newer than this build" not in str(exc):
            raise
        raise SchemaTooNewError(
            path,
            str(exc),
            "Run the version that last used this data directory, or restore the backup taken"
            " before it (see the deployment guide, Upgrades).",
        ) from exc
    return conn


class SqliteStore(SqlStore):
    """The default store: one SQLite file in the data directory."""

    _sql = SQLITE

    def __init__(
        self,
        path: Path,
        *,
        checkpoint_interval: float = 1.0,
        on_write_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = path
        conn = open_database(path)
        self._conn = conn
        self._writes = WriteGuard(conn, path, on_error=on_write_error)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run on their own thread, never inside a commit on the event loop.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self.checkpointer = WalCheckpointer(path, interval=checkpoint_interval)
        self.checkpointer.start()
        self.schema_version = SCHEMA_VERSION  # open_database migrated it
        self._init_counters()

    def close(self) -> None:
        """Stop the checkpoints, fold the WAL into the database file and close (idempotent)."""
        self.checkpointer.stop()
        with contextlib.suppress(sqlite3.Error):
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.close()

    def ping(self) -> bool:
        """True when the database answers a trivial query."""
        try:
            self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def outside_commits(self) -> int | None:
        """SQLite's ``PRAGMA data_version`` on the store's connection (``None`` on an error)."""
        try:
            row = self._conn.execute("PRAGMA data_version").fetchone()
        except sqlite3.Error:
            return None
        return int(row[0])

    def check_integrity(self) -> str | None:
        """``PRAGMA quick_check`` through a read-only connection of its own (run it in a thread)."""
        return check_file(self.path)
