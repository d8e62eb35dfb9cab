"""Storage and environment faults at start: one paragraph naming the path (or variable) and the
fix, no traceback, a non-zero exit. Each runs the real command in a subprocess on real files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import json_refusal, read_only_preexec
from wanderer_console.store.integrity import StorageError, check, check_file
from wanderer_console.store.sqlite import open_database

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

DB_NAME = "wanderer-console.db"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDERER_CONSOLE", "MAP_"))}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    return {**env, **extra}


def _config(tmp_path: Path, data_dir: Path) -> Path:
    path = tmp_path / "c.toml"
    # A map (never reached: these engines stop on their store first), since an engine without
    # one refuses to start as `config check` does.
    path.write_text(
        f'[console]\ndata_dir = "{data_dir}"\nstartup_suppression_seconds = 0\n'
        '[maps.home]\nurl = "http://127.0.0.1:9"\napi_key = "map-key-0d9e8f7a6b5c4d3e"\n'
    )
    path.chmod(0o600)  # it holds the map's key
    return path


def _run(
    argv: list[str], env: dict[str, str], *, preexec: object = None, wait: float = 30.0
) -> tuple[int | None, str, str]:
    """Run the console; a console still running after ``wait`` seconds is stopped (code None)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wanderer_console", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=preexec,  # type: ignore[arg-type]
    )
    try:
        out, err = proc.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.terminate()
        out, err = proc.communicate(timeout=15)
        return None, out, err
    return proc.returncode, out, err


def _one_paragraph(err: str, *needles: str, command: str = "") -> None:
    """One line, naming ``command`` (none: the engine itself)."""
    text = err.strip()
    assert "Traceback" not in text
    assert "\n" not in text, f"expected one paragraph, got:\n{text}"
    name = f"wanderer-console {command}" if command else "wanderer-console"
    assert text.startswith(f"{name}: cannot use the ")
    for needle in needles:
        assert needle in text


def _filled_database(path: Path, events: int = 3000) -> tuple[int, int]:
    """A real console database with enough events to span hundreds of pages."""
    conn = open_database(path)
    conn.executemany(
        "INSERT INTO events (tenant_id, event_id, source, type, received_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [("home", f"e{i}", "sse", "add_system", time.time(), "x" * 600) for i in range(events)],
    )
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (page_count,) = conn.execute("PRAGMA page_count").fetchone()
    conn.close()
    return int(page_size), int(page_count)


def _corrupt_pages(path: Path, page_size: int, pages: list[int]) -> None:
    with path.open("r+b") as handle:
        for page in pages:
            handle.seek((page - 1) * page_size)
            handle.write(os.urandom(page_size))


