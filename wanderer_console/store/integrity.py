"""Database integrity and open failures, told to the operator as one paragraph with the fix.

A damaged database must stop the console at start: with a few corrupted pages it would otherwise
start, report ready, and fail later in whichever task first reads a bad page (the hourly
retention task crash-looped on ``database disk image is malformed``). :func:`verify_at_open` runs
SQLite's ``quick_check`` when a database is opened; :func:`check` and :func:`check_file` are the
same check for a running console to repeat. :func:`open_error` turns whatever SQLite or the file
system raised at open into a :class:`StorageError` naming the path and what to do.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from wanderer_console.store.base import DatabaseUrl

__all__ = [
    "OPEN_CHECK_BUDGET_SECONDS",
    "SchemaTooNewError",
    "StorageError",
    "check",
    "check_file",
    "ensure_data_dir",
    "open_error",
    "verify_at_open",
]

log = logging.getLogger(__name__)

OPEN_CHECK_BUDGET_SECONDS = 10.0
"""Longest ``quick_check`` at open. It reads the whole file (about 0.2 s per 300 MB from the page
cache), so only a huge database on a slow disk can exceed this; then the console starts anyway,
logs that the check was skipped, and the periodic check covers it."""

_PROGRESS_STEPS = 10_000
"""SQLite VM instructions between two looks at the clock while a check runs."""
_DAMAGE = ("malformed", "not a database", "corrupt", "disk i/o error", "database disk image")
"""Fragments of SQLite errors that mean the file itself is damaged (not busy, not read-only)."""
_READ_ONLY = ("readonly", "read-only", "unable to open database file", "permission denied")


class StorageError(Exception):
    """The database (or its directory) cannot be used; ``str()`` is one paragraph naming the path
    and what to do."""

    def __init__(
        self, path: Path | DatabaseUrl, problem: str, advice: str, *, subject: str = "database"
    ) -> None:
        self.path = path
        self.problem = problem
        self.advice = advice
        super().__init__(f"cannot use the {subject} {path}: {problem}. {advice}")


class SchemaTooNewError(StorageError, RuntimeError):
    """The database was written by a newer build (still a ``RuntimeError``, as it was before)."""


class _CheckTimeout(Exception):
    """The check ran past its budget and was interrupted."""


def _flatten(text: str) -> str:
    return " ".join(text.split())


def _quick_check(conn: sqlite3.Connection, max_errors: int, budget: float | None) -> str | None:
    deadline = None if budget is None else time.monotonic() + budget

    def over_budget() -> int:
        return int(deadline is not None and time.monotonic() > deadline)

    if deadline is not None:
        conn.set_progress_handler(over_budget, _PROGRESS_STEPS)
    try:
        rows = conn.execute(f"PRAGMA quick_check({int(max_errors)})").fetchall()
    except sqlite3.OperationalError as exc:
        if deadline is not None and "interrupt" in str(exc).lower():
            raise _CheckTimeout from None
        raise
    finally:
        if deadline is not None:
            conn.set_progress_handler(None, 0)
    found = [_flatten(str(row[0])) for row in rows if str(row[0]) != "ok"]
    return "; ".join(found) or None


def check(conn: sqlite3.Connection, *, max_errors: int = 1) -> str | None:
    """None when ``PRAGMA quick_check`` finds the database sound, else what it found (one line).

    ``quick_check`` verifies every page, the b-trees, the free list and each record's format; it
    does not compare indexes with their tables (``integrity_check`` does, several times slower).
    It reads the whole file, so it runs for as long as a full read takes and blocks its caller:
    from the event loop, prefer ``await asyncio.to_thread(check_file, path)``. An error that says
    the file is damaged is returned as the problem; other errors (busy, locked) are raised.
    """
    try:
        return _quick_check(conn, max_errors, None)
    except sqlite3.DatabaseError as exc:
        if _is_damage(exc):
            return _flatten(str(exc))
        raise


def check_file(path: Path, *, max_errors: int = 1) -> str | None:
    """:func:`check` through a read-only connection of its own (safe to run in a thread).

    The connection is closed before returning; it never writes and never blocks the writer (WAL).
    A missing file is reported as a problem, never created.
    """
    if not path.exists():
        return "the database file is missing"
    uri = f"file:{quote(str(path))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        return _flatten(str(exc))
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        return check(conn, max_errors=max_errors)
    finally:
        conn.close()


def verify_at_open(
    conn: sqlite3.Connection, path: Path, *, budget_seconds: float = OPEN_CHECK_BUDGET_SECONDS
) -> None:
    """Raise :class:`StorageError` when ``quick_check`` finds ``path`` damaged.

    Run before the schema migration, which would otherwise be the first to trip on damage. A
    check that runs past ``budget_seconds`` is abandoned with a warning: refusing to start
    because a database is large would be worse than starting unchecked. The store, the config
    audit and the tenant registry each open the file at start: a file found sound is not read
    again while it is unchanged (same inode, size and modification time).
    """
    identity = _identity(path)
    if identity is not None and identity in _SOUND:
        return
    try:
        problem = _quick_check(conn, 1, budget_seconds)
    except _CheckTimeout:
        log.warning(
            "database integrity check skipped at open: it took too long",
            extra={"ctx": {"path": str(path), "budget_seconds": budget_seconds}},
        )
        return
    except sqlite3.Error as exc:
        raise open_error(path, exc) from None
    if problem is not None:
        raise _corrupted(path, problem)
    if identity is not None:
        _SOUND.add(identity)


_SOUND: set[tuple[str, int, int, int]] = set()
"""Files :func:`verify_at_open` found sound in this process, as :func:`_identity` names them."""


def _identity(path: Path) -> tuple[str, int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)


def _is_damage(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(fragment in text for fragment in _DAMAGE)


def _corrupted(path: Path, problem: str) -> StorageError:
    return StorageError(
        path,
        f"the database is damaged (SQLite quick_check: {problem})",
        "The console refuses to start on it. Stop anything using it, then either restore the"
        " latest backup in its place (moving the damaged file and its -wal and -shm files aside"
        f" first), or recover what is readable: sqlite3 {path} .recover | sqlite3"
        f" {path}.recovered, then move {path} and its -wal and -shm files aside and"
        f" {path}.recovered to {path}. See the troubleshooting guide, section Database.",
    )


def ensure_data_dir(directory: Path) -> None:
    """Create ``directory`` if needed; raise :class:`StorageError` unless the console can write it.

    SQLite creates -wal, -shm and journal files beside the database, and the engine its lock
    file: without a writable directory each fails on its own, later, with a less helpful message.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _directory_error(directory, exc) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise _directory_error(directory)


