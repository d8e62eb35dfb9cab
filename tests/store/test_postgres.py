"""What only the PostgreSQL store has: row locks on claim, a server that goes away and comes
back, URLs whose password never prints, and the settings and option that choose it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.store.pgtest import end_connections, named_schema
from wanderer_console.config.loader import parse_settings_text
from wanderer_console.domain.notification import Notification, NotificationType, Target, TargetKind
from wanderer_console.store.backends import open_store, store_location
from wanderer_console.store.base import ClaimRequest, DatabaseUrl, LeaseFence
from wanderer_console.store.integrity import StorageError
from wanderer_console.store.lock import DataDirInUseError, open_owned
from wanderer_console.store.postgres import PostgresStore, pause_changes
from wanderer_console.store.sqlite import SqliteStore
from wanderer_console.store.writes import StoreWriteError
from wanderer_console.telemetry.metrics import Metrics

pytestmark = pytest.mark.postgresql


def _note(key: str) -> Notification:
    target = Target(TargetKind.WEBHOOK, "https://discord.com/api/webhooks/1/t", "home")
    return Notification("home", NotificationType.KILL, key, target, {"embeds": [{"title": key}]})


@pytest.fixture
def url() -> Iterator[DatabaseUrl]:
    """A fresh schema, its connections named so a test can find (and cut) them."""
    with named_schema() as named:
        yield named


def _admin(url: DatabaseUrl):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(url.secret(), autocommit=True)


def test_claim_skips_rows_another_transaction_holds(url: DatabaseUrl) -> None:
    first, second = PostgresStore(url), PostgresStore(url)
    try:
        first.enqueue([_note("a"), _note("b")], now=1.0)
        a, b = first.due_outbox(now=2.0)
        # Another engine is claiming ``a`` right now (its transaction holds the row).
        with first._pg.transaction() as conn:
            conn.execute("SELECT id FROM outbox WHERE id = ? FOR UPDATE", (a.id,))
            assert second.claim([a.id, b.id], send_id="s2", now=3.0) == 1  # no wait, b only
        assert first.claim([a.id, b.id], send_id="s1", now=4.0) == 1  # a only: b is taken
        rows = {row[0]: row[1] for row in _admin(url).execute("SELECT id, send_id FROM outbox")}
        assert rows == {a.id: "s1", b.id: "s2"}
    finally:
        first.close()
        second.close()


def test_a_lost_connection_fails_one_write_and_the_next_one_reconnects(url: DatabaseUrl) -> None:
    store = PostgresStore(url)
    try:
        store.set_cursor("sse:home", "01A")
        assert end_connections(url) >= 1
        with pytest.raises(StoreWriteError):
            store.set_cursor("sse:home", "01B")
        assert store.write_fault is not None
        store.set_cursor("sse:home", "01B")  # the pool replaced the dead connection
        assert store.write_fault is None
        assert store.get_cursor("sse:home") == "01B"
    finally:
        store.close()


def test_after_a_server_restart_the_next_write_succeeds_however_many_idle_connections(
    url: DatabaseUrl,
) -> None:
    store = PostgresStore(url)
    try:
        pool = store._pg._pool
        with pool.connection(), pool.connection(), pool.connection():
            pass  # three connections in use at once (threads reading): the pool keeps them
        assert pool.get_stats()["pool_available"] == 3
        end_connections(url)  # a restart ends every connection of the pool
        with pytest.raises(StoreWriteError):
            store.set_cursor("sse:home", "01A")
        store.set_cursor("sse:home", "01A")  # the dead connections are not handed out again
        assert store.write_fault is None
        assert store.get_cursor("sse:home") == "01A"
    finally:
        store.close()


def test_an_unreachable_server_stops_the_start_without_showing_the_password() -> None:
    url = DatabaseUrl("postgresql://wc:hunter2secret@127.0.0.1:9/wc")
    with pytest.raises(StorageError) as caught:
        PostgresStore(url)
    text = str(caught.value)
    assert "hunter2secret" not in text
    assert "postgresql://wc:***@127.0.0.1:9/wc" in text
    assert "Start the PostgreSQL server" in text


def test_a_wrong_password_is_named_without_the_password(url: DatabaseUrl) -> None:
    wrong = DatabaseUrl(url.secret().replace("wc:wc@", "wc:not-the-password@"))
    with pytest.raises(StorageError) as caught:
        PostgresStore(wrong)
    assert "not-the-password" not in str(caught.value)
    assert "password" in str(caught.value).lower()


def test_a_malformed_password_is_never_echoed_by_the_driver_error() -> None:
    # libpq quotes the bad part of a URL it cannot parse: here the password itself.
    url = DatabaseUrl("postgresql://wc:hun%zzter2@127.0.0.1:9/wc")
    with pytest.raises(StorageError) as caught:
        PostgresStore(url)
    text = str(caught.value)
    assert "hun%zzter2" not in text
    assert "zzter2" not in text
    assert "postgresql://wc:***@127.0.0.1:9/wc" in text
    assert "percent-encode" in text  # what to do: the URL, not the server


def test_a_newer_schema_is_refused(url: DatabaseUrl) -> None:
    PostgresStore(url).close()
    with _admin(url) as admin:
        admin.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(RuntimeError, match="newer than this build"):
        PostgresStore(url)


def test_the_integrity_check_reports_a_database_it_cannot_use(url: DatabaseUrl) -> None:
    store = PostgresStore(url)
    try:
        assert store.check_integrity() is None
        assert store.ping()
        with _admin(url) as admin:
            admin.execute("DROP TABLE schema_version")
        problem = store.check_integrity()
        assert problem is not None
        assert "schema_version" in problem
    finally:
        store.close()


def test_urls_print_masked() -> None:
    url = DatabaseUrl("postgresql://wc:s3cret@db.example:5432/wc?sslmode=require&password=two")
    assert "s3cret" not in str(url)
    assert "two" not in repr(url)
    assert str(url) == "postgresql://wc:***@db.example:5432/wc?sslmode=require&password=***"
    assert url.secret().endswith("password=two")
    assert str(DatabaseUrl("postgresql://db/wc")) == "postgresql://db/wc"
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        DatabaseUrl("mysql://root:pw@db/wc")


def test_settings_choose_the_backend_and_keep_the_url_secret(tmp_path: Path) -> None:
    settings, _ = parse_settings_text("", environ={})
    assert settings.store.url is None
    assert store_location(tmp_path, None) == tmp_path / "wanderer-console.db"
    environ = {"WANDERER_CONSOLE_STORE__URL": "postgresql://wc:pw-in-env@127.0.0.1/wc"}
    settings, _ = parse_settings_text("", environ=environ)
    assert settings.store.url is not None
    assert "pw-in-env" not in repr(settings)
    assert isinstance(store_location(tmp_path, settings.store.url.get_secret_value()), DatabaseUrl)
    from wanderer_console.config.loader import ConfigError

    with pytest.raises(ConfigError, match="PostgreSQL URL"):
        parse_settings_text('[store]\nurl = "sqlite:///x.db"\n', environ={})


def test_the_database_option_takes_only_a_postgresql_url() -> None:
    from wanderer_console.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["--database", "postgresql://wc@127.0.0.1/wc", "--no-ui"])
    assert args.database == "postgresql://wc@127.0.0.1/wc"
    with pytest.raises(SystemExit):
        parser.parse_args(["--database", "/var/lib/x.db"])


def test_the_data_directory_is_locked_with_the_store_elsewhere(
    url: DatabaseUrl, tmp_path: Path
) -> None:
    lock, store = open_owned(tmp_path, Metrics(), url.secret())
    try:
        assert isinstance(store, PostgresStore)
        assert not (tmp_path / "wanderer-console.db").exists()
        with pytest.raises(DataDirInUseError):
            open_owned(tmp_path, Metrics(), url.secret())
    finally:
        store.close()
        lock.release()
    lock, other = open_owned(tmp_path, Metrics())
    assert isinstance(other, SqliteStore)
    other.close()
    lock.release()
    reopened = open_store(url)
    assert isinstance(reopened, PostgresStore)
    reopened.close()


def test_the_commands_use_the_configured_database(
    url: DatabaseUrl,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import json

    from wanderer_console.cli import main
    from wanderer_console.config.audit import ConfigAudit
    from wanderer_console.server.tenants import TenantRegistry

    monkeypatch.setenv("WANDERER_CONSOLE_STORE__URL", url.secret())
    monkeypatch.chdir(tmp_path)
    assert main(["tenant", "add", "home", "--data-dir", str(tmp_path)]) == 0
    key = json.loads(capsys.readouterr().out)["key"]
    registry = TenantRegistry(url)  # what the engine's ingest API reads
    assert registry.authenticate(key) == "home"
    registry.close()
    audit = ConfigAudit(url)
    audit.record("startup", None, "[console]\n", {"changes": []}, now=1.0)
    audit.close()
    assert main(["config", "history", "--data-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["history"][0]["source"] == "startup"
    store = PostgresStore(url)
    store.enqueue([_note("a")], now=1.0)
    (row,) = store.due_outbox(now=2.0)
    store.mark_failed(row.id, error="HTTP 400")
    store.close()
    assert main(["outbox", "list", "--data-dir", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed["notifications"]] == [row.id]
    assert not (tmp_path / "wanderer-console.db").exists()


def test_after_a_server_restart_the_first_ping_says_the_database_answers(
    url: DatabaseUrl,
) -> None:
    """``/ready`` and ``db status`` ask :meth:`ping`: once the server is back they must say so,
    not "not reachable" once per idle connection the restart ended."""
    store = PostgresStore(url)
    try:
        pool = store._pg._pool
        with pool.connection(), pool.connection(), pool.connection():
            pass  # three idle connections, as after a busy moment
        end_connections(url)  # the restart ends them; the server answers again at once
        assert store.ping()
        assert store.ping()
    finally:
        store.close()


def test_retention_keeps_a_failed_row_another_engine_revives_while_it_prunes(
    url: DatabaseUrl,
) -> None:
    """Retention on one engine picks an old ``failed`` row while another engine revives it
    (its target's credential fixed: ``failed`` becomes ``pending``) in a transaction not yet
    committed. Once that commits, the row waits for a send: the delete, which waited on the
    row's lock, must see it pending now and keep it, as a single ``DELETE ... WHERE status``
    always did."""
    import threading

    pruner, reviver = PostgresStore(url), PostgresStore(url)
    admin = _admin(url)
    try:
        pruner.enqueue([_note("revived")], now=100.0)
        (row,) = pruner.due_outbox(now=200.0)
        pruner.mark_failed(row.id, error="401 Unauthorized")
        result: list[tuple[int, int]] = []
        with reviver._pg.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET status = 'pending', send_id = NULL WHERE id = ?", (row.id,)
            )
            reviving = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            thread = threading.Thread(target=lambda: result.append(pruner.prune(before=1_000.0)))
            thread.start()
            # The prune has read the row as failed and now waits for the reviver's row lock.
            while not admin.execute(
                "SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (reviving,),
            ).fetchone():
                thread.join(0.01)
                assert thread.is_alive(), "the prune did not wait for the reviver's lock"
        thread.join()
        assert [notes for _events, notes in result] == [0]
        assert pruner.outbox_counts() == {"pending": 1}
    finally:
        admin.close()
        pruner.close()
        reviver.close()


def test_an_engine_stalled_inside_a_transaction_blocks_no_other_for_long(
    url: DatabaseUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine ``a`` stalls (a pause, a network cut) between its fenced claim, which share-locks
    its map's lease row, and its COMMIT. Its lease runs out and engine ``b`` takes the map over:
    the takeover waits for that lock. Every store call runs on an engine's event loop, so an
    unbounded wait would freeze ``b`` whole (feeds, heartbeats, sends) for as long as ``a``'s
    session lives. The wait is bounded (a write error, tried again at the next look), and the
    server ends the transaction left idle, so the map is taken over and ``a``'s claim is not
    committed (its rows stay pending for ``b``)."""
    import threading

    from wanderer_console.store import postgres

    monkeypatch.setattr(postgres, "LOCK_TIMEOUT", 0.2)
    monkeypatch.setattr(postgres, "IDLE_IN_TRANSACTION_TIMEOUT", 3.0)
    a, b = PostgresStore(url), PostgresStore(url)
    admin = _admin(url)
    stalled = threading.Event()
    go_on = threading.Event()
    backend: list[int] = []
    outcome: list[BaseException | None] = []

    def stall_in_claim() -> None:
        grant = a.acquire_lease("map:home", "a", 0.3)
        assert grant is not None
        fence = LeaseFence("map:home", "a", grant.lease.token)
        (row,) = a.due_outbox(now=10.0)
        try:
            with a._writes.transaction("claim") as conn:
                backend.append(int(conn.execute("SELECT pg_backend_pid()").fetchone()[0]))
                conn.execute(*a._claim_statement(ClaimRequest([row.id], "s-a", fence), 2.0))
                stalled.set()
                go_on.wait()
        except BaseException as exc:
            outcome.append(exc)
        else:
            outcome.append(None)

    def session_of_a() -> bool:
        found = admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", backend)
        return found.fetchone() is not None

    try:
        a.enqueue([_note("n1")], now=1.0)
        stalling = threading.Thread(target=stall_in_claim)
        stalling.start()
        assert stalled.wait(30)
        # a's lease runs out (by the database's clock) while it stalls.
        while admin.execute(
            "SELECT 1 FROM leases WHERE expires_at > extract(epoch from clock_timestamp())"
        ).fetchone():
            stalling.join(0.05)
        results: list[object] = []

        def take_over() -> None:
            try:
                results.append(b.acquire_lease("map:home", "b", 30.0))
            except StoreWriteError as exc:
                results.append(exc)

        taking = threading.Thread(target=take_over)
        taking.start()
        taking.join(30)
        assert not taking.is_alive(), "the takeover waited for the stalled engine's lock"
        if session_of_a():  # a's lock was held all along: the wait gave up
            assert isinstance(results[0], StoreWriteError)
        # The server ends a's idle transaction; the next look takes the map over.
        while True:
            try:
                grant = b.acquire_lease("map:home", "b", 30.0)
            except StoreWriteError:
                continue
            if grant is not None:
                break
            stalling.join(0.05)
        assert grant.lease.token == 2
        assert not session_of_a()
        go_on.set()
        stalling.join(30)
        assert isinstance(outcome[0], StoreWriteError)  # a learns its claim did not commit
        assert b.outbox_counts() == {"pending": 1}
    finally:
        go_on.set()
        admin.close()
        a.close()
        b.close()


def test_every_connection_bounds_a_server_gone_silent_unless_the_url_says_otherwise(
    url: DatabaseUrl,
) -> None:
    """A network cut or a frozen host closes nothing: the engine waits on its connection (the
    store is called on the event loop) until the operating system gives up, some 15 minutes,
    hung whole. libpq's keepalives and TCP user timeout end that wait; the URL may set its own.
    (A silent peer cannot be made on 127.0.0.1: the kernel acknowledges for it. So the
    parameters libpq was given are what is checked.)"""
    own = DatabaseUrl(url.secret() + ("&" if "?" in url.secret() else "?") + "keepalives_idle=60")
    for where, idle in ((url, "10"), (own, "60")):
        store = PostgresStore(where)
        try:
            with store._pg._pool.connection() as conn:
                given = conn.info.get_parameters()
        finally:
            store.close()
        assert given.get("keepalives") == "1", given
        assert given.get("keepalives_idle") == idle, given
        assert given.get("tcp_user_timeout") == "30000", given
    # `db migrate-to`'s own connection too.
    from wanderer_console.store.migrate import _pg_connect

    with _pg_connect(url) as conn:
        given = conn.info.get_parameters()
    assert given.get("keepalives_idle") == "10", given
    assert given.get("tcp_user_timeout") == "30000", given


async def test_a_pause_and_a_resume_are_announced_and_listening_survives_a_cut_connection(
    url: DatabaseUrl,
) -> None:
    """Each engine listens (:func:`pause_changes`): it is told of a pause and of a resume as
    they commit, and a connection cut (a server restart) is opened again, its first word
    standing for whatever was announced while it was down."""
    import asyncio
    import contextlib

    store = PostgresStore(url)
    changes = pause_changes(url, retry=0.05)
    try:
        async with asyncio.timeout(30):
            await anext(changes)  # listening
            store.pause_cluster("tui:alice", "a")
            await anext(changes)
            store.resume_cluster()
            await anext(changes)
            assert end_connections(url) >= 1  # the listener's, and the pool's
            with contextlib.suppress(StoreWriteError):  # the pool's connection was cut too
                store.pause_cluster("tui:alice", "a")
            store.pause_cluster("tui:alice", "a")  # announced, maybe while nobody listens
            await anext(changes)  # listening again: read the pause now
    finally:
        await changes.aclose()
        store.close()
