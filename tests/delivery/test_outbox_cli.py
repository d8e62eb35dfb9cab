"""``wanderer-console outbox list|retry|drop`` on a real database, as an operator runs them."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.pgtest import fresh_schema, pg_base_url
from tests.support import json_refusal
from wanderer_console.cli import main
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store import SqliteStore
from wanderer_console.store.postgres import PostgresStore
from wanderer_console.store.writes import StoreWriteError

PG = pytest.mark.postgresql


def _outbox(data: Path, *args: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console", "outbox", *args, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode == 0:
        return done.returncode, json.loads(done.stdout)
    return done.returncode, json_refusal(done.stdout, done.stderr, f"outbox {args[0]}")


def _seed(data: Path) -> None:
    """A rejected notification, two held by a dead webhook, one sent."""
    store = SqliteStore(data / "wanderer-console.db")
    try:
        dead = Target(TargetKind.WEBHOOK, "https://discord.example/api/webhooks/7/t", "home")
        alive = Target(TargetKind.WEBHOOK, "https://discord.example/api/webhooks/8/t", "home")
        notes = [
            Notification("home", NotificationType.KILL, f"k{i}", target, {"embeds": [{}]})
            for i, target in enumerate([alive, dead, dead, alive])
        ]
        store.enqueue(notes)
        rows = {row.dedup_key: row.id for row in store.due_outbox(2e9, limit=10)}
        store.mark_failed(rows["k0"], error="Discord refused it: 400 Invalid Form Body")
        store.set_dead_target(
            "home", dead.key, reason="404 Unknown Webhook", fingerprint="f", now=1.0
        )
        store.mark_sent(rows["k3"])
    finally:
        store.close()


@pytest.mark.slow
def test_outbox_list_shows_failed_and_held_rows_with_reasons_and_retry_requeues(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    _seed(data)
    code, listing = _outbox(data, "list")
    assert code == 0
    assert listing["dead_targets"] == [
        {"target": "webhook:7", "tenant": "home", "reason": "404 Unknown Webhook"}
    ]
    rows = listing["notifications"]
    assert isinstance(rows, list)
    held = [row for row in rows if row["held"]]
    failed = [row for row in rows if row["status"] == "failed"]
    assert [row["target_key"] for row in held] == ["webhook:7", "webhook:7"]
    assert failed[0]["last_error"] == "Discord refused it: 400 Invalid Form Body"

    code, answer = _outbox(data, "retry", "webhook:8")
    assert code == 0
    assert answer["requeued"] == 1
    code, answer = _outbox(data, "retry", "webhook:7")
    assert code == 0
    conn = sqlite3.connect(data / "wanderer-console.db")
    try:
        dead = conn.execute("SELECT COUNT(*) FROM dead_targets").fetchone()[0]
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY 1").fetchall())
    finally:
        conn.close()
    assert dead == 0  # the engine sees the revived target at its next look
    assert statuses == {"pending": 3, "sent": 1}


@pytest.mark.slow
def test_outbox_list_holds_only_the_rows_of_the_map_whose_mark_is_dead(tmp_path: Path) -> None:
    """Two maps post to one webhook, Discord refused it for map ``home`` only: ``other``'s
    pending notifications are being sent, so they are not listed (as held or at all)."""
    data = tmp_path / "data"
    store = SqliteStore(data / "wanderer-console.db")
    try:
        url = "https://discord.example/api/webhooks/7/t"
        notes = [
            Notification(
                map_id,
                NotificationType.KILL,
                f"{map_id}-{i}",
                Target(TargetKind.WEBHOOK, url, map_id),
                {"embeds": [{}]},
            )
            for map_id, count in (("home", 2), ("other", 3))
            for i in range(count)
        ]
        store.enqueue(notes)
        key = notes[0].target.key
        store.set_dead_target("home", key, reason="404 Unknown Webhook", fingerprint="f", now=1.0)
    finally:
        store.close()

    code, listing = _outbox(data, "list")
    assert code == 0
    assert listing["dead_targets"] == [
        {"target": key, "tenant": "home", "reason": "404 Unknown Webhook"}
    ]
    rows = listing["notifications"]
    assert isinstance(rows, list)
    assert [(row["tenant_id"], row["target_key"], row["held"]) for row in rows] == [
        ("home", key, True),
        ("home", key, True),
    ]


@pytest.mark.slow
def test_outbox_list_names_every_maps_dead_mark_of_a_shared_webhook(tmp_path: Path) -> None:
    """Discord refused one webhook for both maps posting to it: both dead marks are listed
    (each map needs its own fix or retry), not the last one read for the target key."""
    data = tmp_path / "data"
    store = SqliteStore(data / "wanderer-console.db")
    try:
        key = Target(TargetKind.WEBHOOK, "https://discord.example/api/webhooks/7/t", "home").key
        for map_id, reason in (("home", "404 Unknown Webhook"), ("other", "401 Unauthorized")):
            store.set_dead_target(map_id, key, reason=reason, fingerprint="f", now=1.0)
    finally:
        store.close()

    code, listing = _outbox(data, "list")
    assert code == 0
    dead = listing["dead_targets"]
    assert isinstance(dead, list)
    assert sorted(dead, key=lambda d: d["tenant"]) == [
        {"target": key, "tenant": "home", "reason": "404 Unknown Webhook"},
        {"target": key, "tenant": "other", "reason": "401 Unauthorized"},
    ]


@pytest.mark.slow
def test_outbox_drop_gives_up_on_failed_rows_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _seed(data)
    code, answer = _outbox(data, "drop", "webhook:8")
    assert code == 0
    assert answer["dropped"] == 1  # the failed one; the sent one is untouched
    code, answer = _outbox(data, "drop")
    assert code == 2
    assert "TARGET" in str(answer["error"])


def test_a_failed_write_reports_the_real_error_not_the_rollback(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    try:
        target = Target(TargetKind.WEBHOOK, "https://discord.example/api/webhooks/9/t", "home")
        store._conn.execute("PRAGMA max_page_count = 1")  # the file cannot grow: disk full
        big = {"embeds": [{"description": "x" * 50_000}]}
        note = Notification("home", NotificationType.KILL, "big", target, big)
        try:
            store.enqueue([note])
        except StoreWriteError as exc:
            error = str(exc)
        else:
            raise AssertionError("the write should have failed")
        assert "full" in error
        assert "rollback" not in error
        assert store.write_fault is not None
        store._conn.execute("PRAGMA max_page_count = 1000000")
        store.enqueue([note])  # a write succeeds: the fault clears
        assert store.write_fault is None
    finally:
        store.close()


@pytest.mark.parametrize("action", [["drop", "webhook:8"], ["retry", "webhook:7"], ["list"]])
def test_a_config_that_does_not_load_is_refused_not_swapped_for_the_default_data_dir(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    action: list[str],
) -> None:
    """``--config`` names the engine's data directory; while that file has a typo in it, the
    command must say so, not act on (or list) the outbox of the default data directory."""
    engine_data, xdg = tmp_path / "engine-data", tmp_path / "xdg-data"
    default_data = xdg / "wanderer-console"  # e.g. left by a demo run
    _seed(engine_data)
    _seed(default_data)
    monkeypatch.setenv("XDG_DATA_HOME", str(xdg))
    config = tmp_path / "config.toml"
    config.write_text(f'[console]\ndata_dir = "{engine_data}"\ndry_rn = true\n', encoding="utf-8")

    def outbox_rows(data: Path) -> list[tuple[str, str]]:
        conn = sqlite3.connect(data / "wanderer-console.db")
        try:
            rows = conn.execute("SELECT dedup_key, status FROM outbox ORDER BY id").fetchall()
            dead = conn.execute("SELECT target_key FROM dead_targets").fetchall()
        finally:
            conn.close()
        return [*rows, *dead]

    before = {data: outbox_rows(data) for data in (engine_data, default_data)}

    code = main(["outbox", *action, "--config", str(config)])

    out = capsys.readouterr()
    assert code == 1
    error = json_refusal(out.out, out.err, f"outbox {action[0]}")["error"]
    assert f"{config}:3: console.dry_rn: unknown key" in error
    assert "--data-dir" in error
    assert {data: outbox_rows(data) for data in before} == before


def test_retry_of_a_target_with_nothing_to_retry_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped target (``webhook:77`` for ``webhook:7``) revived nothing, yet the command
    answered ``"revived": true`` and exited 0: the held notifications stayed held."""
    data = tmp_path / "data"
    _seed(data)

    code = main(["outbox", "retry", "webhook:77", "--data-dir", str(data)])

    out = capsys.readouterr()
    assert code == 1
    answer = json_refusal(out.out, out.err, "outbox retry")
    assert answer["database"] == str(data / "wanderer-console.db")
    error = answer["error"]
    assert error.startswith("nothing to retry for webhook:77: ")
    assert "outbox list" in error

    # A target that is not dead but has failed notifications: they are queued again.
    assert main(["outbox", "retry", "webhook:8", "--data-dir", str(data)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "database": str(data / "wanderer-console.db"),
        "target": "webhook:8",
        "held_released": 0,
        "requeued": 1,
        "revived": False,
    }
    # The dead one: revived, its held notifications (pending, not failed) go out again.
    assert main(["outbox", "retry", "webhook:7", "--data-dir", str(data)]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "database": str(data / "wanderer-console.db"),
        "target": "webhook:7",
        "held_released": 2,
        "requeued": 0,
        "revived": True,
    }


@pytest.mark.slow
def test_dropping_an_id_that_is_not_failed_or_does_not_exist_says_so_and_fails(
    tmp_path: Path,
) -> None:
    """``drop --id 999`` (a typo) or the id of a sent or queued row gives nothing up: the
    operator must be told which ids were left and why, with a non-zero exit, not a quiet
    ``dropped: 0`` that reads as done."""
    data = tmp_path / "data"
    _seed(data)  # ids: 1 failed, 2 and 3 held (pending), 4 sent

    def statuses() -> dict[int, str]:
        conn = sqlite3.connect(data / "wanderer-console.db")
        try:
            return dict(conn.execute("SELECT id, status FROM outbox").fetchall())
        finally:
            conn.close()

    before = statuses()
    for row_id in ("999", "4", "2"):
        code, answer = _outbox(data, "drop", "--id", row_id)
        assert code == 1, (row_id, answer)
        assert f"#{row_id}" in str(answer["error"])
        assert answer["not_dropped"] == [int(row_id)]
    assert statuses() == before  # nothing given up

    code, answer = _outbox(data, "drop", "--id", "1", "--id", "999")
    assert code == 1
    assert answer["dropped"] == 1
    assert answer["not_dropped"] == [999]
    assert statuses()[1] == "dropped"

    code, answer = _outbox(data, "drop", "webhook:9")  # a mistyped target
    assert code == 1
    assert "nothing to drop for webhook:9" in str(answer["error"])


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgresql", marks=PG)])
@pytest.mark.parametrize("limit", ["-1", "0"])
def test_a_limit_that_is_not_a_positive_count_is_refused(
    tmp_path: Path, kind: str, limit: str
) -> None:
    """``--limit -1`` listed everything on SQLite and ended in PostgreSQL's traceback
    (``LIMIT must not be negative``); ``--limit 0`` listed nothing and read as "all is well"."""
    data = tmp_path / "data"
    where = ["--data-dir", str(data)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDERER_CONSOLE_STORE")}
    with contextlib.ExitStack() as stack:
        if kind == "postgresql":  # (not `backend`: that name runs PostgreSQL only in store/)
            url = stack.enter_context(fresh_schema(pg_base_url()))
            PostgresStore(url).close()  # the schema the engine would have created
            env["WANDERER_CONSOLE_STORE__URL"] = url.secret()
        else:
            _seed(data)
        done = subprocess.run(
            [sys.executable, "-m", "wanderer_console", "outbox", "list", "--limit", limit, *where],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=env,
        )
    assert done.returncode == 2, done
    assert "Traceback" not in done.stderr
    assert "--limit" in done.stderr
    assert "a whole number of 1 or more" in done.stderr
