"""The refusal of a second engine on a data directory says how to reach the one running."""

from __future__ import annotations

from pathlib import Path

import pytest

from wanderer_console.store.lock import DataDirInUseError, DataDirLock


def test_the_refusal_says_how_to_watch_the_running_engine(tmp_path: Path) -> None:
    """An operator who starts the console on a directory the service's engine holds wants to
    watch that engine: the refusal pointed at /health, /ready and /metrics (served only with
    [server] enabled) and the log, and never named ``attach``, the console on the running
    engine."""
    running = DataDirLock(tmp_path)
    running.acquire()
    try:
        with pytest.raises(DataDirInUseError) as refused:
            DataDirLock(tmp_path).acquire()
    finally:
        running.release()
    text = str(refused.value)
    assert f"`wanderer-console attach --data-dir {tmp_path}`" in text
    for command in ("db status", "outbox list", "export metrics", "config history"):
        assert command in text
