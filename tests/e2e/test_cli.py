"""The installed command, run as a subprocess: demo summary, headless shutdown, no-TTY refusal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tests.support import headless_config, wait_for
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

COMMAND = [sys.executable, "-m", "wanderer_console"]


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_demo_prints_a_summary_with_every_type_and_no_duplicates(tmp_path: Path) -> None:
    code, out, err = await _run("demo", "--no-ui", "--duration", "6", "--data-dir", str(tmp_path))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    summary = lines[-1]
    assert summary["summary"] == "demo"
    delivered = summary["notifications_delivered"]
    for kind in ("kill", "system", "character", "rally"):
        assert delivered.get(kind, 0) > 0, kind
    assert summary["discord"]["duplicate_deliveries"] == 0
    assert summary["scenario"]["kills_missing"] == []
    assert summary["scenario"]["untracked_kills_notified"] == []
    assert summary["errors"] == 0
    # Every other stdout line is a JSON log record.
    assert all("level" in line for line in lines[:-1])


async def test_no_ui_without_a_terminal_is_refused_with_advice() -> None:
    code, _out, err = await _run("demo", "--duration", "1")
    assert code == 2
    assert "--no-ui" in err


def _on_loop(config: Path, choice: str) -> Path:
    """``config`` with ``console.event_loop = choice``."""
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[console]\n", f'[console]\nevent_loop = "{choice}"\n'))
    return config


@pytest.mark.parametrize(("choice", "loop"), [("auto", "uvloop"), ("asyncio", "asyncio")])
async def test_headless_stops_cleanly_on_sigterm(tmp_path: Path, choice: str, loop: str) -> None:
    """Started, delivering and stopped on each event loop: ``auto`` takes uvloop (a dependency
    here), ``asyncio`` keeps the standard loop; the start's line says which it runs on."""
    async with Simulator(seed=5) as sim:
        config = _on_loop(headless_config(sim, tmp_path / "config.toml"), choice)
        proc = await asyncio.create_subprocess_exec(
            *COMMAND,
            "--no-ui",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert proc.stdout is not None
        # Wait for the start and the map stream to connect, then ask it to stop.
        said: dict[str, dict[str, object]] = {}
        while not {"map stream connected", "wanderer console started"} <= said.keys():
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
            assert line, "process exited before connecting"
            record = json.loads(line)
            said.setdefault(str(record["event"]), record)
        assert said["wanderer console started"]["event_loop"] == loop
        sim.map.add_rally(sorted(sim.tracked_system_ids)[0])
        for _ in range(200):  # up to 10 s for the rally to reach the fake Discord
            if sim.discord.received:
                break
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        rest, err = await asyncio.wait_for(proc.communicate(), timeout=20)
        assert proc.returncode == 0, err.decode()
        events = [json.loads(line)["event"] for line in rest.decode().splitlines() if line]
        assert events[-1] == "wanderer console stopped"
        assert len(sim.discord.received) == 1
        assert sim.map_api_key not in rest.decode()


async def test_an_engine_told_to_use_uvloop_where_it_is_missing_says_how_to_get_it(
    tmp_path: Path,
) -> None:
    """``console.event_loop = "uvloop"`` on a host without it: one line saying what to do and
    exit 1 before the engine starts (nothing sent); not a traceback from the import."""
    missing = tmp_path / "no-uvloop"
    missing.mkdir()
    (missing / "uvloop.py").write_text('raise ImportError("no uvloop on this host")\n')
    config = tmp_path / "config.toml"
    async with Simulator(seed=5) as sim:
        _on_loop(headless_config(sim, config), "uvloop")
        path = os.pathsep.join(filter(None, [str(missing), os.environ.get("PYTHONPATH")]))
        code, _out, err = await _run(
            "--no-ui",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            env={"PYTHONPATH": path},
        )
    assert code == 1, err
    assert "console.event_loop is 'uvloop' but uvloop is not installed here" in err
    assert "pip install uvloop" in err
    assert "Traceback" not in err
    assert not sim.discord.received


async def test_an_engine_without_a_map_refuses_to_start_as_config_check_does(
    tmp_path: Path,
) -> None:
    """``config check`` calls a configuration without a map (and not hosted) invalid: an engine
    on it would receive nothing. The engine says the same and exits 1 instead of running idle."""
    config = tmp_path / "config.toml"
    config.write_text("[console]\nstartup_suppression_seconds = 0\n", encoding="utf-8")
    check_code, _out, check_err = await _run("config", "check", "--config", str(config))
    assert check_code == 1
    refusal = next(line for line in check_err.splitlines() if "no map configured" in line)
    proc = await asyncio.create_subprocess_exec(
        *COMMAND,
        "--no-ui",
        "--config",
        str(config),
        "--data-dir",
        str(tmp_path / "data"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:  # it started and ran doing nothing
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1, "the engine started without a map"
    assert refusal in err.decode()
    assert "Traceback" not in err.decode()
    assert not (tmp_path / "data").exists()  # refused before anything was made


async def test_a_taken_server_port_is_said_and_the_engine_keeps_delivering(
    tmp_path: Path,
) -> None:
    """``[server] port`` already taken: the HTTP surface is optional (notifications matter
    more), so the engine logs why it is not served and runs on. It used to end with uvicorn's
    traceback and exit status 3, which says another engine owns the data directory."""
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        async with Simulator(seed=5) as sim:
            config = headless_config(sim, tmp_path / "config.toml")
            with config.open("a", encoding="utf-8") as out:
                out.write(f"[server]\nenabled = true\nport = {port}\n")
            proc = await asyncio.create_subprocess_exec(
                *COMMAND,
                "--no-ui",
                "--config",
                str(config),
                "--data-dir",
                str(tmp_path / "data"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stdout is not None
            try:
                said: list[dict[str, object]] = []
                wanted = {"map stream connected", "wanderer console started"}
                while not wanted <= {r["event"] for r in said}:
                    line = await asyncio.wait_for(proc.stdout.readline(), timeout=20)
                    assert line, "the process ended before it had started"
                    said.append(json.loads(line))
                refused = next(r for r in said if r["event"] == "http server not started")
                assert f"127.0.0.1:{port}" in str(refused["error"])
                sim.map.add_rally(sorted(sim.tracked_system_ids)[0])
                await wait_for(lambda: sim.discord.received, 10, "the rally at the fake Discord")
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                _rest, err = await asyncio.wait_for(proc.communicate(), timeout=20)
            assert proc.returncode == 0, err.decode()
            assert "Traceback" not in err.decode()
            # uvicorn's own "[Errno 98] ... address already in use" came bare on stderr, a
            # line a JSON log collector cannot read, beside the engine's JSON one.
            lines = err.decode().splitlines()
            bare = [x for x in lines if "already in use" in x and not x.startswith("{")]
            assert not bare, bare
    finally:
        taken.close()
