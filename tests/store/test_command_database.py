"""Every command that reads or writes the store, on a deployment whose store is PostgreSQL.

The engine may be told its database by the config (``[store] url``), the environment
(``WANDERER_CONSOLE_STORE__URL``) or ``--database URL`` alone. A command must then act on that
same database: ``--database URL`` is taken by each of them, and a data directory whose engine
stores in PostgreSQL is never read (nor written) through an SQLite file found there instead
(an empty one, or the copy ``db migrate-to`` leaves behind): that answers "no rows", "dropped 0"
or adds a tenant nobody reads.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.store.pgtest import fresh_schema
from tests.support import json_refusal
from wanderer_console.cli import main
from wanderer_console.config.audit import ConfigAudit
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.store.base import DatabaseUrl, StoredEvent
from wanderer_console.store.lock import open_owned
from wanderer_console.store.observe import TrendMinute
from wanderer_console.store.postgres import PostgresStore
from wanderer_console.store.sqlite import DB_NAME, SqliteStore
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.postgresql

KILL_ID = 91_000_001


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No configuration or store URL from the environment; the default data dir is empty."""
    for name in list(os.environ):
        kept = name.startswith("WANDERER_CONSOLE_TEST") or name == "WANDERER_CONSOLE_REQUIRE_PG"
        if name.startswith("WANDERER_CONSOLE_") and not kept:
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    config = tmp_path / "config.toml"
    config.write_text(
        '[maps.home]\nurl = "http://127.0.0.1:9"\napi_key = "k"\n'
        '[maps.home.discord]\nwebhook_url = "https://discord.example/api/webhooks/7/t"\n',
        encoding="utf-8",
    )
    return config


