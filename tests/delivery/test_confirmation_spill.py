"""Confirmations the store refuses at a graceful stop are kept on disk for the next start.

Discord confirmed a webhook message while the store could not write; the engine stopped before
the store wrote again. The confirmation lived only in memory: the next start found the row still
claimed and re-sent it as uncertain, so Discord posted it twice. The stop now writes it into a
file pre-allocated in the data directory (so a full disk does not refuse it), and the next start
marks the row sent with Discord's message id before it recovers what was left in flight.

The store refuses for real (``PRAGMA query_only``); the data directory is a small tmpfs filled
to the last byte when mounting is possible (root), else a plain directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.delivery.rig import FAST, Rig, make_rig, until
from tests.support import fill_disk, small_disk, wait_for
from wanderer_console.delivery.dispatcher import Dispatcher
from wanderer_console.delivery.hold import PAUSE_FILE
from wanderer_console.delivery.spill import SPILL_FILE, ConfirmationSpill
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.store.base import LeaseFence, SentMessage
from wanderer_console.store.integrity import StorageError

pytestmark = pytest.mark.timeout(60)

LOGGER = "wanderer_console.delivery.dispatcher"


@contextlib.asynccontextmanager
async def _restarted(rig: Rig, spill: ConfirmationSpill | None) -> AsyncIterator[Dispatcher]:
    """The next start: a new dispatcher on the same outbox (and data directory)."""
    again = Dispatcher(
        rig.store, rig.dispatcher.sender, rig.metrics, lambda: rig.targets, policy=FAST, spill=spill
    )
    task = asyncio.create_task(again.run())
    try:
        yield again
    finally:
        await again.stop(grace=1.0)
        await task


async def _confirmed_while_the_store_refuses(rig: Rig, hook_id: int, stops: int = 1) -> str:
    """A webhook message Discord posts and confirms while the store refuses every write, then
    a graceful stop (``stops`` times, the store refusing throughout); Discord's message id."""
    hook = rig.hook(hook_id)
    rig.discord.answer_delay = 1.0  # posted at once, answered a second later
    rig.enqueue(hook, 1)
    await until(lambda: len(rig.discord.received) == 1)
    rig.store._conn.execute("PRAGMA query_only = ON")
    await until(lambda: len(rig.dispatcher._journal) == 1)  # the confirmation is kept
    rig.discord.answer_delay = 0.0
    for _ in range(stops):
        await rig.dispatcher.stop()
    rig.store._conn.execute("PRAGMA query_only = OFF")
    assert rig.store.outbox_counts() == {"sending": 1}
    return rig.discord.received[0].message_id


def _opened(data: Path) -> ConfirmationSpill:
    """The spill as the engine opens it at start, its lines said (the runtime announces them
    once its log ring is installed)."""
    spill = ConfirmationSpill.open(data)
    spill.announce()
    return spill


@contextlib.contextmanager
def _full_disk(tmp_path: Path) -> Iterator[tuple[Path, bool]]:
    """A data directory, and whether it is a real file system to be filled to the last byte
    (a small tmpfs: mounting needs root, as CI runs; elsewhere a plain directory)."""
    if os.geteuid() == 0:
        with small_disk(tmp_path / "data", "2m") as data:
            yield data, True
        return
    data = tmp_path / "data"
    data.mkdir()
    yield data, False


