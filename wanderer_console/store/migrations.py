"""Schema migrations for the SQLite store, applied in order at open.

Each entry moves the schema from version ``n`` to ``n + 1``. Never edit a released migration:
append a new one.
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: events, stream cursors, outbox.
    """
    CREATE TABLE events (
        id          INTEGER PRIMARY KEY,
        tenant_id   TEXT NOT NULL,
        event_id    TEXT NOT NULL,
        source      TEXT NOT NULL,
        type        TEXT NOT NULL,
        received_at REAL NOT NULL,
        payload     TEXT NOT NULL,
        UNIQUE (tenant_id, event_id)
    );
    CREATE INDEX events_received_at ON events (received_at);

    CREATE TABLE cursors (
        stream     TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at REAL NOT NULL
    );

    CREATE TABLE outbox (
        id              INTEGER PRIMARY KEY,
        tenant_id       TEXT NOT NULL,
        dedup_key       TEXT NOT NULL,
        type            TEXT NOT NULL,
        target_kind     TEXT NOT NULL,
        target_key      TEXT NOT NULL,
        body            TEXT NOT NULL,
        status          TEXT NOT NULL DEFAULT 'pending',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error      TEXT,
        created_at      REAL NOT NULL,
        sent_at         REAL,
        UNIQUE (tenant_id, dedup_key)
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
    """,
    # 2: persisted enrichment cache (warm entries survive a restart).
    """
    CREATE TABLE cache_entries (
        namespace  TEXT NOT NULL,
        key        TEXT NOT NULL,
        version    INTEGER NOT NULL,
        value      TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (namespace, key, version)
    );
    CREATE INDEX cache_entries_version ON cache_entries (version, expires_at);
    """,
    # 3: ingest API tenants (keys kept only as sha256 digests).
    """
    CREATE TABLE tenants (
        slug        TEXT PRIMARY KEY,
        key_hash    TEXT NOT NULL UNIQUE,
        key_prefix  TEXT NOT NULL,
        created_at  REAL NOT NULL,
        rotated_at  REAL,
        disabled_at REAL
    );
    """,
    # 4: configuration audit: every applied change, its redacted diff and the full text.
    """
    CREATE TABLE config_audit (
        id      INTEGER PRIMARY KEY,
        at      REAL NOT NULL,
        source  TEXT NOT NULL,
        path    TEXT,
        diff    TEXT NOT NULL,
        content TEXT NOT NULL
    );
    """,
    # 5: the correlation id of the event behind each notification (grep from ingest to delivery).
    """
    ALTER TABLE outbox ADD COLUMN correlation_id TEXT;
    """,
    # 6: the pending backlog by target in id order, so the dispatcher reads each target's oldest
    #    rows and counts its depth without walking (and sorting) the whole backlog.
    """
    CREATE INDEX outbox_pending_target ON outbox (target_key, id) WHERE status = 'pending';
    """,
    # 7: exactly-once delivery. A message is claimed (status 'sending', its send id and time)
    #    before its request goes out, so a crash leaves it recognisably in flight; ``uncertain``
    #    counts sends whose outcome was never known. Dead targets are kept with the fingerprint
    #    of the credential that failed, so a changed credential revives them.
    """
    ALTER TABLE outbox ADD COLUMN send_id TEXT;
    ALTER TABLE outbox ADD COLUMN sending_at REAL;
    ALTER TABLE outbox ADD COLUMN uncertain INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_sending ON outbox (status) WHERE status = 'sending';
    CREATE INDEX outbox_failed ON outbox (target_key, id) WHERE status = 'failed';
    CREATE TABLE dead_targets (
        tenant_id   TEXT NOT NULL,
        target_key  TEXT NOT NULL,
        reason      TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        since       REAL NOT NULL,
        PRIMARY KEY (tenant_id, target_key)
    );
    """,
)

SCHEMA_VERSION: Final[int] = len(MIGRATIONS)
"""The version a fully migrated database reports."""


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration in one transaction each; return the resulting version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        current = 0
    else:
        current = int(row[0])
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {current} is newer than this build ({SCHEMA_VERSION});"
            " upgrade wanderer-console"
        )
    for version in range(current, SCHEMA_VERSION):
        # DDL and the version bump commit together, or not at all.
        bump = f"UPDATE schema_version SET version = {version + 1}"
        conn.executescript(f"BEGIN; {MIGRATIONS[version]}; {bump}; COMMIT;")
    return SCHEMA_VERSION
