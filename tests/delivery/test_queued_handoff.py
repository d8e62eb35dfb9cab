"""The pipeline's commit hands its rows to the dispatcher, which sends them without a read.

The engine's writer commits an event's notifications, takes the rows the store names
(``Store.take_queued``: targets with nothing else pending) and wakes the dispatcher with them.
While the loop waits, their workers start right there, as after a read, but without reading
the outbox back. A target the rows do not cover (an older row pending) is read as before, so
its rows still go in the order they were queued; a dead target's row is held as the read holds
it. Each row is still claimed before its send: a row changed meanwhile is never sent.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.delivery.rig import Rig, count_reads, make_rig, until
from wanderer_console.domain.notification import Notification, NotificationType, Target
from wanderer_console.pipeline.writer import EventWriter
from wanderer_console.store.base import OutboxRow, StoredEvent

pytestmark = [pytest.mark.timeout(60)]


def _writer(rig: Rig, handed: list[list[OutboxRow] | None]) -> EventWriter:
    """The engine's writer on the rig's store, waking the rig's dispatcher as the runtime
    wires it (and noting what each wake was handed)."""

    def wake(targets: set[str], rows: list[OutboxRow] | None) -> None:
        handed.append(rows)
        rig.dispatcher.wake(targets, rows)

    return EventWriter(rig.store, rig.metrics, on_queued=wake)


def _kill(writer: EventWriter, kill_id: int, targets: list[Target]) -> None:
    event = StoredEvent("*", f"kill:{kill_id}", "killstream", "killmail", time.time(), "{}")
    notes = [
        Notification(
            "home", NotificationType.KILL, f"kill:{kill_id}:{i}", t, {"content": f"{kill_id}"}
        )
        for i, t in enumerate(targets)
    ]
    assert writer.record(event, notes)


async def _dead_target(rig: Rig, writer: EventWriter, webhook_id: int, *, kill_id: int) -> Target:
    """A webhook Discord no longer knows: one kill's attempt (its 404) holds it as dead, its row
    held pending; returned once every worker has ended."""
    dead = rig.hook(webhook_id)
    rig.discord.disable_webhook(webhook_id)
    _kill(writer, kill_id, [dead])
    await until(lambda: ("home", dead.key) in rig.dispatcher.dead_targets)
    await rig.dispatcher.quiesce("home", 10.0)
    return dead


async def test_a_commits_rows_are_sent_in_the_next_turn_without_a_read(tmp_path: Path) -> None:
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        handed: list[list[OutboxRow] | None] = []
        writer = _writer(rig, handed)
        reads = count_reads(rig)
        hooks = [rig.hook(4_000 + i) for i in range(40)]
        _kill(writer, 1, hooks)
        [rows] = handed
        assert rows is not None
        assert len(rows) == 40
        # The workers' first turn, then the turn their claims are written in (together).
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert rig.store.outbox_counts().get("sending", 0) > 0
        await until(lambda: rig.store.outbox_counts().get("sent") == 40, timeout=10.0)
        await rig.dispatcher.quiesce("home", 10.0)
        for _turn in range(5):
            await asyncio.sleep(0)
        assert reads == []  # neither the wake nor a worker's end read the outbox
        assert sorted(m.target for m in rig.discord.received) == sorted(
            f"webhook:{4_000 + i}" for i in range(40)
        )


async def test_a_target_with_an_older_row_pending_is_read_and_keeps_its_order(
    tmp_path: Path,
) -> None:
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        handed: list[list[OutboxRow] | None] = []
        writer = _writer(rig, handed)
        behind, other = rig.hook(71), rig.hook(72)
        # An older row for ``behind`` waiting out a backoff: due in a moment.
        note = Notification("home", NotificationType.KILL, "older", behind, {"content": "older"})
        rig.store.enqueue([note], now=time.time() + 0.3)
        rig.dispatcher.wake()
        await until(lambda: rig.dispatcher.waiting)
        reads = count_reads(rig)
        _kill(writer, 2, [behind, other])
        [rows] = handed
        assert rows is not None
        assert [row.target_key for row in rows] == [other.key]
        assert len(reads) == 1  # not covered: the wake read the outbox instead
        await until(lambda: rig.store.outbox_counts().get("sent") == 3, timeout=10.0)
        assert [m.body["content"] for m in rig.discord.messages_for("webhook:71")] == [
            "older",
            "2",
        ]
        assert len(rig.discord.messages_for("webhook:72")) == 1


async def test_a_handed_row_of_a_dead_target_is_held_as_a_read_holds_it(tmp_path: Path) -> None:
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        handed: list[list[OutboxRow] | None] = []
        writer = _writer(rig, handed)
        dead, live = await _dead_target(rig, writer, 81, kill_id=3), rig.hook(82)
        await until(lambda: rig.dispatcher.waiting)
        requests = rig.discord.requests
        reads = count_reads(rig)
        _kill(writer, 4, [dead, live])
        assert handed[-1] is not None
        assert len(handed[-1]) == 1
        await until(lambda: len(rig.discord.messages_for("webhook:82")) == 1, timeout=10.0)
        await rig.dispatcher.quiesce("home", 10.0)
        assert rig.discord.requests == requests + 1  # nothing tried on the dead target
        assert rig.store.outbox_counts() == {"pending": 2, "sent": 1}  # held, not lost
        assert len(reads) == 1  # its row not handed over: the wake read (and held it)


async def test_a_handed_row_of_a_target_dead_alone_is_held_without_a_read(tmp_path: Path) -> None:
    async with make_rig(tmp_path, poll_interval=30.0) as rig:
        await until(lambda: rig.dispatcher.waiting)
        handed: list[list[OutboxRow] | None] = []
        writer = _writer(rig, handed)
        dead, live = await _dead_target(rig, writer, 91, kill_id=5), rig.hook(92)
        # The operator drops the held row: the target stays dead with nothing pending.
        [held] = rig.store.due_outbox(time.time() + 1)
        assert rig.store.claim([held.id], send_id="drop") == 1
        rig.store.mark_sent([held.id])
        await until(lambda: rig.dispatcher.waiting)
        requests = rig.discord.requests
        reads = count_reads(rig)
        _kill(writer, 6, [dead, live])
        assert handed[-1] is not None
        assert len(handed[-1]) == 2
        await until(lambda: len(rig.discord.messages_for("webhook:92")) == 1, timeout=10.0)
        await rig.dispatcher.quiesce("home", 10.0)
        assert rig.discord.requests == requests + 1  # nothing tried on the dead target
        assert rig.store.outbox_counts().get("pending") == 1  # held, not lost
        assert reads == []


async def test_a_store_fault_in_the_handoff_never_reaches_the_writer(tmp_path: Path) -> None:
    """The handoff runs in the pipeline's commit: a store that fails it (here the pending count
    it takes first, refusing once) must not fail the write the caller made; the loop sends the
    row at its own look instead."""
    async with make_rig(tmp_path, poll_interval=0.05) as rig:
        await until(lambda: rig.dispatcher.waiting)
        handed: list[list[OutboxRow] | None] = []
        writer = _writer(rig, handed)
        depth = rig.store.outbox_depth
        refused: list[bool] = []

        def refusing() -> dict[str, int]:
            if not refused:
                refused.append(True)
                raise RuntimeError("injected: the count failed")
            return depth()

        rig.store.outbox_depth = refusing  # type: ignore[method-assign]
        rig.dispatcher._depth_updated = 0.0  # the next look counts again
        hook = rig.hook(101)
        _kill(writer, 7, [hook])  # no exception out of the commit
        assert refused == [True]
        assert handed[0] is not None
        assert len(handed[0]) == 1
        await until(lambda: rig.store.outbox_counts().get("sent") == 1, timeout=10.0)
        assert len(rig.discord.messages_for("webhook:101")) == 1