async def test_a_confirmation_refused_at_stop_is_applied_at_the_next_start_not_posted_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _full_disk(tmp_path) as (data, real):
        spill = ConfirmationSpill.open(data)
        assert spill is not None
        if real:
            fill_disk(data, leave=0)  # the spill was written at start: nothing new is needed
        async with make_rig(tmp_path, spill=spill) as rig:
            with caplog.at_level(logging.INFO, logger=LOGGER):
                message_id = await _confirmed_while_the_store_refuses(rig, 1)
            said = [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.INFO]
            kept = [r for r in said if r.getMessage().startswith("confirmations kept in")]
            assert len(kept) == 1, [r.getMessage() for r in said]
            assert kept[0].levelno == logging.WARNING
            assert kept[0].ctx["messages"] == 1  # type: ignore[attr-defined]
            assert not [r for r in said if r.levelno >= logging.ERROR]
            caplog.clear()
            with caplog.at_level(logging.INFO, logger=LOGGER):
                async with _restarted(rig, _opened(data)):
                    await until(lambda: rig.store.outbox_counts() == {"sent": 1})
            applied = [r for r in caplog.records if r.getMessage().startswith("confirmations")]
            assert [r.getMessage() for r in applied] == [
                "confirmations kept at the last stop applied"
            ]
            assert applied[0].ctx["rows"] == 1  # type: ignore[attr-defined]
            row = rig.store._conn.execute("SELECT status, message_id FROM outbox").fetchone()
            assert tuple(row) == ("sent", message_id)
            assert len(rig.discord.received) == 1  # posted once: never re-sent as uncertain
        reread = ConfirmationSpill.open(data)
        assert reread is not None
        assert reread.kept == []  # cleared once applied


async def test_a_damaged_spill_is_ignored_and_the_message_re_sent_as_uncertain(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    async with make_rig(tmp_path, spill=ConfirmationSpill.open(data)) as rig:
        await _confirmed_while_the_store_refuses(rig, 2)
        raw = bytearray((data / SPILL_FILE).read_bytes())
        raw[20] ^= 0xFF  # a byte of the record's payload
        (data / SPILL_FILE).write_bytes(bytes(raw))
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            spill = _opened(data)
            assert spill.kept == []
            async with _restarted(rig, spill):
                await until(lambda: rig.store.outbox_counts() == {"sent": 1})
        assert len(rig.discord.received) == 2  # as before: re-sent as uncertain
        said = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("damaged confirmations ignored") for m in said), said


def test_records_are_checked_one_by_one_and_the_file_is_bounded(tmp_path: Path) -> None:
    spill = ConfirmationSpill.open(tmp_path, size=400)
    assert spill is not None
    assert (tmp_path / SPILL_FILE).stat().st_size == 400
    fence = LeaseFence("map:home", "host:1:abc", 7)
    messages = [SentMessage([i, i + 100], float(i), f"m{i}", f"send{i}", fence) for i in range(9)]
    kept = spill.keep(messages)
    assert 0 < kept < len(messages)  # what fits, not more
    raw = bytearray((tmp_path / SPILL_FILE).read_bytes())
    assert len(raw) == 400  # never grows
    raw[14] ^= 0x01  # the first record's payload: that record only is ignored
    (tmp_path / SPILL_FILE).write_bytes(bytes(raw))
    reread = ConfirmationSpill.open(tmp_path, size=400)
    assert reread is not None
    assert reread.kept == messages[1:kept]
    assert reread.damaged == 1
    # A record cut by a crash while it was written: ignored.
    reread.clear()
    reread.keep(messages[:1])
    torn = bytearray((tmp_path / SPILL_FILE).read_bytes())
    end = len(torn.rstrip(b"\0"))
    torn[end - 3 : end] = b"\0\0\0"
    (tmp_path / SPILL_FILE).write_bytes(bytes(torn))
    last = ConfirmationSpill.open(tmp_path, size=400)
    assert last is not None
    assert last.kept == []
    assert last.damaged == 1


def _remount(directory: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(directory)], check=True)