def _seed(url: DatabaseUrl) -> None:
    """What the engine would have written: a failed notification, a tenant, a config version,
    a minute of trends and a killmail."""
    store = PostgresStore(url)
    try:
        target = Target(TargetKind.WEBHOOK, "https://discord.example/api/webhooks/7/t", "home")
        store.enqueue([Notification("home", NotificationType.KILL, "k0", target, {"x": 1})])
        (row,) = store.due_outbox(2e9, limit=10)
        store.mark_failed(row.id, error="Discord refused it: 400 Invalid Form Body")
        now = time.time()
        store.save_trend(TrendMinute(minute=int(now // 60 * 60) - 120, instance="a", events=42))
        km = DataGenerator(seed=3).make_killmail(system_id=30002187)
        km["killmail_id"] = KILL_ID
        payload = orjson.dumps(km).decode()
        store.record_event(
            StoredEvent("*", f"kill:{KILL_ID}", "killstream", "killmail", now, payload)
        )
    finally:
        store.close()
    registry = TenantRegistry(url)
    try:
        registry.add("home")
    finally:
        registry.close()
    audit = ConfigAudit(url)
    try:
        audit.record("cli:test", None, "[maps.home]\n", {"status": "applied", "changes": []})
    finally:
        audit.close()


@pytest.fixture
def database(isolated: Path) -> Iterator[DatabaseUrl]:
    with fresh_schema() as url:
        _seed(url)
        yield url


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _password(url: DatabaseUrl) -> str:
    from urllib.parse import urlsplit

    password = urlsplit(url.secret()).password
    assert password, "the test database URL carries a password"
    return f":{password}@"  # as it would appear in a URL (a short password is in many words)


READS = {
    "outbox list": (
        ["outbox", "list"],
        lambda out: (
            json.loads(out)["notifications"][0]["last_error"]
            == "Discord refused it: 400 Invalid Form Body"
        ),
    ),
    "tenant list": (
        ["tenant", "list"],
        lambda out: [t["slug"] for t in json.loads(out)["tenants"]] == ["home"],
    ),
    "config history": (
        ["config", "history"],
        lambda out: [e["source"] for e in json.loads(out)["history"]] == ["cli:test"],
    ),
    "export metrics": (
        ["export", "metrics", "--since", "10m", "--format", "json"],
        lambda out: sum(r["events"] for r in json.loads(out)["rows"]) == 42,
    ),
    "kill": (
        ["kill", str(KILL_ID)],
        lambda out: json.loads(out)["killmail_source"] == "event store",
    ),
    "replay": (
        ["replay", "--since", "1h", "--dry-run", "--no-rest"],
        lambda out: True,
    ),
}


@pytest.mark.parametrize("command", sorted(READS))
def test_every_store_command_takes_database_and_reads_the_engines_postgresql(
    command: str,
    database: DatabaseUrl,
    isolated: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine was started with ``--database URL`` only: each command, given the same
    ``--database``, reads what the engine wrote there (not an empty SQLite file)."""
    argv, reads_it = READS[command]
    data = tmp_path / "engine-data"
    data.mkdir()
    code, out, err = _run(
        capsys,
        *argv,
        "--config",
        str(isolated),
        "--data-dir",
        str(data),
        "--database",
        database.secret(),
    )
    assert code == 0, err
    assert reads_it(out), out
    assert not (data / DB_NAME).exists()
    assert str(database) in out + err  # which database it read, its password masked
    assert _password(database) not in out + err


def test_every_store_command_explains_database_in_its_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv in (
        ["outbox", "list"],
        ["outbox", "retry"],
        ["outbox", "drop"],
        ["tenant", "add"],
        ["tenant", "list"],
        ["config", "history"],
        ["config", "restore"],
        ["export", "metrics"],
        ["kill"],
        ["replay"],
        ["db", "status"],
    ):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--database URL" in text, argv
        assert "PostgreSQL" in text, argv


WRITES_AND_READS = {
    "outbox list": ["outbox", "list"],
    "outbox retry": ["outbox", "retry", "webhook:7"],
    "outbox drop": ["outbox", "drop", "webhook:7"],
    "tenant list": ["tenant", "list"],
    "tenant add": ["tenant", "add", "away"],
    "config restore": ["config", "restore", "1"],
    "config history": ["config", "history"],
    "export metrics": ["export", "metrics"],
    "kill": ["kill", str(KILL_ID)],
    "replay": ["replay", "--since", "1h", "--dry-run", "--no-rest"],
    "db status": ["db", "status"],
}


@pytest.mark.parametrize("command", sorted(WRITES_AND_READS))
def test_a_data_dir_whose_engine_stores_in_postgresql_is_not_read_through_its_sqlite_file(
    command: str,
    database: DatabaseUrl,
    isolated: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine ran with ``--database URL`` on this data directory, which still holds the
    SQLite file ``db migrate-to`` copied from: a command not told the URL refuses, naming the
    engine's database (password masked) and how to give it, rather than answer from that file."""
    data = tmp_path / "engine-data"
    old = SqliteStore(data / DB_NAME)  # the copy left behind by `db migrate-to`
    old.close()
    lock, store = open_owned(data, Metrics(), database.secret())  # the engine's start
    store.close()
    lock.release()
    before = (data / DB_NAME).read_bytes()

    code, out, err = _run(
        capsys, *WRITES_AND_READS[command], "--config", str(isolated), "--data-dir", str(data)
    )

    assert code != 0, out
    if command == "export metrics":  # CSV: nothing on stdout
        assert out == ""
    else:  # no answer but the refusal
        assert set(json_refusal(out, err, command)) == {"error", "command", "exit_code"}
    assert str(database) in err  # the engine's database, masked
    assert "--database" in err
    assert _password(database) not in err
    assert (data / DB_NAME).read_bytes() == before


@pytest.mark.parametrize(
    "argv",
    [
        ["outbox", "list"],
        ["config", "history"],
        ["export", "metrics"],
        ["replay", "--since", "1h", "--dry-run", "--no-rest"],
    ],
    ids=" ".join,
)
def test_a_data_dir_without_a_database_file_points_to_database_too(
    argv: list[str], isolated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No SQLite file and no record of the engine's store (an engine of an older build, started
    with ``--database`` alone): the refusal names ``--database`` among the ways out."""
    data = tmp_path / "engine-data"
    data.mkdir()
    code, out, err = _run(capsys, *argv, "--config", str(isolated), "--data-dir", str(data))
    assert code == 1
    if argv[0] == "export":  # CSV: nothing on stdout
        assert out == ""
    else:  # no answer but the refusal
        answer = json_refusal(out, err, " ".join(argv[: 1 if argv[0] == "replay" else 2]))
        assert set(answer) == {"error", "command", "exit_code"}
    assert "no database at" in err
    assert "--database URL" in err
    assert not (data / DB_NAME).exists()


def test_a_restore_of_a_version_not_in_the_history_names_the_database(
    database: DatabaseUrl, isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``config restore 99`` on a store holding one version: the refusal names the database it
    looked in (password masked), as ``outbox list`` and ``db status`` do; an operator with two
    engines could not tell which history lacked the version (the wrong ``--database``?)."""
    code, out, err = _run(
        capsys,
        "config",
        "restore",
        "99",
        "--config",
        str(isolated),
        "--database",
        database.secret(),
    )
    assert code == 1
    answer = json_refusal(out, err, "config restore")
    assert answer["error"] == "no configuration version 99 in the history"
    assert answer["database"] == str(database)
    assert _password(database) not in err + out
