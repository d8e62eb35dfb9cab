"""Every schema version, reached from every earlier version with data in it, on both backends.

A database is migrated to version ``start``, filled with rows in the tables (and columns) that
version has, then migrated to ``target``: its version is ``target``, every row is still there
with its values, and columns added since read their defaults. A database brought to the latest
version that way is then used as a store (the event log's unique key, the outbox, the cursors,
tenants, the audit). Both backends end with the same tables and columns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import BACKENDS
from tests.store.pgtest import fresh_schema
from wanderer_console.config.audit import ConfigAudit
from wanderer_console.server.tenants import TenantRegistry, hash_key
from wanderer_console.store.backends import open_store
from wanderer_console.store.base import DatabaseUrl, StoredEvent, StoreLocation
from wanderer_console.store.migrations import MIGRATIONS, SCHEMA_VERSION, migrate

PAIRS = [(start, target) for target in range(1, SCHEMA_VERSION + 1) for start in range(target)]
"""``(start, target)``: every version from every earlier one (0 is an empty database)."""

TABLES_AT = {
    1: ("events", "cursors", "outbox"),
    2: ("cache_entries",),
    3: ("tenants",),
    4: ("config_audit",),
    7: ("dead_targets",),
    8: ("instances", "leases"),
    13: ("priority_systems", "priority_audit"),
    15: ("hosted_maps",),
    16: ("delivery_pause",),
    18: ("map_routes",),
}
"""The tables each version adds."""

TENANT_KEY = "wci_migration-test-key"


class Raw:
    """One raw connection to the database under test, ``?`` placeholders on both backends."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self.conn: Any
        if isinstance(location, DatabaseUrl):
            import psycopg

            self.conn = psycopg.connect(location.secret(), autocommit=True)
        else:
            self.conn = sqlite3.connect(location, isolation_level=None)

    def migrate(self, target: int) -> int:
        if isinstance(self.location, DatabaseUrl):
            from wanderer_console.store.postgres import migrate_postgres

            return migrate_postgres(self.conn, target=target)
        return migrate(self.conn, target=target)

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if isinstance(self.location, DatabaseUrl):
            cur = self.conn.execute(sql.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []
        return list(self.conn.execute(sql, params).fetchall())

    def version(self) -> int:
        return int(self.execute("SELECT version FROM schema_version")[0][0])

    def close(self) -> None:
        self.conn.close()


def tables_at(version: int) -> list[str]:
    return [name for v, names in TABLES_AT.items() if v <= version for name in names]


def seed(db: Raw, version: int) -> None:
    """Rows in every table ``version`` has, using only the columns it has."""
    if version >= 1:
        for i, at in enumerate((100.0, 200.0)):
            db.execute(
                "INSERT INTO events (tenant_id, event_id, source, type, received_at, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                ("home", f"01EV{i}", "sse:home", "add_system", at, f'{{"n": {i}}}'),
            )
        db.execute(
            "INSERT INTO cursors (stream, value, updated_at) VALUES (?, ?, ?)",
            ("sse:home", "01EV1", 200.0),
        )
        for key, status in (("pending-1", "pending"), ("sent-1", "sent")):
            db.execute(
                "INSERT INTO outbox (tenant_id, dedup_key, type, target_kind, target_key, body,"
                " status, attempts, next_attempt_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    "home",
                    key,
                    "system",
                    "webhook",
                    "webhook:1",
                    '{"embeds": []}',
                    status,
                    0,
                    150.0,
                    150.0,
                ),
            )
    if version >= 2:
        db.execute(
            "INSERT INTO cache_entries (namespace, key, version, value, expires_at)"
            " VALUES (?, ?, ?, ?, ?)",
            ("system", "30000142", 1, '"Jita"', 9e12),
        )
    if version >= 3:
        db.execute(
            "INSERT INTO tenants (slug, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?)",
            ("home", hash_key(TENANT_KEY), TENANT_KEY[:8], 100.0),
        )
    if version >= 4:
        db.execute(
            "INSERT INTO config_audit (at, source, path, diff, content) VALUES (?, ?, ?, ?, ?)",
            (100.0, "startup", "/etc/wc.toml", '{"changes": []}', "[console]\n"),
        )
    if version >= 5:
        db.execute("UPDATE outbox SET correlation_id = ? WHERE dedup_key = ?", ("corr-1", "sent-1"))
    if version >= 7:
        db.execute(
            "INSERT INTO dead_targets (tenant_id, target_key, reason, fingerprint, since)"
            " VALUES (?, ?, ?, ?, ?)",
            ("home", "webhook:9", "HTTP 404", "fp", 100.0),
        )
    if version >= 8:
        db.execute(
            "INSERT INTO instances (instance_id, host, pid, version, started_at, heartbeat_at,"
            " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("a-1", "host-a", 42, "1.0", 100.0, 110.0, 125.0),
        )
        db.execute(
            "INSERT INTO leases (resource, owner, token, expires_at, acquired_at, renewed_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ("map:home", "a-1", 3, 125.0, 100.0, 110.0),
        )
        db.execute(
            "UPDATE outbox SET claimed_by = ?, claim_token = ? WHERE dedup_key = ?",
            ("a-1", 3, "sent-1"),
        )
    if version >= 9:
        db.execute("UPDATE outbox SET message_id = ? WHERE dedup_key = ?", ("m-77", "sent-1"))
    if version >= 13:
        db.execute(
            "INSERT INTO priority_systems (name_key, name, added_by, added_at) VALUES (?, ?, ?, ?)",
            ("j154624", "J154624", "discord:pilot", 100.0),
        )
        db.execute(
            "INSERT INTO priority_audit (at, actor, action, name) VALUES (?, ?, ?, ?)",
            (100.0, "discord:pilot", "add", "J154624"),
        )
    if version >= 15:
        db.execute(
            "INSERT INTO hosted_maps (map_id, tenant_id, slug, created_at) VALUES (?, ?, ?, ?)",
            ("5f0c1d2e-0000-4000-8000-000000000001", "home", "home", 100.0),
        )
    if version >= 16:
        db.execute(
            "INSERT INTO delivery_pause (scope, paused_by, paused_at, paused_on)"
            " VALUES (?, ?, ?, ?)",
            ("cluster", "tui:alice", 100.0, "a-1"),
        )
    if version >= 17:
        db.execute("UPDATE outbox SET aged_from = ? WHERE dedup_key = ?", (300.0, "pending-1"))
    if version >= 18:
        db.execute(
            "INSERT INTO map_routes (tenant_id, routes, recorded_at) VALUES (?, ?, ?)",
            ("home", '{"system": "webhook:1"}', 300.0),
        )