async def test_confirmations_read_are_applied_when_the_spill_cannot_be_written_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The data directory turned read-only between the stop and the next start: the file is
    read but cannot be filled to its size. What it holds is applied all the same (not posted
    again); the start says the next stop cannot keep any."""
    with small_disk(tmp_path / "data", "2m") as data:
        async with make_rig(tmp_path, spill=ConfirmationSpill.open(data)) as rig:
            message_id = await _confirmed_while_the_store_refuses(rig, 3)
            _remount(data, "ro")
            try:
                with caplog.at_level(logging.INFO, logger=LOGGER):
                    spill = _opened(data)
                    async with _restarted(rig, spill):
                        await until(lambda: rig.store.outbox_counts() == {"sent": 1})
            finally:
                _remount(data, "rw")
            row = rig.store._conn.execute("SELECT status, message_id FROM outbox").fetchone()
            assert tuple(row) == ("sent", message_id)
            assert len(rig.discord.received) == 1  # applied: never re-sent as uncertain
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("no room kept for confirmations at stop") for m in said), said
    assert "confirmations kept at the last stop applied" in said
    assert spill.keep([SentMessage([1], 1.0, "m", "send", None)]) == 0  # no new ones


async def test_a_second_stop_keeps_each_confirmation_once(tmp_path: Path) -> None:
    """stop() called again while the store still refuses: the confirmation is in the file
    once (twice, the next start would apply it twice and count it twice)."""
    data = tmp_path / "data"
    data.mkdir()
    async with make_rig(tmp_path, spill=ConfirmationSpill.open(data)) as rig:
        await _confirmed_while_the_store_refuses(rig, 4, stops=2)
        assert len(ConfirmationSpill.open(data).kept) == 1


async def test_the_start_s_lines_about_the_spill_reach_the_console_s_log(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Read and applied before the engine's log ring is installed, the lines are said there
    too: an attached console's activity log shows them."""
    spill = ConfirmationSpill.open(tmp_path)
    fence = LeaseFence("map:home", "host:1:abc", 7)
    spill.keep([SentMessage([987654], 1.0, f"m{i}", f"send{i}", fence) for i in range(2)])
    raw = bytearray((tmp_path / SPILL_FILE).read_bytes())
    raw[len(raw.rstrip(b"\0")) - 2] ^= 0xFF  # the second record's payload
    (tmp_path / SPILL_FILE).write_bytes(bytes(raw))
    caplog.set_level(logging.INFO, logger="wanderer_console")  # the engine's level, as launched
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await runtime.start()
    try:
        ring = runtime.console.ring
        await wait_for(
            lambda: ring.matching("confirmations kept at the last stop applied"),
            what="the applied line in the console's log",
        )
        assert ring.matching("damaged confirmations ignored in the spill")
    finally:
        await runtime.stop()


async def test_a_start_that_fails_before_its_announcements_still_says_the_spill_s_lines(
    sim: Simulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The spill and the saved pause were read (and applied) when the engine was built; a start
    that fails before its log ring is installed still says what it found, once, or no one ever
    sees it."""
    (tmp_path / PAUSE_FILE).write_text('{"paused_by": "tui:alice", "paused_at": 1.0}')
    spill = ConfirmationSpill.open(tmp_path)
    fence = LeaseFence("map:home", "host:1:abc", 7)
    spill.keep([SentMessage([987654], 1.0, f"m{i}", f"send{i}", fence) for i in range(2)])
    raw = bytearray((tmp_path / SPILL_FILE).read_bytes())
    raw[len(raw.rstrip(b"\0")) - 2] ^= 0xFF  # the second record's payload
    (tmp_path / SPILL_FILE).write_bytes(bytes(raw))
    caplog.set_level(logging.INFO, logger="wanderer_console")
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)

    def store_gone(store: object) -> int:  # the database going away mid-start
        raise StorageError(tmp_path, "it did not answer", "check the database")

    monkeypatch.setattr(runtime.cache, "load_warm", store_gone)
    try:
        with pytest.raises(StorageError):
            await runtime.start()
    finally:
        await runtime.stop()
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("damaged confirmations ignored in the spill") for m in said), said
    assert sum(m.startswith("damaged confirmations ignored") for m in said) == 1, said
    assert sum(m.startswith("delivery paused by an operator before") for m in said) == 1, said