def _directory_error(directory: Path, exc: OSError | None = None) -> StorageError:
    cause = f" ({exc.strerror or exc})" if exc is not None else ""
    if directory.exists() and not directory.is_dir():
        problem = "it is a file, not a directory"
    elif not directory.exists():
        problem = f"it cannot be created{cause}"
    else:
        problem = f"it is not writable by this user{cause}"
    return StorageError(
        directory,
        problem,
        "The console keeps its database (with the database's -wal and -shm files) there, so it"
        " must be a directory the console's user can write: fix its owner and mode (chown"
        f" USER {directory} && chmod 700 {directory}), remount its file system read-write, or"
        " choose another one with --data-dir or [console] data_dir.",
        subject="data directory",
    )


def open_error(path: Path, exc: BaseException) -> StorageError:
    """A :class:`StorageError` for what SQLite or the file system raised while opening ``path``."""
    text = _flatten(str(exc)) or type(exc).__name__
    lowered = text.lower()
    if path.is_dir():
        return StorageError(
            path,
            "this is a directory, not a database file",
            "Move it away or point --data-dir / [console] data_dir at the directory that holds"
            " wanderer-console.db.",
        )
    if "not a database" in lowered:
        return StorageError(
            path,
            f"the file is not a SQLite database ({text}); it was overwritten, truncated or"
            " is another file",
            "The console refuses to start on it. Move it aside (with any -wal and -shm files"
            " next to it) and restore the latest backup in its place, or start empty: without"
            " the file the console creates a new database (stored events, queued notifications,"
            " tenants and the config history are then lost).",
        )
    if _is_damage(exc):
        return _corrupted(path, text)
    if any(fragment in lowered for fragment in _READ_ONLY):
        if not os.access(path.parent, os.W_OK | os.X_OK) or not path.parent.is_dir():
            return _directory_error(path.parent)
        return StorageError(
            path,
            f"the database cannot be opened for writing ({text})",
            "Make the file and any -wal and -shm files next to it owned and writable by the"
            f" console's user (chown USER {path}* && chmod 600 {path}), or remount its file"
            " system read-write.",
        )
    if "full" in lowered:
        return StorageError(
            path,
            f"the disk is full ({text})",
            "Free space on the data directory's file system and start again.",
        )
    if "locked" in lowered or "busy" in lowered:
        return StorageError(
            path,
            f"another process holds the database ({text})",
            "Stop the other process using this data directory (only one engine per data"
            " directory), then start again.",
        )
    return StorageError(
        path,
        f"it cannot be opened ({text})",
        "Check the data directory's file system, owner and free space, or restore the latest"
        " backup.",
    )
