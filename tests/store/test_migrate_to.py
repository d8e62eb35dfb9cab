"""``wanderer-console db migrate-to`` and ``db status``: a data directory the engine filled on
SQLite moves to PostgreSQL whole, and the PostgreSQL-backed engine carries on from it.

The end-to-end test runs the real engine over the simulator on SQLite (some kills delivered,
then delivery paused so more stay pending), copies the data directory, compares every table row
for row, then starts an engine on PostgreSQL over the same simulator and data directory: the
pending notifications reach the fake Discord once each, the delivered ones are not sent again,
and the same kills replayed by the killstream are not notified twice (the copied event log is
the dedup authority). The refusals (an engine holding the data directory, a target holding data)
and the masked password are checked through the command line.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from tests.store.pgtest import fresh_schema, pg_base_url
from tests.support import connected, posted_kills, wait_for
from wanderer_console.cli import main
from wanderer_console.command import EXIT_IN_USE, EXIT_INVALID, EXIT_OK
from wanderer_console.config.audit import ConfigAudit
from wanderer_console.delivery.hold import PAUSE_FILE, read_saved_pause
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.sim import Simulator
from wanderer_console.store.base import ClusterPause, DatabaseUrl, StoredEvent
from wanderer_console.store.lock import DataDirLock
from wanderer_console.store.migrate import TABLES, TargetInUseError, migrate_data_dir
from wanderer_console.store.postgres import PostgresStore
from wanderer_console.store.sqlite import DB_NAME, SqliteStore

pytestmark = pytest.mark.postgresql

_ORDER = {
    "events": "tenant_id, event_id",
    "cursors": "stream",
    "outbox": "tenant_id, dedup_key",
    "dead_targets": "tenant_id, target_key",
    "tenants": "slug",
    "hosted_maps": "map_id",
    "map_routes": "tenant_id",
    "config_audit": "id",
    "cache_entries": "namespace, key, version",
    "alert_history": "id",
    "trend_minutes": "minute, instance",
    "priority_systems": "name_key",
    "priority_audit": "id",
}


@pytest.fixture
def sim_options() -> dict[str, Any]:
    # A roomy webhook limit: the test is about what is sent, not about Discord's pacing.
    return {"seed": 5, "discord_webhook_limit": 100}


@pytest.fixture
def url() -> Iterator[DatabaseUrl]:
    with fresh_schema() as fresh:
        yield fresh


def _pg(url: DatabaseUrl) -> Any:
    import psycopg

    return psycopg.connect(url.secret(), autocommit=True)


def _kill(sim: Simulator, i: int) -> dict[str, Any]:
    # In a tracked system, no tracked pilot on it: one notification per kill.
    system_id = sorted(sim.tracked_system_ids)[i % 3]
    return sim.generator.make_killmail(
        system_id=system_id, exclude_character_ids=sim.tracked_character_ids
    )


def _rows(conn: Any, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return [tuple(r) for r in conn.execute(f"SELECT {cols} FROM {table} ORDER BY {_ORDER[table]}")]


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [str(row[1]) for row in src.execute(f"PRAGMA table_info({table})")]


def _migrate(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["db", "migrate-to", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _note(
    tenant: str, key: str, hook: str = "https://discord.com/api/webhooks/9/t"
) -> Notification:
    target = Target(TargetKind.WEBHOOK, hook, tenant)
    return Notification(tenant, NotificationType.KILL, key, target, {"embeds": [{"title": key}]})


def _small_data_dir(path: Path, tenant: str = "home", events: int = 3) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(path / DB_NAME)
    try:
        for i in range(events):
            store.record_event(
                StoredEvent(tenant, f"{tenant}-e{i}", f"sse:{tenant}", "add_system", 1.0 + i, "{}"),
                [_note(tenant, f"{tenant}-k{i}")],
                cursor=(f"sse:{tenant}", f"01{i}"),
                now=10.0 + i,
            )
    finally:
        store.close()
    return path


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_populated_data_dir_moves_over_and_its_pending_outbox_is_delivered_once(
    sim: Simulator, tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    data.mkdir()

    # 1. The engine on SQLite: three kills delivered, then delivery paused and six more queued.
    first = Runtime(demo_settings(sim, data_dir=data), data_dir=data)
    await first.start()
    try:
        await connected(first)
        sent = [_kill(sim, i) for i in range(3)]
        for kill in sent:
            await sim.killstream.push_kill(kill)
        await wait_for(lambda: all(posted_kills(sim)[k["killmail_id"]] for k in sent))
        await wait_for(
            lambda: not {"pending", "sending"} & set(first.store.outbox_counts()),
            what="the outbox settled",
        )
        first.dispatcher.paused = True
        held = [_kill(sim, i) for i in range(6)]
        for kill in held:
            await sim.killstream.push_kill(kill)
        await wait_for(
            lambda: all(first.store.has_event("*", f"kill:{k['killmail_id']}") for k in held)
        )
        await first.drain(timeout=3.0)
    finally:
        await first.stop()
    assert sum(posted_kills(sim).values()) == 3

    # The rest of what a data directory holds: a tenant, a config change, a dead target and a
    # notification given up on (another tenant's, so the engine below leaves them alone).
    path = data / DB_NAME
    now = time.time()
    TenantRegistry(path).add("home", now=now)
    audit = ConfigAudit(path)
    audit.record("console", None, "[console]\n", {"status": "applied"}, now=now)
    audit.close()
    store = SqliteStore(path)
    try:
        store.enqueue([_note("gone", "gone-1")], now=now)
        (row,) = [r for r in store.due_outbox(now=now + 1, limit=1000) if r.tenant_id == "gone"]
        store.claim([row.id], send_id="send-1", now=now)
        store.mark_failed(row.id, error="400: Invalid Form Body")
        store.set_dead_target("gone", "webhook:9", reason="404", fingerprint="f", now=now)
        pending = store.outbox_counts()
    finally:
        store.close()
    assert pending.get("pending", 0) >= len(held)

    # 2. Moved over.
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err
    report = json.loads(out)
    assert report["verified"] is True
    assert report["target"]["mode"] == "empty"
    assert report["outbox"]["source"] == report["outbox"]["target"] == pending
    src = sqlite3.connect(path)
    with _pg(url) as dst:
        for table in TABLES:
            counts = report["tables"][table.name]
            assert counts["source"] == counts["target"] == counts["copied"], table.name
            assert counts["verified"], table.name
            columns = _columns(src, table.name)
            assert _rows(src, table.name, columns) == _rows(dst, table.name, columns), table.name
        assert report["tables"]["events"]["source"] >= 9
        assert report["tables"]["cursors"]["source"] >= 1
        for name in ("tenants", "config_audit", "dead_targets"):
            assert report["tables"][name]["source"] >= 1, name
        failed = dst.execute(
            "SELECT status, attempts, last_error FROM outbox WHERE tenant_id = 'gone'"
        ).fetchone()
        assert failed == ("failed", 1, "400: Invalid Form Body")
    src.close()

    # 3. The engine on PostgreSQL, same simulator, same data directory.
    settings = demo_settings(sim, data_dir=data)
    settings.store.url = SecretStr(url.secret())
    second = Runtime(settings, data_dir=data)
    await second.start()
    try:
        assert isinstance(second.store, PostgresStore)
        await connected(second)
        await wait_for(lambda: all(posted_kills(sim)[k["killmail_id"]] for k in held), timeout=30)
        # The same kills again (a replayed stream): the copied event log knows them all. A new
        # kill behind them, on the same socket, shows they have been decided.
        for kill in sent + held:
            await sim.killstream.push_kill(kill)
        marker = _kill(sim, 0)
        await sim.killstream.push_kill(marker)
        await wait_for(lambda: posted_kills(sim)[marker["killmail_id"]], timeout=30)
        await second.drain(timeout=3.0)
        outbox_after = second.store.outbox_counts()
    finally:
        await second.stop()
    counts = posted_kills(sim)
    assert [counts[k["killmail_id"]] for k in sent] == [1] * len(sent)
    assert [counts[k["killmail_id"]] for k in held] == [1] * len(held)
    assert counts[marker["killmail_id"]] == 1
    assert sum(counts.values()) == len(sent) + len(held) + 1
    assert outbox_after.get("failed") == 1  # the given-up one stays given up
    assert "sending" not in outbox_after
    with _pg(url) as dst:
        (events,) = dst.execute("SELECT COUNT(*) FROM events").fetchone()
        # New events got ids after the copied ones (the identity sequence moved past them).
        (dupes,) = dst.execute(
            "SELECT COUNT(*) FROM (SELECT id FROM events GROUP BY id HAVING COUNT(*) > 1) d"
        ).fetchone()
    assert events >= report["tables"]["events"]["source"]
    assert dupes == 0


def test_every_outbox_state_is_copied_with_its_send_id_attempts_and_uncertain_count(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _small_data_dir(tmp_path / "data", events=4)
    store = SqliteStore(data / DB_NAME)
    try:
        a, b, c, d = (row.id for row in store.due_outbox(now=100.0, limit=10))
        store.claim([a], send_id="in-flight", now=100.0)  # sending at a crash
        store.claim([b], send_id="unknown", now=100.0)
        store.release(
            [b], next_attempt_at=200.0, error="timeout", keep_send_id=True, uncertain=True
        )
        store.claim([c], send_id="done", now=100.0)
        store.mark_sent(c, now=101.0)
        store.claim([d], send_id="refused", now=100.0)
        store.mark_failed(d, error="400: bad embed")
        (failed,) = store.failed_rows()
        assert store.revive_target(failed.target_key).requeued == 1  # retried …
        store.mark_failed(d, error="400: bad embed")  # … and refused again: its age restarted
        store.save_cache_entries([("names", "1", 3, '"Jita"', 9e9)])
    finally:
        store.close()
    code, _out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err
    src = sqlite3.connect(data / DB_NAME)
    with _pg(url) as dst:
        for table in ("outbox", "cache_entries", "events", "cursors"):
            columns = _columns(src, table)
            assert _rows(src, table, columns) == _rows(dst, table, columns), table
        rows = dst.execute(
            "SELECT status, send_id, attempts, uncertain, next_attempt_at FROM outbox ORDER BY id"
        ).fetchall()
        aged_from = dst.execute("SELECT aged_from FROM outbox ORDER BY id").fetchall()
    src.close()
    assert rows[0][:2] == ("sending", "in-flight")
    assert rows[1] == ("pending", "unknown", 1, 1, 200.0)
    assert rows[2][0] == "sent"
    assert rows[3][0] == "failed"
    assert [at is not None for (at,) in aged_from] == [False, False, False, True]
    store2 = PostgresStore(url)
    try:  # the next engine sees the in-flight row as in flight (re-sent under its send id)
        assert [(row[0], row[2]) for row in store2.recover_in_flight()] == [(a, "in-flight")]
    finally:
        store2.close()


def test_refused_while_an_engine_holds_the_data_dir(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _small_data_dir(tmp_path / "data")
    lock = DataDirLock(data)
    lock.acquire()  # what the engine takes at start
    try:
        code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    finally:
        lock.release()
    assert code == EXIT_IN_USE
    assert f"PID {os.getpid()}" in err
    assert "in use by an engine" in err
    assert json.loads(out)["holder"].startswith(f"PID {os.getpid()}")
    with _pg(url) as dst:  # nothing touched: not even the schema
        tables = dst.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchone()
    assert tables == (0,)
    # Once it is free, the copy goes through.
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err


def test_a_target_holding_data_is_refused_unless_forced_or_appended(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _small_data_dir(tmp_path / "home", "home", events=3)
    away = _small_data_dir(tmp_path / "away", "away", events=2)
    assert _migrate(capsys, url.secret(), "--data-dir", str(home))[0] == EXIT_OK

    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(away))
    assert code == EXIT_INVALID
    assert "already holds console data (events 3, cursors 1, outbox 3)" in err
    assert "--force" in err
    assert "--append" in err
    assert json.loads(out)["target_rows"]["events"] == 3
    with _pg(url) as dst:
        assert dst.execute("SELECT COUNT(*) FROM events").fetchone() == (3,)

    # --append merges: both maps' rows, new ids after the target's, and a copied notification
    # is dispatched after the ones already there.
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(away), "--append")
    assert code == EXIT_OK, err
    report = json.loads(out)
    assert report["tables"]["events"] == {
        "copied": 2,
        "source": 2,
        "source_rows_in_target": 2,
        "target": 5,
        "target_before": 3,
        "verified": True,
    }
    with _pg(url) as dst:
        ids = dst.execute("SELECT tenant_id, id FROM outbox ORDER BY id").fetchall()
        streams = dict(dst.execute("SELECT stream, value FROM cursors").fetchall())
    assert [tenant for tenant, _ in ids] == ["home"] * 3 + ["away"] * 2
    assert streams == {"sse:home": "012", "sse:away": "011"}
    # Appending the same directory again changes nothing (its rows are all there).
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(away), "--append")
    assert code == EXIT_OK, err
    assert json.loads(out)["tables"]["events"]["copied"] == 0

    # --force replaces: only the away map's rows, with its own ids.
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(away), "--force")
    assert code == EXIT_OK, err
    assert json.loads(out)["target"]["mode"] == "replace"
    with _pg(url) as dst:
        assert dst.execute("SELECT tenant_id, id FROM outbox ORDER BY id").fetchall() == [
            ("away", 1),
            ("away", 2),
        ]
    store = PostgresStore(url)
    try:  # the engine's next rows come after the copied ids
        store.enqueue([_note("away", "new")], now=50.0)
        assert [r.id for r in store.due_outbox(now=60.0, limit=10)] == [1, 2, 3]
    finally:
        store.close()


def test_config_versions_an_older_build_stored_with_secrets_are_scrubbed_in_the_target(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    # The target already serves an engine: its config history was opened (and swept) there.
    home = _small_data_dir(tmp_path / "home", "home", events=1)
    assert _migrate(capsys, url.secret(), "--data-dir", str(home))[0] == EXIT_OK
    ConfigAudit(url).close()
    # A data directory an older build left: a version stored in full, its secret included,
    # copied before any engine of this build opened its history.
    away = _small_data_dir(tmp_path / "away", "away", events=1)
    secret = "https://discord.com/api/webhooks/77/Sw0rdfish-webhook-token"
    text = f'[maps.away]\nurl = "http://127.0.0.1:9"\ndiscord.webhook_url = "{secret}"\n'
    with sqlite3.connect(away / DB_NAME) as old:
        old.execute(
            "INSERT INTO config_audit (at, source, path, diff, content) VALUES (?, ?, ?, ?, ?)",
            (5.0, "file", "/etc/wc.toml", '{"status": "applied"}', text),
        )
    old.close()
    code, _out, err = _migrate(capsys, url.secret(), "--data-dir", str(away), "--append")
    assert code == EXIT_OK, err

    ConfigAudit(url).close()  # as the PostgreSQL engine opens it at its start
    with _pg(url) as dst:
        contents = [row[0] for row in dst.execute("SELECT content FROM config_audit")]
    assert contents
    assert not [content for content in contents if "Sw0rdfish" in content]


def test_refused_while_engines_run_on_the_target(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _small_data_dir(tmp_path / "data")
    store = PostgresStore(url)  # the target's schema, as an engine leaves it
    store.close()
    with _pg(url) as dst:
        dst.execute(
            "INSERT INTO instances (instance_id, host, pid, version, started_at,"
            " heartbeat_at, expires_at, stopped_at) VALUES"
            " ('h2:977:ab', 'h2', 977, 'v', 0, 0, extract(epoch from now()) + 60, NULL),"
            " ('h3:12:cd', 'h3', 12, 'v', 0, 0, extract(epoch from now()) - 60, NULL)"
        )
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data), "--append")
    assert code == EXIT_IN_USE
    assert "in use by 1 running engine(s): h2:977:ab (PID 977 on host h2)" in err
    assert json.loads(out)["engines"] == [{"instance": "h2:977:ab", "host": "h2", "pid": 977}]
    with _pg(url) as dst:
        assert dst.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)
        dst.execute("UPDATE instances SET stopped_at = 1 WHERE instance_id = 'h2:977:ab'")
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err  # the dead and the stopped are no obstacle


def test_an_engine_starting_on_the_target_during_the_copy_rolls_it_back(
    tmp_path: Path, url: DatabaseUrl
) -> None:
    data = _small_data_dir(tmp_path / "data")

    def engine_starts(line: str) -> None:
        if "events:" in line:  # mid-copy: an engine registers itself in the target
            with _pg(url) as other:
                other.execute(
                    "INSERT INTO instances (instance_id, host, pid, version, started_at,"
                    " heartbeat_at, expires_at, stopped_at) VALUES ('h2:977:ab', 'h2', 977,"
                    " 'v', 0, 0, extract(epoch from now()) + 60, NULL)"
                )

    with pytest.raises(TargetInUseError, match=r"h2:977:ab \(PID 977 on host h2\)"):
        migrate_data_dir(data, url, saved_pause=read_saved_pause, progress=engine_starts)
    with _pg(url) as dst:
        assert dst.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)


def test_the_password_is_never_printed(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _small_data_dir(tmp_path / "data")
    user, _, rest = url.secret().partition("://")[2].partition(":")
    password = rest.partition("@")[0]
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err
    assert f"{user}:***@" in out
    assert f"{user}:***@" in err
    assert f":{password}@" not in out + err

    # A wrong password: refused by the server, and the attempt does not print it either.
    wrong = url.secret().replace(f":{password}@", ":Sw0rdfish-not-it@", 1)
    code, out, err = _migrate(capsys, wrong, "--data-dir", str(data))
    assert code == EXIT_INVALID
    assert "password authentication failed" in err
    assert "Sw0rdfish-not-it" not in out + err

    assert main(["db", "status", "--database", wrong, "--data-dir", str(data)]) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert "Sw0rdfish-not-it" not in out + err


def test_db_status_on_both_backends(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _small_data_dir(tmp_path / "data")
    lock = DataDirLock(data)
    lock.acquire()
    try:
        assert main(["db", "status", "--data-dir", str(data)]) == EXIT_OK
    finally:
        lock.release()
    sqlite_doc = json.loads(capsys.readouterr().out)
    assert sqlite_doc["backend"] == "sqlite"
    assert sqlite_doc["schema_version"] == sqlite_doc["build_schema_version"]
    assert sqlite_doc["schema"] == "current"
    assert sqlite_doc["tables"]["events"] == 3
    assert sqlite_doc["outbox"] == {"pending": 3}
    assert sqlite_doc["engine"]["running"] is True
    assert sqlite_doc["engine"]["pid"] == os.getpid()
    _check_instances(sqlite_doc)

    # An empty PostgreSQL database: nothing created by looking at it.
    assert main(["db", "status", "--database", url.secret(), "--data-dir", str(data)]) == EXIT_OK
    empty = json.loads(capsys.readouterr().out)
    assert empty["backend"] == "postgresql"
    assert empty["schema_version"] is None
    assert empty["tables"] == {}
    assert empty["engine"]["running"] is False

    assert _migrate(capsys, url.secret(), "--data-dir", str(data))[0] == EXIT_OK
    assert main(["db", "status", "--database", url.secret(), "--data-dir", str(data)]) == EXIT_OK
    pg_doc = json.loads(capsys.readouterr().out)
    assert pg_doc["schema_version"] == sqlite_doc["schema_version"]
    assert pg_doc["tables"] == sqlite_doc["tables"]
    assert pg_doc["outbox"] == sqlite_doc["outbox"]
    assert "***" in pg_doc["database"]
    _check_instances(pg_doc)
    if "leases" in pg_doc["tables"]:
        # Two instances, one alive holding a map, one gone; a lease left by the gone one.
        with _pg(url) as dst:
            dst.execute(
                "INSERT INTO instances (instance_id, host, pid, version, started_at,"
                " heartbeat_at, expires_at, stopped_at) VALUES"
                " ('a', 'h1', 1, 'v', 0, 0, extract(epoch from now()) + 60, NULL),"
                " ('b', 'h2', 2, 'v', 0, 0, extract(epoch from now()) - 60, NULL)"
            )
            dst.execute(
                "INSERT INTO leases (resource, owner, token, expires_at) VALUES"
                " ('map:home', 'a', 3, extract(epoch from now()) + 60),"
                " ('map:away', 'b', 1, extract(epoch from now()) - 60)"
            )
        argv = ["db", "status", "--database", url.secret(), "--data-dir", str(data)]
        assert main(argv) == EXIT_OK
        cluster = json.loads(capsys.readouterr().out)["instances"]
        assert cluster["alive"] == ["a"]
        assert cluster["held"] == {"map:home": "a"}
        assert [row["held"] for row in cluster["leases"]] in ([True, False], [False, True])


def _check_instances(doc: dict[str, Any]) -> None:
    """With the schema's instance registry and leases (version 8) they are listed (none held
    here), without them ``db status`` says why."""
    instances = doc["instances"]
    if "leases" in doc["tables"]:
        assert instances["available"] is True
        assert instances["held"] == {}
        assert instances["alive"] == []
    else:
        assert instances["available"] is False
        assert "one engine per data directory" in instances["why"]


def test_db_status_without_a_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_base_url()  # the module's tests need the server; this one only the file system
    assert main(["db", "status", "--data-dir", str(tmp_path)]) == EXIT_INVALID
    assert "there is no database file" in capsys.readouterr().err
    assert not (tmp_path / DB_NAME).exists()


def _paused(data: Path, saved: str) -> Path:
    """The pause file an engine alone leaves in its data directory while delivery is paused."""
    (data / PAUSE_FILE).write_text(saved, encoding="utf-8")
    return data


def test_a_paused_data_dir_arrives_paused_for_every_engine_on_the_database(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    """An operator who paused on SQLite, then moved to PostgreSQL, starts the cluster paused:
    the pause is the database's now, who paused and since when kept, the copy named as where
    it was sent."""
    data = _paused(
        _small_data_dir(tmp_path / "data"),
        json.dumps({"paused_by": "tui:alice@laptop via socket", "paused_at": 1_765_000_000.5}),
    )
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err
    found = _cluster_pause_of(url)
    assert found is not None
    assert (found.actor, found.since) == ("tui:alice@laptop via socket", 1_765_000_000.5)
    assert "db migrate-to" in found.instance
    report = json.loads(out)
    assert report["pause"]["carried"] is True
    assert report["pause"]["data_dir"]["paused_by"] == "tui:alice@laptop via socket"
    assert report["pause"]["target"]["paused_by"] == "tui:alice@laptop via socket"
    assert "paused on every engine" in report["next"]
    assert "delivery paused on every engine" in err
    assert (data / PAUSE_FILE).exists()  # the SQLite copy left behind stays paused too


def _cluster_pause_of(url: DatabaseUrl) -> ClusterPause | None:
    """The cluster's pause as the database holds it now."""
    store = PostgresStore(url)
    try:
        return store.cluster_pause()
    finally:
        store.close()


