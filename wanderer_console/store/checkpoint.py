"""WAL checkpoints on a thread of their own, so the event loop never waits for one.

With SQLite's default, the commit that takes the write-ahead log past 1,000 pages also copies
the log into the database file and syncs it, inside that commit, on the event loop. Under a
burst that happened every thousand or so killmails and cost the ingest path a third of its
throughput (``bench/ingest.py``: about 8,500 → 12,500 killmails/s without it). The store turns
automatic checkpoints off on its connection and this thread runs a PASSIVE checkpoint through
its own connection every ``interval`` seconds: PASSIVE never blocks the writer, and the sqlite3
module releases the GIL while SQLite works.

A checkpoint that fails (a full disk cannot take the pages the database file must grow by, an
I/O error) is said once, with the error and what to do; the next tries come less and less often
(doubling up to :attr:`WalCheckpointer.max_wait`), and one line says when a checkpoint works
again. Nothing is lost meanwhile: the ``-wal`` file holds every commit.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

from wanderer_console.store.writes import advice

__all__ = ["WalCheckpointer"]

log = logging.getLogger(__name__)


class WalCheckpointer:
    """Copies the WAL into the database every ``interval`` seconds until stopped."""

    def __init__(self, path: Path, *, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.checkpoints = 0
        """Checkpoints run."""
        self.failures = 0
        """Checkpoints that raised (the first of a run logged; the next one tries again)."""
        self.failing = 0
        """Checkpoints failed in a row (0 once one succeeds)."""
        self.max_wait = 30.0
        """Longest wait between two tries while checkpoints fail (tests lower it)."""
        self._failing_since = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wc-wal-checkpoint", daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (idempotent); the caller runs the final checkpoint itself."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            while not self._stop.wait(self.next_wait()):
                self.checkpoint(conn)
        finally:
            conn.close()

    def next_wait(self) -> float:
        """Seconds until the next try: :attr:`interval`, doubled per failure in a row up to
        :attr:`max_wait` (never less than the interval)."""
        if not self.failing:
            return self.interval
        return max(self.interval, min(self.max_wait, self.interval * 2.0 ** min(self.failing, 30)))

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint; a failure is counted, never raised, and said once per run of
        failures (a full disk fails every try until space is freed)."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self.failures += 1
            self.failing += 1
            if self.failing == 1:
                self._failing_since = time.time()
                error = str(exc) or type(exc).__name__
                log.warning(
                    "WAL checkpoint failed; retrying with backoff until one succeeds",
                    extra={
                        "ctx": {
                            "path": str(self.path),
                            "error": error,
                            "advice": advice(error),
                            "max_wait_seconds": self.max_wait,
                        }
                    },
                )
        else:
            self.checkpoints += 1
            if self.failing:
                log.warning(
                    "WAL checkpoint works again",
                    extra={
                        "ctx": {
                            "path": str(self.path),
                            "failures": self.failing,
                            "down_seconds": round(time.time() - self._failing_since, 1),
                        }
                    },
                )
                self.failing = 0
