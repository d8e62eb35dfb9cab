"""A data directory this user cannot reach, or a path the file system refuses, is one paragraph
naming the path and what to do, exit 1: every command (and the engine's start) ended in a
PermissionError or ``File name too long`` traceback from ``Path.exists()``, which raises for
anything but "not there" (an operator running ``outbox list`` as themselves beside an engine
whose data directory only its service user may enter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import read_only_preexec

pytestmark = pytest.mark.slow  # subprocesses

COMMANDS = [
    ["outbox", "list"],
    ["tenant", "list"],
    ["db", "status"],
    ["config", "history"],
    ["export", "metrics"],
    ["control", "token"],
    ["replay", "--since", "1h", "--dry-run"],
    ["--no-ui"],
]

CONFIG = """\
[maps.home]
url = "http://127.0.0.1:9"
api_key = "map-key-0d9e8f7a6b5c4d3e"
"""


def _run(tmp_path: Path, argv: list[str], data_dir: str, **options: object) -> tuple[int, str]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG, encoding="utf-8")
    config.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDERER_CONSOLE_STORE")}
    where = ["--config", str(config), "--data-dir", data_dir]
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console", *argv, *where],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        **options,  # type: ignore[call-overload]
    )
    return done.returncode, done.stderr


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_data_directory_this_user_cannot_enter(tmp_path: Path, argv: list[str]) -> None:
    preexec = read_only_preexec()
    fenced = tmp_path / "var-lib"
    data = fenced / "wanderer-console"
    data.mkdir(parents=True)
    fenced.chmod(0o000)  # as /var/lib/wanderer-console's parent for another user
    try:
        code, err = _run(tmp_path, argv, str(data), preexec_fn=preexec)
    finally:
        fenced.chmod(0o700)
    assert "Traceback" not in err, err
    assert code == 1, err
    assert "Permission denied" in err
    assert str(data) in err
    assert "run it as the user the engine runs as" in err


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_data_directory_name_too_long(tmp_path: Path, argv: list[str]) -> None:
    data = str(tmp_path / ("d" * 300))  # a pasted token, not a directory name
    code, err = _run(tmp_path, argv, data)
    assert "Traceback" not in err, err
    assert code == 1, err
    assert "File name too long" in err
    assert "Check --data-dir and --config" in err
