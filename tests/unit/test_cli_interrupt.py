"""Ctrl-C during a command (``config check`` waiting for a map API that does not answer) ends it
with one line and exit 130, not a KeyboardInterrupt traceback through httpx and asyncio."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a subprocess

CONFIG = """\
[console]
data_dir = "{data}"

[maps.home]
url = "http://127.0.0.1:{port}"
api_key = "map-key-0d9e8f7a6b5c4d3e"
"""


def _sigint_as_default() -> None:
    # A worker or shell that ignores SIGINT passes that on: the command must get Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_a_command_is_one_line_and_exit_130(tmp_path: Path) -> None:
    # A map API that takes the connection and never answers: the command waits on it (10 s).
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    asked = threading.Event()
    held: list[socket.socket] = []

    def accept() -> None:
        try:
            connection, _ = server.accept()
        except OSError:
            return  # closed at the end of the test
        held.append(connection)
        asked.set()

    threading.Thread(target=accept, daemon=True).start()
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(data=tmp_path / "data", port=port), encoding="utf-8")
    config.chmod(0o600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wanderer_console", "config", "check", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_as_default,
    )
    try:
        # The command is inside its request (the server has its connection): interrupt it there.
        assert asked.wait(60), "config check never asked the map API"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
        server.close()
        for connection in held:
            connection.close()
    assert "Traceback" not in err, err
    assert "KeyboardInterrupt" not in err, err
    assert proc.returncode == 128 + signal.SIGINT, (proc.returncode, err)
    assert "config ok" not in out
    assert err.strip().splitlines()[-1] == (
        "wanderer-console config check: interrupted (Ctrl-C) before it finished"
    )