def test_random_bytes_database_gives_one_paragraph_error_without_traceback(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / DB_NAME
    db.write_bytes(os.urandom(40_960))
    config = _config(tmp_path, data)
    code, out, err = _run(["--config", str(config), "--no-ui"], _env(tmp_path))
    assert code == 1
    _one_paragraph(err, str(db), "not a SQLite database", "restore the latest backup")
    # Other commands that open the database say the same, not a traceback.
    code, out, err = _run(["tenant", "list", "--data-dir", str(data)], _env(tmp_path))
    assert code == 1
    assert set(json_refusal(out, err, "tenant list")) == {"error", "command", "exit_code"}
    _one_paragraph(err, str(db), "not a SQLite database", command="tenant list")


def test_corrupted_pages_refuse_start_with_recover_advice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / DB_NAME
    page_size, page_count = _filled_database(db)
    assert page_count > 100
    # Three pages of the events table and its indexes, far from the schema on page 1: the old
    # code started on this file, reported ready, and its retention task crash-looped.
    _corrupt_pages(db, page_size, [page_count // 2, page_count // 2 + 7, page_count - 3])
    config = _config(tmp_path, data)
    code, _out, err = _run(["--config", str(config), "--no-ui"], _env(tmp_path), wait=30)
    assert code is not None, "the console started on a damaged database"
    assert code == 1
    _one_paragraph(err, str(db), "damaged", "quick_check", f"sqlite3 {db} .recover")


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing-database"])
def test_read_only_data_dir_gives_one_paragraph_error_without_traceback(
    tmp_path: Path, existing: bool
) -> None:
    preexec = read_only_preexec()
    data = tmp_path / "data"
    data.mkdir()
    if existing:
        _filled_database(data / DB_NAME, events=10)
    config = _config(tmp_path, data)
    data.chmod(0o555)
    try:
        code, _out, err = _run(
            ["--config", str(config), "--no-ui"], _env(tmp_path), preexec=preexec, wait=30
        )
        # A command that opens the database without starting the engine says the same.
        list_code, list_out, list_err = _run(
            ["tenant", "list", "--data-dir", str(data)], _env(tmp_path), preexec=preexec
        )
    finally:
        data.chmod(0o755)
    for got, text, command in ((code, err, ""), (list_code, list_err, "tenant list")):
        assert got == 1
        _one_paragraph(
            text,
            f"cannot use the data directory {data}:",
            "not writable by this user",
            command=command,
        )
    assert "--data-dir" in err
    assert set(json_refusal(list_out, list_err, "tenant list")) == {"error", "command", "exit_code"}


def test_malformed_maps_json_env_names_the_variable(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "data")
    secret = "map-key-must-not-print"
    env = _env(tmp_path, WANDERER_CONSOLE_MAPS=f'{{"home": {{"api_key": "{secret}", ')
    for argv in (["config", "check", "--config", str(config)], ["--config", str(config)]):
        code, out, err = _run([*argv, "--no-ui"] if "check" not in argv else argv, env)
        assert code == 1
        assert "Traceback" not in err
        assert "(environment): WANDERER_CONSOLE_MAPS: invalid JSON" in err
        assert "fix it or unset it" in err
        assert secret not in err + out
        assert len(err.strip().splitlines()) == 2  # the problem, then the one-line verdict


def test_periodic_check_reports_damage_and_passes_a_sound_database(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    page_size, page_count = _filled_database(db)
    assert check_file(db) is None
    conn = sqlite3.connect(db)
    try:
        assert check(conn) is None
    finally:
        conn.close()
    _corrupt_pages(db, page_size, [page_count - 3])
    problem = check_file(db)
    assert problem is not None
    assert "\n" not in problem
    assert check_file(tmp_path / "absent.db") == "the database file is missing"
    assert not (tmp_path / "absent.db").exists()


def test_schema_from_a_newer_build_is_a_storage_error(tmp_path: Path) -> None:
    db = tmp_path / DB_NAME
    open_database(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = 999")
    conn.close()
    with pytest.raises(StorageError) as caught:
        open_database(db)
    assert str(db) in str(caught.value)
    assert "newer than this build" in str(caught.value)


async def test_damage_found_while_running_makes_ready_false_with_advice(tmp_path: Path) -> None:
    from tests.support import wait_for
    from wanderer_console.config.model import Settings
    from wanderer_console.runtime import Runtime
    from wanderer_console.server.health import readiness_problems

    data = tmp_path / "data"
    data.mkdir()
    page_size, page_count = _filled_database(data / DB_NAME)
    runtime = Runtime(Settings(), data_dir=data)
    runtime.maintenance.integrity_interval = 0.1
    await runtime.start()
    try:
        assert not any("damaged" in reason for reason in readiness_problems(runtime))
        _corrupt_pages(data / DB_NAME, page_size, [page_count - 3])
        await wait_for(lambda: runtime.maintenance.integrity_problem is not None, 10)
        reasons = readiness_problems(runtime)
        assert any("database damaged" in r and ".recover" in r for r in reasons), reasons
    finally:
        await runtime.stop()
