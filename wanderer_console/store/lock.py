"""One engine per data directory: an exclusive OS lock held for the engine's whole life.

Two engines on one outbox would both deliver it: duplicate posts, rows attempted twice,
rate limits shared without either knowing. The engine takes ``engine.lock`` in its data
directory with ``flock`` before it opens anything; the kernel releases it when the process ends,
however it ends, so a crash never leaves a stale lock behind. The file's content (PID, host,
start time, command with any password in it masked) is only there to tell a second engine who
holds it.

Read-only commands (``config history``, ``replay``, ``kill``, ``tenant list``, ``outbox list``)
never take the lock and work beside a running engine.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from wanderer_console.store.backends import open_store, store_location
from wanderer_console.store.base import Store
from wanderer_console.store.integrity import ensure_data_dir
from wanderer_console.telemetry.logging import redact
from wanderer_console.telemetry.metrics import Metrics

__all__ = [
    "DataDirInUseError",
    "DataDirLock",
    "LockHolder",
    "lock_holder",
    "open_owned",
    "recorded_store",
]

LOCK_FILE = "engine.lock"
STORE_FILE = "engine-store.json"
"""Which store the engine on this data directory last opened (its URL masked): a command told
only the data directory can then tell that the engine's store is a PostgreSQL database, not
an SQLite file it finds there (:func:`recorded_store`)."""


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a data directory (as the holder wrote it)."""

    pid: int | None
    host: str
    since: float | None
    command: str

    def describe(self) -> str:
        """``PID 123 on host x since 2026-12-03 06:00:00 UTC``."""
        parts = [f"PID {self.pid}" if self.pid else "an unknown process"]
        if self.host:
            parts.append(f"on host {self.host}")
        if self.since:
            stamp = datetime.fromtimestamp(self.since, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            parts.append(f"since {stamp}")
        return " ".join(parts)


class DataDirInUseError(RuntimeError):
    """Another engine owns the data directory."""

    def __init__(self, data_dir: Path, holder: LockHolder) -> None:
        self.data_dir = data_dir
        self.holder = holder
        super().__init__(
            f"the data directory {data_dir} is in use by another engine ({holder.describe()}). "
            "Only one engine may deliver from a data directory, or notifications would be posted "
            "twice. Stop that engine first (for example `systemctl stop wanderer-console`), "
            "or give this one its own --data-dir. To watch or steer the running engine, attach "
            f"the console to it: `wanderer-console attach --data-dir {data_dir}` (quitting it "
            "stops nothing); the commands that read its store (db status, outbox list, export "
            "metrics, config history, replay, kill, tenant list) work beside it."
        )


def _read_holder(handle: IO[str]) -> LockHolder:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    pid = data.get("pid")
    since = data.get("since")
    return LockHolder(
        pid=pid if isinstance(pid, int) else None,
        host=str(data.get("host", "")),
        since=float(since) if isinstance(since, int | float) else None,
        command=redact(str(data.get("command", ""))),  # as an older build wrote it
    )


class DataDirLock:
    """The exclusive lock of one data directory (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirInUseError` naming the holder."""
        if self._handle is not None:
            return
        ensure_data_dir(self.data_dir)  # a missing or read-only directory: one clear paragraph
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(fd, "r+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(handle)
            handle.close()
            raise DataDirInUseError(self.data_dir, holder) from None
        except BaseException:
            handle.close()
            raise
        handle.seek(0)
        handle.truncate()
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": time.time(),
            "command": redact(" ".join(sys.argv[:3])),  # --database URL carries a password
        }
        handle.write(json.dumps(record))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock up (idempotent). The file stays: removing it would race a new holder."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        try:
            handle.seek(0)
            handle.truncate()
            handle.flush()
        finally:
            handle.close()  # closing the descriptor releases the flock


def lock_holder(data_dir: Path) -> LockHolder | None:
    """Who holds ``data_dir`` right now, or ``None`` when no engine does."""
    path = data_dir / LOCK_FILE
    try:
        handle = path.open("r", encoding="utf-8")
    except FileNotFoundError:
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(handle)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def open_owned(
    data_dir: Path, metrics: Metrics, database: str | None = None
) -> tuple[DataDirLock, Store]:
    """Take ``data_dir``'s lock, then open its store (the lock is released if that fails).

    The store is the SQLite file in ``data_dir``, or the PostgreSQL database at ``database``
    (a ``postgresql://`` URL): the lock is the data directory's either way, as the engine keeps
    its control socket, config and lock file there.

    Failed writes are counted in ``wc_store_write_errors_total``; ``wc_store_writable`` reads
    the store's write fault when scraped.
    """
    lock = DataDirLock(data_dir)
    lock.acquire()
    try:
        store = open_store(
            store_location(data_dir, database),
            on_write_error=lambda op: metrics.store_write_errors.labels(operation=op).inc(),
        )
    except BaseException:
        lock.release()
        raise
    _record_store(data_dir, database)
    metrics.store_writable.set_function(lambda: float(store.write_fault is None))
    return lock, store


def _record_store(data_dir: Path, database: str | None) -> None:
    """Write :data:`STORE_FILE`: the backend and, on PostgreSQL, the URL with its password
    masked (never the password: the data directory is no place for it)."""
    location = store_location(data_dir, database)
    record = {"backend": "sqlite" if isinstance(location, Path) else "postgresql"}
    if not isinstance(location, Path):
        record["database"] = str(location)
    record["since"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    path = data_dir / STORE_FILE
    temporary = path.with_name(f".{STORE_FILE}.{os.getpid()}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(record))
        os.replace(temporary, path)
    except OSError:  # the lock is held and the store open: only the commands' hint is lost
        temporary.unlink(missing_ok=True)


def recorded_store(data_dir: Path) -> dict[str, str] | None:
    """What the engine on ``data_dir`` recorded of its store at its last start
    (``{"backend": "postgresql", "database": "postgresql://USER:***@HOST/DB", "since": ...}``),
    or ``None`` when no engine recorded one (or the record cannot be read)."""
    try:
        data = json.loads((data_dir / STORE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return {str(k): redact(str(v)) for k, v in data.items()}
