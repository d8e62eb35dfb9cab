"""Hot reload when the config history cannot be written: real SQLite files, the database held
by another writer (as an operator's ``sqlite3`` shell with an open transaction, a backup or a
vacuum would hold it) until the engine's wait for it runs out."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wanderer_console.config.loader import load_settings
from wanderer_console.config.reload import ConfigReloader
from wanderer_console.console_api import ConfigState
from wanderer_console.runtime import Runtime
from wanderer_console.telemetry.metrics import Metrics
from wanderer_console.ui.faults import config_text

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

GOOD = """\
[console]
data_dir = "{data}"

[esi]
enabled = false

[killstream]
enabled = false

[maps.home]
url = "http://127.0.0.1:9"
api_key = "map-key-0d9e8f7a6b5c4d3e"
"""


def write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[tuple[Runtime, ConfigReloader]]:
    """An engine's runtime (not started) and the reloader of its config file."""
    path = tmp_path / "config.toml"
    write(path, GOOD.format(data=tmp_path / "data"))
    runtime = Runtime(
        load_settings(path, environ={}).settings, data_dir=tmp_path / "data", config_path=path
    )
    reloader = ConfigReloader(runtime, path)
    reloader.baseline()
    try:
        yield runtime, reloader
    finally:
        reloader.close()
        await runtime.stop()


def hold_the_database(runtime: Runtime) -> sqlite3.Connection:
    """Another connection holding the write lock of the engine's database."""
    holder = sqlite3.connect(str(runtime.store.path), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def test_an_edit_is_applied_and_a_bad_one_rejected_when_the_history_cannot_be_written(
    watched: tuple[Runtime, ConfigReloader], caplog: pytest.LogCaptureFixture
) -> None:
    """The history is a record of what the reload did, not a condition of it: the edit is
    applied (and said to be), the typo rejected (and shown), the missing history entry logged."""
    runtime, reloader = watched
    caplog.set_level(logging.INFO, logger="wanderer_console.config.reload")
    path = reloader.path
    good = GOOD.format(data=path.parent / "data")
    holder = hold_the_database(runtime)
    try:
        write(path, good.replace("[esi]", "[notifications]\nkill = false\n\n[esi]"))
        applied = reloader.reload(source="file")
        write(path, good.replace("[esi]", "[esi]\nbogus = 1"))
        rejected = reloader.reload(source="file")
        state = ConfigState.model_validate(reloader.snapshot())
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    assert applied.status == "applied"
    assert applied.hot == ["notifications.kill"]
    assert runtime.settings.notifications.kill is False
    assert rejected.status == "rejected"
    assert "esi.bogus" in rejected.problems[0]
    assert state.last_status == "rejected"
    assert (config_text(state) or "").startswith("CONFIG CHANGE REJECTED")
    messages = [r.getMessage() for r in caplog.records]
    assert "configuration reloaded" in messages
    assert "configuration change rejected; the running configuration is kept" in messages
    unrecorded = [
        r for r in caplog.records if r.getMessage().startswith("configuration change not recorded")
    ]
    assert [r.__dict__["ctx"]["status"] for r in unrecorded] == ["applied", "rejected"]
    assert "database is locked" in unrecorded[0].__dict__["ctx"]["error"]


def test_a_rejected_edit_read_again_is_one_rejection(tmp_path: Path) -> None:
    """The watcher and the operator's reload (or two reloads) read the same broken file: one
    edit, so one rejection counted, one history entry and one error logged; the next, different
    edit is a rejection of its own, and the same file read again after a good one counts anew."""
    path = tmp_path / "config.toml"
    good = GOOD.format(data=tmp_path / "data")
    write(path, good)
    runtime = Runtime(
        load_settings(path, environ={}).settings, data_dir=tmp_path / "data", config_path=path
    )
    metrics = Metrics()
    reloader = ConfigReloader(runtime, path, metrics=metrics)
    reloader.baseline()

    def rejected() -> float:
        return metrics.value("wc_config_reloads_total", outcome="rejected")

    def history() -> list[str]:
        return [entry.diff["status"] for entry in reloader.audit.history()]

    try:
        write(path, good.replace("[esi]", "[esi]\nbogus = 1"))
        first = reloader.reload(source="file")
        again = reloader.reload(source="console")
        assert first.status == again.status == "rejected"
        assert again.problems == first.problems
        assert rejected() == 1
        assert history() == ["applied", "rejected"]

        write(path, good.replace("[esi]", "[esi]\nbogus = 2"))
        assert reloader.reload(source="file").status == "rejected"
        assert rejected() == 2
        path.unlink()  # the file gone: one rejection, however often it is read
        assert reloader.reload(source="file").status == "rejected"
        assert reloader.reload(source="file").status == "rejected"
        assert rejected() == 3

        write(path, good.replace("[esi]", "[notifications]\nkill = false\n\n[esi]"))
        assert reloader.reload(source="file").status == "applied"
        write(path, good.replace("[esi]", "[esi]\nbogus = 1"))  # the first typo, made again
        assert reloader.reload(source="file").status == "rejected"
        assert rejected() == 4
        assert metrics.value("wc_config_rejected") == 1
    finally:
        reloader.close()
        runtime.store.close()


def test_an_edit_to_a_number_that_is_not_finite_is_rejected_and_counted(tmp_path: Path) -> None:
    """``inf`` in a key bounded only from below (a wait forever) is refused like any bad value:
    counted, the running configuration kept, the key named."""
    path = tmp_path / "config.toml"
    good = GOOD.format(data=tmp_path / "data")
    write(path, good)
    runtime = Runtime(
        load_settings(path, environ={}).settings, data_dir=tmp_path / "data", config_path=path
    )
    metrics = Metrics()
    reloader = ConfigReloader(runtime, path, metrics=metrics)
    reloader.baseline()
    try:
        for bad in ("inf", "nan"):
            write(path, good.replace("[esi]", f"[hosted]\nrefresh_seconds = {bad}\n\n[esi]"))
            result = reloader.reload(source="file")
            assert result.status == "rejected"
            (problem,) = result.problems
            assert "hosted.refresh_seconds: Input should be a finite number" in problem
        assert metrics.value("wc_config_reloads_total", outcome="rejected") == 2
        assert metrics.value("wc_config_rejected") == 1
        assert runtime.settings.hosted.refresh_seconds == 300.0
    finally:
        reloader.close()
        runtime.store.close()
