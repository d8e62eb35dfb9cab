"""Every write of the store goes through one guard that knows whether the store can write.

A store that cannot record an outcome (disk full, I/O error, read-only file, a database locked
by someone else) must stop the parts that depend on it, never let them loop: the dispatcher
pauses delivery while :attr:`WriteGuard.fault` is set, ``/ready`` reports it, and the console
shows it. The first successful write that changed a row clears it: on SQLite a commit that
changed nothing (a prune with nothing old, an event stored already) writes nothing to the disk,
so it says nothing of whether the store writes again. A failed transaction is rolled back only
when one is still open (SQLite rolls back by itself on some errors), so the real error is the
one reported, never ``cannot rollback - no transaction is active``.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wanderer_console.store.base import DatabaseUrl, DbConnection

__all__ = ["StoreWriteError", "WriteFault", "WriteGuard", "unavailable"]

log = logging.getLogger(__name__)


class StoreWriteError(Exception):
    """The store could not write; the message names the file (or the database, its password
    masked), the operation and what to do."""

    def __init__(self, path: Path | DatabaseUrl, operation: str, cause: BaseException) -> None:
        self.path = path
        self.operation = operation
        self.cause = str(cause) or type(cause).__name__
        super().__init__(f"cannot write {path} ({operation}): {self.cause}. {advice(self.cause)}")


def advice(cause: str) -> str:
    """What an operator does about a write error, by SQLite's (or PostgreSQL's) message."""
    text = cause.lower()
    if any(fragment in text for fragment in _UNREACHABLE):
        return (
            "The PostgreSQL server cannot be reached; start it or fix [store] url; delivery"
            " resumes by itself once a write succeeds."
        )
    if "no space left" in text:
        return "Free space on the database server's disk; delivery resumes by itself."
    if "read-only transaction" in text or "recovery is in progress" in text:
        return "The PostgreSQL server is a read-only standby; point [store] url at the primary."
    if "full" in text:
        return "Free space on the data directory's file system; delivery resumes by itself."
    if "readonly" in text or "read-only" in text or "permission" in text:
        return "Make the data directory and its files writable by the console's user."
    if "locked" in text or "busy" in text:
        return "Another process holds the database; stop it (only one engine per data directory)."
    if "malformed" in text or "corrupt" in text:
        return "The database is damaged: stop, restore the backup or run `sqlite3 DB .recover`."
    return "Check the data directory's file system; delivery resumes once a write succeeds."


_UNREACHABLE = (
    "connection refused",
    "connection failed",
    "server closed the connection",
    "terminating connection",
    "couldn't get a connection",
    "the connection is closed",
    "connection is lost",
    "consuming input failed",
)
"""Fragments of psycopg errors that mean the PostgreSQL server is not there (not a bad row)."""


def unavailable(exc: BaseException) -> bool:
    """True when ``exc`` is the database failing to answer (SQLite's or psycopg's
    ``OperationalError``: locked, an I/O error, the server restarted or gone), not a statement or
    a value it refused: the caller waits and asks again, and never drops what it was doing.
    psycopg is looked up only if something imported it (a PostgreSQL store)."""
    if isinstance(exc, sqlite3.OperationalError):
        return True
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(exc, psycopg.OperationalError)


@dataclass(frozen=True, slots=True)
class WriteFault:
    """Why the store cannot write, since when, and how many writes failed meanwhile."""

    reason: str
    since: float
    failures: int
    last: float
    """When the latest of those writes failed (``time.time()``)."""

    def as_json(self) -> dict[str, object]:
        """JSON-safe view (snapshot, ``/ready``)."""
        return {"reason": self.reason, "since": self.since, "failures": self.failures}


class WriteGuard:
    """Runs the store's writes in transactions and tracks whether the last one failed.

    This one drives a ``sqlite3`` connection; the PostgreSQL store's guard
    (:class:`~wanderer_console.store.postgres.PgWriteGuard`) overrides how a transaction and a
    statement run, and shares the fault tracking.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path | DatabaseUrl,
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._conn = conn
        self._track(path, on_error)

    def _track(self, path: Path | DatabaseUrl, on_error: Callable[[str], None] | None) -> None:
        self._path = path
        self._on_error = on_error
        self.fault: WriteFault | None = None
        """Set while writes fail; ``None`` once one succeeds."""
        self.errors = 0
        """Failed writes since the store opened."""

    @contextlib.contextmanager
    def transaction(self, operation: str) -> Iterator[DbConnection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; any SQLite error becomes :class:`StoreWriteError`."""
        conn = self._conn
        changes = conn.total_changes
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._failed(operation, exc) from exc
        except BaseException:
            self._rollback()
            raise
        self._succeeded(changed=conn.total_changes != changes)

    def statement(self, operation: str, sql: str, params: object = ()) -> int:
        """One autocommitted statement, guarded like a transaction."""
        changes = self._conn.total_changes
        try:
            cursor = self._conn.execute(sql, params)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            self._rollback()
            raise self._failed(operation, exc) from exc
        self._succeeded(changed=self._conn.total_changes != changes)
        return int(cursor.rowcount)

    def _rollback(self) -> None:
        if not self._conn.in_transaction:
            return  # SQLite already rolled back; a ROLLBACK now would hide the real error
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.error("rollback failed", extra={"ctx": {"error": str(exc)}})

    def _failed(self, operation: str, exc: BaseException) -> StoreWriteError:
        error = StoreWriteError(self._path, operation, exc)
        self.errors += 1
        if self._on_error is not None:
            self._on_error(operation)
        if self.fault is None:
            now = time.time()
            self.fault = WriteFault(error.cause, now, 1, now)
            log.error(
                "store cannot write; delivery paused until a write succeeds",
                extra={
                    "ctx": {
                        "path": str(self._path),
                        "operation": operation,
                        "error": error.cause,
                        "advice": advice(error.cause),
                    }
                },
            )
        else:
            self.fault = WriteFault(
                error.cause, self.fault.since, self.fault.failures + 1, time.time()
            )
        return error

    def _succeeded(self, *, changed: bool = True) -> None:
        """A write committed; it ends the fault only if it ``changed`` something (see the
        module's docstring)."""
        if self.fault is not None and changed:
            log.warning(
                "store writes again; delivery resumes",
                extra={
                    "ctx": {
                        "path": str(self._path),
                        "failed_writes": self.fault.failures,
                        "down_seconds": round(time.time() - self.fault.since, 1),
                    }
                },
            )
            self.fault = None
