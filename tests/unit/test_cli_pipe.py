"""A command whose reader went away (``wanderer-console db status | head``) ends quietly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wanderer_console.command import EXIT_BROKEN_PIPE
from wanderer_console.control.token import TOKEN_FILE, TokenCheck, new_token

pytestmark = pytest.mark.slow  # a subprocess

COMMAND = (sys.executable, "-m", "wanderer_console", "config", "check", "--offline")

CONFIG = """\
[console]
data_dir = "{data}"

[maps.home]
url = "http://127.0.0.1:9"
api_key = "map-key-0d9e8f7a6b5c4d3e"
"""


def test_output_to_a_reader_that_went_away_is_no_traceback(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(data=tmp_path / "data"), encoding="utf-8")
    config.chmod(0o600)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before anything is written: every write fails
    try:
        done = subprocess.run(
            [*COMMAND, "--config", str(config)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr, done.stderr
    assert "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == EXIT_BROKEN_PIPE


def test_a_control_token_nobody_read_does_not_replace_the_one_in_use(tmp_path: Path) -> None:
    """``control token | cmd`` where cmd has already gone: the new token is printed to no one.
    It replaced the stored hash all the same, so the token in use stopped working and the one
    that took its place was never seen: the TCP consoles locked out until another was made."""
    data = tmp_path / "data"
    data.mkdir()
    token = new_token(data)  # the one the consoles use
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wanderer_console", "control", "token", "--data-dir", str(data)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert TokenCheck(data).accepts(token)
    assert sorted(p.name for p in data.iterdir()) == [TOKEN_FILE]  # no temporary file left
