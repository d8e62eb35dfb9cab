"""A data directory with a long path still serves its control socket, and attach reaches it.

A Unix socket's path holds at most 107 bytes: ``control.sock`` under a long data directory (and
the staging directory it is bound in first) used to fail to bind, and the console could not
attach ("serves no control socket"). Found when the suite ran with pytest-xdist, whose temporary
directories are a little longer.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.support import connected
from wanderer_console.control.server import SOCKET_NAME
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.http.uds import SUN_PATH_MAX, UnixAddress
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


def _long_dir(base: Path) -> Path:
    data = base / ("instances-" + "a" * 60) / ("wanderer-console-" + "b" * 60) / "data"
    data.mkdir(parents=True)
    assert len(os.fsencode(data / SOCKET_NAME)) > SUN_PATH_MAX
    return data


async def test_an_engine_in_a_long_data_directory_serves_and_is_attached(
    sim: Simulator, tmp_path: Path
) -> None:
    data = _long_dir(tmp_path)
    runtime = Runtime(demo_settings(sim, data_dir=data), data_dir=data)
    await runtime.start()
    try:
        await connected(runtime)
        assert runtime.control.errors == []
        sock = data / SOCKET_NAME
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        remote = RemoteBackend(socket_path=sock)
        try:
            await remote.connect()
            assert remote.identity is not None
            assert remote.identity.data_dir == str(data)
            snapshot = await remote.snapshot()
            assert [c.name for c in snapshot.connections] == [
                c.name for c in runtime.console.snapshot_now().connections
            ]
        finally:
            await remote.aclose()
    finally:
        await runtime.stop()


def test_a_short_path_is_used_as_it_is_and_a_long_one_through_its_directory(
    tmp_path: Path,
) -> None:
    short = tmp_path / "x.sock"
    with UnixAddress(short) as address:
        assert str(address) == str(short)
    long = _long_dir(tmp_path) / SOCKET_NAME
    with UnixAddress(long) as address:
        through = str(address)
        assert len(os.fsencode(through)) <= SUN_PATH_MAX
        assert through.endswith("/" + SOCKET_NAME)
        # The short name reaches the same directory as the long path.
        long.write_text("here", encoding="utf-8")
        assert Path(through).read_text(encoding="utf-8") == "here"
