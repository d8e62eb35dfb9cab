"""The outcome journal: writes in order, refused ones kept, a turn's confirmations gathered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from wanderer_console.delivery.outcomes import OutcomeJournal
from wanderer_console.store.writes import StoreWriteError


class _Log:
    """Stands for the store: records each write, refuses them while ``full``."""

    def __init__(self) -> None:
        self.writes: list[tuple[str, object]] = []
        self.full = False

    def write(self, name: str, value: object) -> None:
        if self.full:
            raise StoreWriteError(Path("db.sqlite"), name, OSError("database or disk is full"))
        self.writes.append((name, value))

    def write_all(self, items: list[int]) -> None:
        self.write("sent", list(items))


async def test_confirmations_of_one_turn_are_written_together_at_the_next() -> None:
    store = _Log()
    journal = OutcomeJournal()
    for item in (1, 2, 3):
        journal.record_soon("mark sent", item, store.write_all)
    assert store.writes == []  # not within the turn that read the answers
    assert len(journal) == 0  # nothing refused: sending goes on
    await asyncio.sleep(0)
    assert store.writes == [("sent", [1, 2, 3])]
    journal.record_soon("mark sent", 4, store.write_all)
    await asyncio.sleep(0)
    assert store.writes == [("sent", [1, 2, 3]), ("sent", [4])]


async def test_another_outcome_or_a_flush_writes_the_gathered_ones_first() -> None:
    store = _Log()
    journal = OutcomeJournal()
    journal.record_soon("mark sent", 1, store.write_all)
    journal.record("release", lambda: store.write("release", 9))
    assert store.writes == [("sent", [1]), ("release", 9)]
    journal.record_soon("mark sent", 2, store.write_all)
    assert journal.flush()  # what a stop does before it settles the rows left in flight
    assert store.writes[-1] == ("sent", [2])
    await asyncio.sleep(0)
    assert len(store.writes) == 3  # written once


async def test_gathered_confirmations_the_store_refuses_are_kept_and_stop_sending() -> None:
    store = _Log()
    journal = OutcomeJournal()
    store.full = True
    journal.record_soon("mark sent", 1, store.write_all)
    journal.record_soon("mark sent", 2, store.write_all)
    await asyncio.sleep(0)
    assert len(journal) == 1  # the dispatcher sends nothing new while it holds one
    journal.record("release", lambda: store.write("release", 9))  # kept behind it, in order
    assert not journal.flush()
    store.full = False
    assert journal.flush()
    assert store.writes == [("sent", [1, 2]), ("release", 9)]
    assert len(journal) == 0


def test_without_a_running_loop_a_confirmation_is_written_at_once() -> None:
    store = _Log()
    journal = OutcomeJournal()
    journal.record_soon("mark sent", 1, store.write_all)
    assert store.writes == [("sent", [1])]
