"""The pipeline on a disk that fills up (a real, small tmpfs; mounting needs root, as CI runs,
elsewhere skipped with the reason): what the stream brings again is not mistaken for a bug."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.ingest_faults.conftest import map_settings
from tests.support import fill_disk, small_disk
from wanderer_console.domain.map_events import MapEnvelope
from wanderer_console.domain.tracking import TrackingIndex
from wanderer_console.ingest.items import MapEventItem
from wanderer_console.pipeline.engine import Engine
from wanderer_console.store import SqliteStore, StoredEvent
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.telemetry.metrics import Metrics

pytestmark = [pytest.mark.timeout(60)]

FIRST = "01JD0000000000000000000001"
LATER = "01JD0000000000000000000002"


def _item(event_id: str) -> MapEventItem:
    envelope = MapEnvelope.model_validate({"id": event_id, "type": "x_unknown", "payload": {}})
    return MapEventItem("cut", envelope, "{}", "sse:cut")


def _fill(store: SqliteStore) -> None:
    """Write until the disk is full, then until even a one-row write fails (a commit that
    failed leaves room at the end of the write-ahead log that the next small one may use)."""
    with pytest.raises(StoreWriteError):  # noqa: PT012 - fill until the disk is full
        for i in range(100_000):
            store.record_event(StoredEvent("other", f"e{i}", "api", "x", time.time(), "x" * 2000))
    for i in range(100):
        try:
            store.set_cursor("other", f"{i:04}")
        except StoreWriteError:
            return
    raise AssertionError("small writes never failed")


async def test_an_event_the_stream_brings_again_on_a_full_disk_is_a_duplicate_not_a_failure(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a reconnect the map stream sends again events already stored. On a full disk the
    resume cursor of such a duplicate cannot be written: the error escaped to the engine's
    catch-all, "pipeline failed on one event; continuing" at ERROR with a traceback and
    ``wc_errors_total{component="pipeline"}``, once per event replayed, as if it were a bug.
    The cursor is left as it is (the stream resumes a little earlier, the event log absorbs
    the repeat) and the event is counted as the duplicate it is."""
    with small_disk(tmp_path / "data", "4m") as data:
        metrics = Metrics()
        store = SqliteStore(data / "db.sqlite", checkpoint_interval=0.02)
        engine = Engine(map_settings("http://127.0.0.1:9"), store, TrackingIndex(), metrics)
        try:
            await engine.process_batch([_item(FIRST)])
            assert store.get_cursor("sse:cut") == FIRST
            filler = fill_disk(data, leave=512 * 1024)
            _fill(store)
            caplog.clear()
            with caplog.at_level(logging.WARNING):
                await engine.process_batch([_item(FIRST)])  # the stream brings it again
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
            assert metrics.value("wc_errors_total", component="pipeline") == 0
            assert metrics.value("wc_events_duplicate_total", source="sse:cut") == 1
            filler.unlink()
            await engine.process_batch([_item(LATER)])  # room again: the stream goes on
            assert store.has_event("cut", LATER)
            assert store.get_cursor("sse:cut") == LATER
        finally:
            store.close()
