"""WAL checkpoints on a thread of their own, so the event loop never waits for one.

With SQLite's default, the commit that takes the write-ahead log past 1,000 pages also copies
the log into the database file and syncs it, inside that commit, on the event loop. Under a
burst that happened every thousand or so killmails and cost the ingest path a third of its
throughput (``bench/ingest.py``: about 8,500 → 12,500 killmails/s without it). The store turns
automatic checkpoints off on its connection and this thread runs a PASSIVE checkpoint through
its own connection every ``interval`` seconds: PASSIVE never blocks the writer, and the sqlite3
module releases the GIL while SQLite works.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

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
        """Checkpoints that raised (logged; the next one tries again)."""
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
            while not self._stop.wait(self.interval):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One PASSIVE checkpoint; a failure is logged and counted, never raised."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self.failures += 1
            log.warning(
                "WAL checkpoint failed; will retry",
                extra={"ctx": {"error": str(exc), "failures": self.failures}},
            )
        else:
            self.checkpoints += 1