def test_appending_onto_a_paused_database_keeps_the_databases_pause(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _small_data_dir(tmp_path / "home", "home")
    away = _paused(
        _small_data_dir(tmp_path / "away", "away", events=2),
        json.dumps({"paused_by": "ops:alice", "paused_at": 1_765_000_000.0}),
    )
    assert _migrate(capsys, url.secret(), "--data-dir", str(home))[0] == EXIT_OK
    store = PostgresStore(url)
    try:
        first = store.pause_cluster("ops:carol", "vps1:4242:ab")
        code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(away), "--append")
        assert code == EXIT_OK, err
        assert store.cluster_pause() == first  # who paused first, and when, as a pause keeps
    finally:
        store.close()
    report = json.loads(out)["pause"]
    assert report["carried"] is False
    assert report["target"]["paused_by"] == "ops:carol"
    assert report["data_dir"]["paused_by"] == "ops:alice"
    assert "already paused" in err
    assert "ops:carol" in err


@pytest.mark.parametrize(
    "saved",
    ['{"paused_by": "ops:b', None],
    ids=["truncated", "unreadable"],
)
def test_a_damaged_pause_file_arrives_paused_and_says_so(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str], saved: str | None
) -> None:
    """The engine treats a pause file it cannot read as a pause (it exists only because an
    operator paused): so does the copy, and it says the file was damaged."""
    data = _small_data_dir(tmp_path / "data")
    if saved is None:
        (data / PAUSE_FILE).mkdir()  # cannot be read as a file
    else:
        _paused(data, saved)
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err
    found = _cluster_pause_of(url)
    assert found is not None
    assert found.actor.startswith("unknown (the saved pause")
    assert found.since == 0.0  # no time made up for it
    report = json.loads(out)["pause"]
    assert report["carried"] is True
    assert report["data_dir"]["damaged"]
    assert "damaged" in err or "could not be read" in err