def counts(db: Raw, version: int) -> dict[str, int]:
    return {
        table: int(db.execute(f"SELECT COUNT(*) FROM {table}")[0][0])
        for table in tables_at(version)
    }


@pytest.fixture(params=BACKENDS)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreLocation]:
    """An empty database on each backend."""
    if request.param == "sqlite":
        yield tmp_path / "db.sqlite"
        return
    with fresh_schema() as url:
        yield url


def test_both_backends_have_every_version() -> None:
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 7
    for number, migration in enumerate(MIGRATIONS, start=1):
        assert migration.sqlite.strip(), number
        assert migration.postgresql.strip(), number


@pytest.mark.parametrize(("start", "target"), PAIRS, ids=[f"v{s}-to-v{t}" for s, t in PAIRS])
def test_each_version_from_each_earlier_one_keeps_the_data(
    location: StoreLocation, start: int, target: int
) -> None:
    db = Raw(location)
    try:
        assert db.migrate(start) == start
        seed(db, start)
        before = counts(db, start)
        assert db.migrate(target) == target
        assert db.version() == target
        after = counts(db, target)
        for table, count in before.items():
            assert after[table] == count, table
        for table in tables_at(target):
            if table not in before:
                assert after[table] == 0, table  # new in between: created empty
        if start >= 1:
            payloads = db.execute("SELECT event_id, payload FROM events ORDER BY id")
            assert payloads == [("01EV0", '{"n": 0}'), ("01EV1", '{"n": 1}')]
            rows = db.execute("SELECT dedup_key, status FROM outbox ORDER BY id")
            assert rows == [("pending-1", "pending"), ("sent-1", "sent")]
        if start >= 1 and target >= 5:
            (correlation,) = db.execute(
                "SELECT correlation_id FROM outbox WHERE dedup_key = ?", ("sent-1",)
            )[0]
            assert correlation == ("corr-1" if start >= 5 else None)
        if start >= 1 and target >= 7:
            assert db.execute(
                "SELECT send_id, sending_at, uncertain FROM outbox WHERE dedup_key = ?",
                ("pending-1",),
            ) == [(None, None, 0)]
        if start >= 1 and target >= 8:
            assert db.execute(
                "SELECT dedup_key, claimed_by, claim_token FROM outbox ORDER BY id"
            ) == [
                ("pending-1", None, None),
                ("sent-1", *(("a-1", 3) if start >= 8 else (None,) * 2)),
            ]
        if start >= 1 and target >= 9:
            assert db.execute("SELECT dedup_key, message_id FROM outbox ORDER BY id") == [
                ("pending-1", None),
                ("sent-1", "m-77" if start >= 9 else None),
            ]
        if start >= 1 and target >= 17:
            assert db.execute(
                "SELECT dedup_key, aged_from, created_at FROM outbox ORDER BY id"
            ) == [
                ("pending-1", 300.0 if start >= 17 else None, 150.0),
                ("sent-1", None, 150.0),
            ]
        # Migrating again changes nothing: the version is recorded with the schema.
        assert db.migrate(target) == target
        assert counts(db, target) == after
    finally:
        db.close()


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION), ids=lambda s: f"from-v{s}")
def test_a_store_opened_on_an_old_database_works_with_its_rows(
    location: StoreLocation, start: int
) -> None:
    db = Raw(location)
    db.migrate(start)
    seed(db, start)
    db.close()
    store = open_store(location)  # migrates the rest of the way
    try:
        assert store.schema_version == SCHEMA_VERSION
        assert store.has_event("home", "01EV0")
        duplicate = StoredEvent("home", "01EV0", "sse:home", "add_system", 300.0, "{}")
        assert store.record_event(duplicate, cursor=("sse:home", "01EV0")) is False
        assert store.get_cursor("sse:home") == "01EV1"  # never moves back
        assert [e.event_id for e in store.events_since(0)] == ["01EV0", "01EV1"]
        (row,) = store.due_outbox(now=1e12)
        assert (row.dedup_key, row.uncertain, row.send_id) == ("pending-1", 0, None)
        # Re-queued by an operator at 300 (seeded from v17), else its age runs from 150.
        assert row.aged_from == (300.0 if start >= 17 else None)
        assert store.recorded_routes() == {}  # no routing recorded before v18: nothing moves
        assert store.claim([row.id], send_id="s1", now=1_000.0) == 1
        store.mark_sent(row.id, now=1_001.0)
        assert store.outbox_counts() == {"sent": 2}
        assert store.prune(before=150.0) == (1, 0)  # the event at 100 goes; sent rows are newer
        if start >= 2:
            assert store.load_cache_entries(1, now=0.0) == [
                ("system", "30000142", 1, '"Jita"', 9e12)
            ]
        if start >= 7:
            assert [t.target_key for t in store.dead_targets()] == ["webhook:9"]
        if start >= 8:
            (lease,) = store.cluster_state().leases
            assert (lease.resource, lease.owner, lease.token) == ("map:home", "a-1", 3)
    finally:
        store.close()
    if start >= 3:
        tenants = TenantRegistry(location)
        assert tenants.authenticate(TENANT_KEY) == "home"
        tenants.close()
    if start >= 4:
        audit = ConfigAudit(location)
        assert [entry.source for entry in audit.history()] == ["startup"]
        audit.close()


@pytest.mark.postgresql
def test_both_backends_end_with_the_same_tables_and_columns(tmp_path: Path) -> None:
    lite = Raw(tmp_path / "db.sqlite")
    lite.migrate(SCHEMA_VERSION)
    sqlite_columns = {
        (table, str(column[1]))
        for (table,) in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
        for column in lite.execute(f"PRAGMA table_info({table})")
    }
    sqlite_indexes = {
        str(name)
        for (name,) in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    lite.close()
    with fresh_schema() as url:
        pg = Raw(url)
        pg.migrate(SCHEMA_VERSION)
        pg_columns = {
            (str(table), str(column))
            for table, column in pg.execute(
                "SELECT table_name, column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema()"
            )
        }
        pg_indexes = {
            str(name)
            for (name,) in pg.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
            )
        }
        pg.close()
    assert pg_columns == sqlite_columns
    # SQLite names its automatic (UNIQUE, PRIMARY KEY) indexes itself; the declared ones match.
    assert sqlite_indexes <= pg_indexes
