"""The engine's write side: what it tells delivery and the callers after a commit, and in which
order."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from wanderer_console.domain.notification import (
    Notification,
    NotificationType,
    Target,
    TargetKind,
)
from wanderer_console.pipeline.writer import EventWriter
from wanderer_console.store import SqliteStore
from wanderer_console.store.base import StoredEvent
from wanderer_console.telemetry.metrics import Metrics

HOOK = Target(TargetKind.WEBHOOK, "http://127.0.0.1:9/api/webhooks/77/token", "home")


def _event(event_id: str) -> StoredEvent:
    return StoredEvent("home", event_id, "api", "custom", 1_700_000_000.0, "{}")


async def test_delivery_is_woken_before_the_callers_hear_their_events_were_stored(
    tmp_path: Path,
) -> None:
    """The dispatcher may start a send inside its wake, so the writer wakes it before settling
    the ingest callers' futures: the send is then ahead of the API's answer in the loop. A
    repeated id is a duplicate for its caller, and only the new event's target is woken."""
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        woken: list[tuple[set[str], list[bool]]] = []
        loop = asyncio.get_running_loop()
        done = [loop.create_future() for _ in range(2)]
        writer = EventWriter(
            store,
            Metrics(),
            on_queued=lambda targets, _rows: woken.append((set(targets), [f.done() for f in done])),
        )
        note = Notification("home", NotificationType.KILL, "custom:a", HOOK, {"content": "a"})
        with writer.batch():
            writer.record(_event("a"), [note], done=done[0])
            writer.record(_event("a"), [note], done=done[1], checked=True)
        assert woken == [({HOOK.key}, [False, False])]
        assert [f.result() for f in done] == [True, False]
        assert store.outbox_counts() == {"pending": 1}
    finally:
        store.close()


def test_a_duplicates_cursor_never_passes_an_event_not_yet_written(tmp_path: Path) -> None:
    """The map's webhook brought event X, decided and waiting in the batch; the SSE stream then
    brings X again, a duplicate whose id moves the stream's resume cursor. Written at once, that
    cursor was committed before X itself (and before every stream event earlier in the batch):
    a crash then resumed the stream past events never stored. It is written with the batch."""
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        writer = EventWriter(store, Metrics())
        stream = ("sse:home", "01JD0000000000000000000002")
        earlier = StoredEvent("home", "01JD0000000000000000000001", "sse:home", "x", 1.0, "{}")
        hooked = StoredEvent("home", stream[1], "webhook:home", "x", 1.0, "{}")
        again = hooked._replace(source="sse:home")
        with contextlib.suppress(RuntimeError), writer.batch():
            writer.record(earlier, [], ("sse:home", earlier.event_id))
            writer.record(hooked, [])
            assert writer.record(again, [], stream) is False  # a duplicate
            # The process dies here, before the batch is written.
            assert store.get_cursor("sse:home") is None
            writer._pending.clear()  # what a crash loses: the memory of the batch
            writer._cursors.clear()
            raise RuntimeError("crash")
        assert store.get_cursor("sse:home") is None
        writer = EventWriter(store, Metrics())  # the engine restarted
        with writer.batch():  # the stream resumes from the stored cursor: both come again
            writer.record(earlier, [], ("sse:home", earlier.event_id))
            writer.record(again, [], stream)
        assert store.get_cursor("sse:home") == stream[1]
        assert store.has_event("home", earlier.event_id)
        assert store.has_event("home", stream[1])
        with writer.batch():  # a duplicate with nothing pending moves the cursor at once
            assert writer.record(again, [], ("sse:home", "01JD0000000000000000000003")) is False
            assert store.get_cursor("sse:home") == "01JD0000000000000000000003"
    finally:
        store.close()
