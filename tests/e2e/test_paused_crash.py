"""``kill -9`` of a paused headless engine, then a restart: it starts paused, its log says so,
nothing goes out until an operator resumes, and then every held kill goes out once."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.support import end_process, headless_config, posted_kills, serve_headless, wait_for
from wanderer_console.console_api import BackendError
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KILLS = 6


def _statuses(db: Path) -> list[str]:
    """The status of every outbox row, read beside the running engine."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [status for (status,) in conn.execute("SELECT status FROM outbox")]
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


async def _attach(data: Path, pid: int, timeout: float = 20.0) -> RemoteBackend:
    """A console attached to the engine ``pid`` (a crashed one leaves its socket behind: the
    new engine serves it a moment after it holds the data directory)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        backend = RemoteBackend(socket_path=data / SOCKET_NAME)
        try:
            if (await backend.connect()).pid == pid:
                return backend
        except BackendError:
            if loop.time() > deadline:
                raise
        await backend.aclose()
        assert loop.time() < deadline, f"engine {pid} not serving its control socket"
        await asyncio.sleep(0.05)


def _log_lines(path: Path) -> list[dict[str, object]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_a_paused_engine_killed_and_restarted_stays_paused_until_resumed(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=13) as sim:
        config = headless_config(sim, tmp_path / "config.toml")
        data = tmp_path / "data"
        db = data / "wanderer-console.db"
        first = await serve_headless(config, data)
        try:
            backend = RemoteBackend(socket_path=data / SOCKET_NAME)
            await backend.connect()
            try:
                assert (await backend.set_paused(True, actor="ops:bob")).ok
            finally:
                await backend.aclose()
            await wait_for(lambda: sim.killstream.joined_clients >= 2, timeout=20)
            tracked = sorted(sim.tracked_system_ids)
            kills = [
                sim.generator.make_killmail(
                    system_id=tracked[i % 3], exclude_character_ids=sim.tracked_character_ids
                )
                for i in range(KILLS)
            ]
            for kill in kills:
                await sim.killstream.push_kill(kill)
            await wait_for(lambda: _statuses(db).count("pending") == KILLS, 20, "kills queued")
            first.send_signal(signal.SIGKILL)
            await first.wait()
        finally:
            await end_process(first)
        assert not posted_kills(sim)

        log_path = tmp_path / "second.log"
        with log_path.open("w", encoding="utf-8") as log_file:
            second = await serve_headless(config, data, stdout=log_file)
        try:
            backend = await _attach(data, second.pid)
            try:
                assert (await backend.snapshot()).delivery.paused
                (line,) = [
                    entry
                    for entry in _log_lines(log_path)
                    if "before this start" in str(entry.get("event"))
                ]
                assert line["level"] == "warning", line
                assert "ops:bob" in json.dumps(line)
                assert "POST /v1/pause" in json.dumps(line)
                assert not posted_kills(sim)

                assert (await backend.set_paused(False, actor="ops:bob")).ok
                ids = {int(k["killmail_id"]) for k in kills}
                await wait_for(lambda: set(posted_kills(sim)) >= ids, 30, "the held kills posted")
                await wait_for(lambda: set(_statuses(db)) == {"sent"}, 20, "outbox settled")
                assert set(posted_kills(sim).values()) == {1}
            finally:
                await backend.aclose()
        finally:
            await end_process(second)
