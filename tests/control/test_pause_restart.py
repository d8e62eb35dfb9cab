"""An operator's pause of delivery survives a restart of the engine: it starts paused, says so,
and a resume then delivers what was held, each notification once."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support import connected, fill_disk, posted_kills, small_disk, wait_for
from wanderer_console.delivery.hold import PAUSE_FILE
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator

pytestmark = pytest.mark.timeout(120)


def _kill(sim: Simulator, i: int) -> dict[str, Any]:
    """A kill in a tracked system with no tracked pilot on it: one notification."""
    system_id = sorted(sim.tracked_system_ids)[i % 3]
    return sim.generator.make_killmail(
        system_id=system_id, exclude_character_ids=sim.tracked_character_ids
    )


async def _queue_kills(sim: Simulator, runtime: Runtime, count: int) -> list[int]:
    """Push ``count`` kills and wait until each is decided and in the outbox."""
    kills = [_kill(sim, i) for i in range(count)]
    for kill in kills:
        await sim.killstream.push_kill(kill)
    await wait_for(
        lambda: all(runtime.store.has_event("*", f"kill:{k['killmail_id']}") for k in kills),
        what="the kills stored",
    )
    return [int(k["killmail_id"]) for k in kills]


async def test_a_pause_holds_across_a_graceful_restart_until_resumed(
    sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await first.start()
    try:
        await connected(first)
        result = await first.console.set_paused(True, actor="tui:alice@laptop via socket")
        assert result.ok, result.message
        assert "across restarts" in result.message
        before = (await first.console.snapshot()).delivery
        assert before.paused_by == "tui:alice@laptop via socket"
        assert before.paused_since is not None
        assert before.pause_saved is True
        held = await _queue_kills(sim, first, 4)
    finally:
        await first.stop()
    assert not posted_kills(sim)

    caplog.set_level(logging.WARNING, logger="wanderer_console")
    second = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await second.start()
    try:
        assert second.dispatcher.paused
        (warning,) = [r for r in caplog.records if "before this start" in r.getMessage()]
        assert warning.levelno == logging.WARNING
        ctx = warning.__dict__["ctx"]
        assert ctx["paused_by"] == "tui:alice@laptop via socket"
        assert ctx["paused_at"].endswith(" UTC")
        assert "POST /v1/pause" in ctx["resume"]
        # The console (and an attached one) reads who paused, since when, and that it is kept.
        after = (await second.console.snapshot()).delivery
        assert after.paused
        assert after.paused_by == "tui:alice@laptop via socket"
        assert after.paused_since == before.paused_since
        assert after.pause_saved is True
        assert after.pause_cluster is False  # this engine's alone: SQLite, one engine
        ready = second.readiness()
        assert any("paused by tui:alice@laptop via socket" in r for r in ready.reasons)
        await connected(second)
        # A kill read after the restart is written and wakes the dispatcher: still nothing goes.
        later = await _queue_kills(sim, second, 1)
        assert not posted_kills(sim)

        result = await second.console.set_paused(False, actor="tui:alice@laptop via socket")
        assert result.ok, result.message
        await wait_for(
            lambda: set(posted_kills(sim)) >= {*held, *later}, what="the held kills delivered"
        )
        await wait_for(
            lambda: not {"pending", "sending"} & set(second.store.outbox_counts()),
            what="the outbox settled",
        )
        assert set(posted_kills(sim).values()) == {1}
        assert not (tmp_path / PAUSE_FILE).exists()
        assert not any("paused by" in r for r in second.readiness().reasons)
        resumed = (await second.console.snapshot()).delivery
        assert (resumed.paused_by, resumed.paused_since, resumed.pause_saved) == (None, None, None)
    finally:
        await second.stop()

    third = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    try:
        assert not third.dispatcher.paused  # the resume was saved too
    finally:
        third.store.close()
        third.lock.release()


async def test_a_pause_that_cannot_be_saved_says_it_ends_at_the_next_restart(
    sim: Simulator, tmp_path: Path
) -> None:
    with small_disk(tmp_path / "data", "8m") as data:
        runtime = Runtime(demo_settings(sim, data_dir=data), data_dir=data)
        await runtime.start()
        filler = None
        try:
            await connected(runtime)
            filler = fill_disk(data, leave=0)
            result = await runtime.console.set_paused(True, actor="t")
            assert not result.ok
            assert "in this process only" in result.message
            assert "next restart" in result.message
            assert "saved (" not in result.message.replace("could not be saved (", "")
            assert runtime.dispatcher.paused  # it holds in this process all the same
            assert not (data / PAUSE_FILE).exists()
            unsaved = (await runtime.console.snapshot()).delivery
            assert (unsaved.paused_by, unsaved.pause_saved) == ("t", False)

            filler.unlink()
            again = await runtime.console.set_paused(True, actor="other")
            assert again.ok, again.message  # saved now, under who paused first
            assert "paused by t since" in again.message
            saved = (await runtime.console.snapshot()).delivery
            assert (saved.paused_by, saved.paused_since) == ("t", unsaved.paused_since)
            assert saved.pause_saved is True
            assert (data / PAUSE_FILE).exists()
        finally:
            if filler is not None:
                filler.unlink(missing_ok=True)
            await runtime.stop()


@pytest.mark.parametrize(
    "saved",
    [
        '{"paused_by": "ops:bob", "paused_at": 1e30}\n',  # a time no clock can show
        '{"paused_by": "ops:bob", "paused_at": NaN}\n',
        '{"paused_by": "ops:b',  # cut short
        b'{"paused_by": "ops:\xff\xfe\x00',  # bytes no UTF-8 reads (a damaged disk)
    ],
    ids=["out-of-range", "nan", "truncated", "not-utf8"],
)
async def test_a_damaged_saved_pause_starts_paused_and_says_its_time_is_unknown(
    sim: Simulator, tmp_path: Path, saved: str | bytes
) -> None:
    """A pause file whose time cannot be read is still an operator's pause: the engine starts
    (paused, ``/ready`` saying so) and no message makes up a time for it (1970)."""
    (tmp_path / PAUSE_FILE).write_bytes(saved if isinstance(saved, bytes) else saved.encode())
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await runtime.start()
    try:
        assert runtime.dispatcher.paused
        reasons = [r for r in runtime.readiness().reasons if "paused by" in r]
        assert len(reasons) == 1, runtime.readiness().reasons
        again = await runtime.console.set_paused(True, actor="ops:alice")
        assert again.ok, again.message
        assert "unknown time" in again.message
        assert "1970" not in again.message + reasons[0]
    finally:
        await runtime.stop()


async def test_ready_masks_a_secret_in_who_paused(sim: Simulator, tmp_path: Path) -> None:
    """``/ready`` is not authenticated: the pauser's text (which may carry an error's words, a
    database URL with its password among them) is masked there as in the snapshot."""
    secret = "postgresql://wc:hunter2secret@127.0.0.1:5432/wc"
    pause = {"paused_by": f"unknown (the cluster's pause could not be read: {secret})"}
    (tmp_path / PAUSE_FILE).write_text(
        json.dumps({**pause, "paused_at": time.time()}), encoding="utf-8"
    )
    runtime = Runtime(demo_settings(sim, data_dir=tmp_path), data_dir=tmp_path)
    await runtime.start()
    try:
        reasons = [r for r in runtime.readiness().reasons if "paused by" in r]
        assert len(reasons) == 1, runtime.readiness().reasons
        assert "hunter2secret" not in reasons[0], reasons[0]
        assert "paused by unknown" in reasons[0]
    finally:
        await runtime.stop()