def test_an_unpaused_data_dir_leaves_the_database_unpaused(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _small_data_dir(tmp_path / "data")
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err
    store = PostgresStore(url)
    try:
        assert store.cluster_pause() is None
    finally:
        store.close()
    assert json.loads(out)["pause"] == {"carried": False, "data_dir": None, "target": None}


def test_a_secret_in_who_paused_is_masked_in_the_output(
    tmp_path: Path, url: DatabaseUrl, capsys: pytest.CaptureFixture[str]
) -> None:
    """Who paused may carry an error's words, a database URL with its password among them."""
    actor = "unknown (the cluster's pause could not be read: postgresql://wc:hunter2secret@db/wc)"
    data = _paused(
        _small_data_dir(tmp_path / "data"), json.dumps({"paused_by": actor, "paused_at": 5.0})
    )
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data))
    assert code == EXIT_OK, err
    assert "hunter2secret" not in out + err
    assert "delivery paused on every engine" in err


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_paused_data_dir_forced_over_a_database_starts_its_engine_paused(
    sim: Simulator,
    tmp_path: Path,
    url: DatabaseUrl,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``--force`` over a database holding another directory's rows: the pause is carried all
    the same, and the engine then started on the database with the moved data directory starts
    paused, says so, and sends nothing of the backlog."""
    other = _small_data_dir(tmp_path / "other", "away")
    assert _migrate(capsys, url.secret(), "--data-dir", str(other))[0] == EXIT_OK
    data = _paused(
        _small_data_dir(tmp_path / "data"),
        json.dumps({"paused_by": "tui:alice@laptop via socket", "paused_at": 1_765_000_000.5}),
    )
    code, out, err = _migrate(capsys, url.secret(), "--data-dir", str(data), "--force")
    assert code == EXIT_OK, err
    assert json.loads(out)["pause"]["carried"] is True

    settings = demo_settings(sim, data_dir=data)
    settings.store.url = SecretStr(url.secret())
    engine = Runtime(settings, data_dir=data)
    with caplog.at_level(logging.INFO, logger="wanderer_console"):
        await engine.start()
        try:
            assert engine.dispatcher.paused
            assert engine.hold.pause is not None
            assert engine.hold.pause.cluster
            assert engine.hold.pause.actor == "tui:alice@laptop via socket"
            await connected(engine)
            await engine.cluster.tick()
            assert engine.dispatcher.paused
            assert engine.store.outbox_counts() == {"pending": 3}
        finally:
            await engine.stop()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("delivery paused on every engine of this database" in m for m in said), said
    assert any("not applied on a shared database" in m for m in said), said
    assert sim.discord.received == []
