"""The engine's write side: what it tells delivery and the callers after a commit, and in which
order."""

from __future__ import annotations

import asyncio
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
            on_queued=lambda targets: woken.append((set(targets), [f.done() for f in done])),
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
