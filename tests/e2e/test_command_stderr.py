"""A command's stderr holds its own lines only: no bare log message from the code it runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wanderer_console.store.backends import open_store

pytestmark = pytest.mark.slow  # subprocesses

CLOSED = "http://127.0.0.1:9"
"""Nothing listens there: every request is refused."""

CONFIG = f"""\
[maps.home]
url = "{CLOSED}"
api_key = "map-key-0d9e8f7a6b5c4d3e"

[maps.home.discord]
webhook_url = "{CLOSED}/api/webhooks/7/webhook-token-5f4e3d2c1b"

[esi]
url = "{CLOSED}"

[killstream]
rest_url = "{CLOSED}/kills"
"""


def _run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """``wanderer-console argv`` on a configuration whose every host refuses connections."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    config.chmod(0o600)
    data = tmp_path / "data"
    if not data.exists():
        data.mkdir()
        open_store(data / "wanderer-console.db").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDERER_CONSOLE_")}
    return subprocess.run(
        [sys.executable, "-m", "wanderer_console", *argv, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def test_kill_says_only_that_the_killmail_cannot_be_fetched(tmp_path: Path) -> None:
    """Each failed request also printed a bare "http request failed" line: no logging is
    configured for commands, so Python's last-resort handler wrote the message, context lost."""
    done = _run(tmp_path, "kill", "123", "--data-dir", str(tmp_path / "data"))
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("wanderer-console kill: cannot fetch killmail 123: "), done.stderr


def test_replay_says_only_what_it_could_not_reach(tmp_path: Path) -> None:
    done = _run(
        tmp_path, "replay", "--dry-run", "--since", "1h", "--data-dir", str(tmp_path / "data")
    )
    assert done.returncode == 0, done.stderr
    unreachable, summary = done.stderr.splitlines()
    assert unreachable.startswith("replay: map home: REST not reachable"), done.stderr
    assert json.loads(summary)["summary"] == "replay"
