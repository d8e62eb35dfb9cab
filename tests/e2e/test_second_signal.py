"""A second SIGINT/SIGTERM during the graceful stop ends the process at once, as a crash would.

The engine runs as a real ``--no-ui`` subprocess against the simulator, whose fake Discord holds
the answer to the first message (it is recorded, as a post that went through, but not answered).
The graceful stop would wait ``console.stop_grace_seconds`` (60 here) for that answer; a second
signal ends it now with the second signal's exit status. The state left is a crash's: the
restart checks the unanswered message (a bot message, re-sent with its nonce, which Discord
answers with the original) and sends what was still waiting, so nothing is lost or posted twice.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.support import posted_kills, start_headless, wait_for
from wanderer_console.sim import Simulator
from wanderer_console.store.lock import lock_holder

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

BOT_CHANNEL = "100000000000000009"
KILLS = 30


def _config(sim: Simulator, path: Path) -> Path:
    path.write_text(
        f"""
[console]
startup_suppression_seconds = 0
stop_grace_seconds = 60
[discord]
api_url = "{sim.discord_api_url}"
bot_token = "{sim.bot_token}"
uncertain_retry_seconds = 1
[esi]
enabled = false
[killstream]
websocket_url = "{sim.killstream_url}"
[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.home.discord]
system_kill_channel_id = "{BOT_CHANNEL}"
"""
    )
    return path


def _statuses(db: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [status for (status,) in conn.execute("SELECT status FROM outbox")]
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        conn.close()


def _log(path: Path) -> list[dict[str, object]]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines if line.startswith("{")]


async def _start(config: Path, data: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        proc = await start_headless(config, data, stdout=out)
    # The lock names our PID once the signal handlers are in place.
    await wait_for(
        lambda: (h := lock_holder(data)) is not None and h.pid == proc.pid,
        timeout=30,
        what="the engine to take its lock",
    )
    return proc


@pytest.mark.parametrize("second", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_a_second_signal_stops_at_once_and_the_restart_loses_and_doubles_nothing(
    tmp_path: Path, second: signal.Signals
) -> None:
    async with Simulator(seed=7) as sim:
        config = _config(sim, tmp_path / "config.toml")
        data, log = tmp_path / "data", tmp_path / "engine.log"
        db = data / "wanderer-console.db"
        sim.discord.answer_delay = 3600.0  # the first message is posted but never answered
        first = await _start(config, data, log)
        try:
            await wait_for(lambda: sim.killstream.joined_clients >= 2, 30, "the killstream joins")
            systems = sorted(sim.tracked_system_ids)
            pilots = sorted(sim.tracked_character_ids)
            ids = set()
            for i in range(KILLS):
                km = sim.generator.make_killmail(
                    system_id=systems[i % len(systems)], exclude_character_ids=pilots
                )
                ids.add(int(km["killmail_id"]))
                await sim.killstream.push_kill(km)
            await wait_for(lambda: len(_statuses(db)) == KILLS, 30, "every kill queued")
            await wait_for(lambda: sim.discord.received, 30, "the first message posted")

            first.send_signal(signal.SIGTERM)
            await wait_for(
                lambda: any("second signal" in str(r.get("event")) for r in _log(log)),
                30,
                "the graceful stop to begin",
            )
            first.send_signal(second)
            # Far less than the 60 s the graceful stop would wait for the held answer.
            _, err = await asyncio.wait_for(first.communicate(), timeout=30)
        finally:
            if first.returncode is None:
                first.kill()
                await first.wait()
        assert first.returncode == 128 + second, err.decode()[-2000:]
        said = [str(r["event"]) for r in _log(log)]
        assert any(e.startswith(f"second signal ({second.name}): stopping now") for e in said)
        assert "wanderer console stopped" not in said  # not a clean stop
        assert "sending" in _statuses(db)  # the held message's rows: a crash's state

        sim.discord.answer_delay = 0.0
        second_run = await _start(config, data, log)
        try:
            await wait_for(lambda: set(_statuses(db)) == {"sent"}, 60, "every notification sent")
        finally:
            second_run.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(second_run.communicate(), timeout=30)
        assert second_run.returncode == 0, err.decode()[-2000:]

        posted = posted_kills(sim)
        assert set(posted) == ids  # nothing lost
        assert [k for k, n in posted.items() if n > 1] == []  # nothing posted twice
        assert sim.discord.nonce_replays >= 1  # the unanswered message was checked, not reposted


_UI_UP_TWO_SIGNALS = """
import asyncio, signal
from textual.app import App
from wanderer_console.launch import _install_stop_signals

class Console(App[None]):
    def on_mount(self) -> None:
        # A supervisor's SIGTERM, and another before the console has given the terminal back.
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)

async def main() -> None:
    stop, hangup = asyncio.Event(), asyncio.Event()
    _install_stop_signals(stop, hangup)  # as run_console does with the console UI showing
    await Console().run_async()

asyncio.run(main())
"""


def test_a_second_signal_while_the_console_ui_shows_gives_the_terminal_back() -> None:
    """The console UI puts the terminal in raw mode on the alternate screen, with the mouse
    reported and the cursor hidden. Two SIGTERMs while it shows ended the process before the UI
    could undo that: the operator's shell was left echoing nothing, in a blank screen, with
    mouse escapes typed into it. The stop at once now gives the terminal back first (a real
    pseudo-terminal and real Textual here)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    before = termios.tcgetattr(slave)
    env = {**os.environ, "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _UI_UP_TWO_SIGNALS],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    output = b""
    try:
        while proc.poll() is None or select.select([master], [], [], 0)[0]:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    output += os.read(master, 65536)
                except OSError:
                    break
        after = termios.tcgetattr(slave)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)
    assert proc.returncode == 128 + signal.SIGTERM, output[-2000:]
    assert b"\x1b[?1049h" in output  # the console UI was showing
    assert after[3] & (termios.ICANON | termios.ECHO) == termios.ICANON | termios.ECHO
    assert after == before
    shown = output[output.rindex(b"\x1b[?1049h") :]
    for undo in (b"\x1b[?1049l", b"\x1b[?25h", b"\x1b[?1000l", b"\x1b[?1003l", b"\x1b[?1006l"):
        assert undo in shown, undo
