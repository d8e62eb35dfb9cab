"""The SQLite store on a disk that fills up: what fails is said once, retried sparingly, and
resumes by itself once there is room again.

A real full disk is a small tmpfs with a filler file (mounting needs root, as CI runs; elsewhere
those tests are skipped with the reason). A database that only cannot grow is SQLite's own
``PRAGMA max_page_count`` on the store's connection: SQLITE_FULL, "database or disk is full".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import fill_disk, small_disk, wait_for
from wanderer_console.store import SqliteStore, StoredEvent
from wanderer_console.store.maintenance import Maintenance
from wanderer_console.store.writes import StoreWriteError

pytestmark = [pytest.mark.timeout(90)]

CHECKPOINT_LOG = "wanderer_console.store.checkpoint"


def _event(event_id: str, received_at: float | None = None) -> StoredEvent:
    at = time.time() if received_at is None else received_at
    return StoredEvent("home", event_id, "sse:home", "add_system", at, "x" * 2000)


def _fill_database(store: SqliteStore, prefix: str = "new") -> int:
    """Record events until the store refuses one (the disk or the database is full)."""
    for i in range(100_000):
        try:
            store.record_event(_event(f"{prefix}{i}"))
        except StoreWriteError:
            return i
    raise AssertionError("the store never filled up")


def _wait(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``predicate`` (another thread makes it true) for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.01)


def test_a_checkpoint_failing_on_a_full_disk_is_said_once_and_retried_less_often(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The checkpoint thread cannot grow the database file: it used to log a warning at every
    try (every second, for as long as the disk stayed full). Now one line says the checkpoint
    fails, why and what to do; it tries again less and less often (bounded), and one line says
    when it works again."""
    with small_disk(tmp_path / "data", "4m") as data:
        store = SqliteStore(data / "db.sqlite", checkpoint_interval=0.02)
        checkpointer = store.checkpointer
        checkpointer.max_wait = 0.2
        try:
            filler = fill_disk(data, leave=1024 * 1024)
            with caplog.at_level(logging.INFO, logger=CHECKPOINT_LOG):
                _fill_database(store)
                _wait(lambda: checkpointer.failures >= 6, what="six failed checkpoints")
                said = [r for r in caplog.records if r.name == CHECKPOINT_LOG]
                assert [r.levelno for r in said] == [logging.WARNING], [r.msg for r in said]
                ctx = said[0].ctx  # type: ignore[attr-defined]
                assert "full" in ctx["error"]
                assert "Free space" in ctx["advice"]
                before = checkpointer.checkpoints
                filler.unlink()
                _wait(lambda: checkpointer.checkpoints > before, what="a checkpoint again")
                _wait(lambda: len([r for r in caplog.records if r.name == CHECKPOINT_LOG]) == 2)
            back = [r for r in caplog.records if r.name == CHECKPOINT_LOG][1]
            assert back.getMessage() == "WAL checkpoint works again"
            assert back.ctx["failures"] >= 6  # type: ignore[attr-defined]
            assert checkpointer.failing == 0
        finally:
            store.close()


async def test_retention_on_a_full_disk_waits_and_tries_again_instead_of_crashing(
    tmp_path: Path,
) -> None:
    """Deleting old rows needs room in the write-ahead log too. The retention loop let the
    store's error escape: its task crashed and was restarted by the supervisor, a traceback each
    time. Now it waits (bounded) and tries again, and prunes once there is room."""
    with small_disk(tmp_path / "data", "4m") as data:
        store = SqliteStore(data / "db.sqlite", checkpoint_interval=0.02)
        try:
            for i in range(40):
                store.record_event(_event(f"old{i}", received_at=1.0))
            filler = fill_disk(data, leave=512 * 1024)
            kept = _fill_database(store)
            errors = store._writes.errors
            maintenance = Maintenance(store, lambda: 1.0)
            maintenance.retry_after = 0.05
            task = asyncio.create_task(maintenance.retention())
            try:
                await wait_for(
                    lambda: task.done() or store._writes.errors >= errors + 3, 30, "3 tries"
                )
                assert not task.done(), task.exception()
                assert store.event_count() == 40 + kept  # nothing pruned yet
                filler.unlink()
                await wait_for(lambda: store.event_count() == kept, 30, "old events pruned")
                assert store.write_fault is None
                assert not task.done()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        finally:
            store.close()


def test_a_write_that_changes_nothing_does_not_end_a_write_fault(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """While the database cannot grow, a commit that wrote nothing (an hourly prune with nothing
    old, an event already stored) proves nothing: it used to clear the fault ("store
    writes again; delivery resumes", and delivery resumed) until the next real write failed
    again, two more lines each time. The fault stays until a write changes something."""
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        store.record_event(_event("first"))
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages}")
        with caplog.at_level(logging.INFO, logger="wanderer_console.store.writes"):
            _fill_database(store)
            fault = store.write_fault
            assert fault is not None
            assert "full" in fault.reason
            assert store.prune(10.0) == (0, 0)  # nothing that old
            assert store.record_event(_event("first")) is False  # stored already
            assert store.write_fault is not None
            assert store.write_fault.since == fault.since
            store._conn.execute("PRAGMA max_page_count = 1000000")  # room again
            store.record_event(_event("after"))
        assert store.write_fault is None
        said = [r.getMessage() for r in caplog.records if r.name == "wanderer_console.store.writes"]
        assert said == [
            "store cannot write; delivery paused until a write succeeds",
            "store writes again; delivery resumes",
        ]
    finally:
        store.close()
