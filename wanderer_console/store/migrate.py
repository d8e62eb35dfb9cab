"""Moving a data directory's SQLite store to PostgreSQL (``wanderer-console db migrate-to``).

Everything the engine keeps is copied: the event log (the dedup authority: a kill stored here is
never notified again), the stream cursors, the outbox in every state with its send ids, attempts
and uncertain counters (a ``sending`` row stays in flight and is recovered by the next engine as
after a crash), the dead targets, the config audit, the ingest API tenants and the enrichment
cache. Ids are kept (the outbox is dispatched in id order), and the identity sequences are moved
past them.

**One transaction.** The SQLite file is read in one read transaction (a consistent snapshot)
while the data directory's engine lock is held, so no engine starts on it mid-copy; the target
is written in one PostgreSQL transaction: each table is streamed with ``COPY`` into a temporary
staging table, inserted from there, and verified (per table: the target's count, and every
source row found in the target by its key; the outbox by status) before ``COMMIT``. A failure or
a mismatch rolls everything back and leaves the target as it was: run it again.

**A target engines are running on** (alive in its instance registry) is refused, whatever the
mode, and the registry is read again before the commit (an engine started meanwhile).
**A target that holds data** is refused unless the operator says what to do with it:
``replace`` (``--force``) empties the console's tables first (same transaction); ``append``
merges: rows whose key the target already holds are kept as they are (an event, a notification,
a tenant, a dead target, a cache entry), a cursor takes the larger position, the audit skips an
entry already there, and copied rows get new ids after the target's. Two data directories (one
engine each, different maps) become one database this way.

**The operator's pause** (``delivery-paused.json`` in the data directory, where an engine alone
keeps it) becomes the cluster's pause (``delivery_pause``), in the same transaction: an operator
who paused, then moved, starts the engines on the database paused, not with the whole backlog
going out. It keeps who paused and when; the engine it was sent to is the copy. A file that
cannot be read is a pause all the same, as for the engine. A database already paused keeps its
own pause (as a second pause keeps the first's who and when). The file stays in the data
directory: the SQLite store left behind stays paused.

The schema is created or migrated first, on both sides, to this build's version
(:mod:`~wanderer_console.store.migrations`). psycopg is imported only here, when a command runs.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

from wanderer_console.store.base import ClusterPause, DatabaseUrl, SavedPause
from wanderer_console.store.integrity import SchemaTooNewError, StorageError
from wanderer_console.store.leases import PAUSE_SCOPE
from wanderer_console.store.lock import DataDirInUseError, DataDirLock, LockHolder, lock_holder
from wanderer_console.store.migrations import SCHEMA_VERSION
from wanderer_console.store.sqlite import DB_NAME, open_database
from wanderer_console.telemetry.logging import redact

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "NOT_COPIED",
    "TABLES",
    "DataDirBusyError",
    "MigrationError",
    "MigrationFailedError",
    "Mode",
    "PauseReader",
    "Table",
    "TargetInUseError",
    "TargetNotEmptyError",
    "migrate_data_dir",
]

Mode = Literal["empty", "replace", "append"]
"""``empty``: the target must hold none of the console's rows; ``replace`` (``--force``): they
are deleted first; ``append``: the copy is merged into them."""

PauseReader = Callable[[Path], SavedPause | None]
"""Reads the operator's pause saved in a data directory
(:func:`~wanderer_console.delivery.hold.read_saved_pause`, which the store may not import)."""


@dataclass(frozen=True, slots=True)
class Table:
    """One table of the store, and how its rows are told apart."""

    name: str
    keys: tuple[str, ...]
    """A row's identity: the unique key the engine relies on (the audit has none: its time,
    source and content stand in for one)."""
    identity: bool = False
    """Has an ``id`` identity column (kept when replacing, new ids when appending)."""
    unique: bool = True
    """``keys`` is a unique constraint of the table."""


TABLES: Final[tuple[Table, ...]] = (
    Table("events", ("tenant_id", "event_id"), identity=True),
    Table("cursors", ("stream",)),
    Table("outbox", ("tenant_id", "dedup_key"), identity=True),
    Table("dead_targets", ("tenant_id", "target_key")),
    Table("tenants", ("slug",)),
    Table("hosted_maps", ("map_id",)),
    Table("map_routes", ("tenant_id",)),
    Table("config_audit", ("at", "source", "content"), identity=True, unique=False),
    Table("cache_entries", ("namespace", "key", "version")),
    Table("alert_history", ("rule", "subject", "fired_at"), identity=True),
    Table("trend_minutes", ("minute", "instance")),
    Table("priority_systems", ("name_key",)),
    Table("priority_audit", ("at", "actor", "action", "name"), identity=True, unique=False),
)
"""What is copied, in this order: the store's data (every column the target's schema has)."""

NOT_COPIED: Final[dict[str, str]] = {
    "schema_version": "created by the target's own migrations",
    "data_migrations": "bookkeeping of the config audit's one-time redaction, redone when the"
    " target's audit is next opened (it scrubs versions an older build stored with secrets)",
    "instances": "the registry of running instances: the engines on the target register themselves",
    "leases": "which running instance works which map: the engines on the target take them",
    "delivery_pause": "the pause of every engine on a shared database: a SQLite engine keeps its"
    " pause in its data directory instead (carried into this table: see pause in this report)",
}
"""Tables of a SQLite store that are deliberately left behind, and why."""

_AUDIT_REDACTION: Final = "config_audit.redact_secrets"
"""The config audit's one-time redaction in ``data_migrations`` (``config.audit``, which the
store may not import): cleared in the target when versions are copied into it, so the next open
of its audit redacts them (a data directory an older build left holds versions in full)."""

_COPY_LOCK: Final = 0x57435F4D4F564521
"""Advisory lock a copy holds for its transaction (``WC_MOVE!``): two copies into one database
run one after the other."""


class MigrationError(Exception):
    """The copy was refused or failed; ``str()`` says why and what to do. Nothing was written
    to the target (beyond creating or migrating its schema)."""

    def __init__(self, message: str, report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report


class DataDirBusyError(MigrationError):
    """An engine holds the data directory."""

    def __init__(self, data_dir: Path, holder: LockHolder) -> None:
        command = f", command {holder.command!r}" if holder.command else ""
        super().__init__(
            f"the data directory {data_dir} is in use by an engine ({holder.describe()}"
            f"{command}). Stop it first (for example `systemctl stop wanderer-console`): a copy"
            " taken while it runs would miss what it writes afterwards, and it would go on"
            " delivering the outbox the copy hands to the PostgreSQL engine (notifications"
            " posted twice)."
        )
        self.holder = holder


class TargetNotEmptyError(MigrationError):
    """The target database already holds console data."""

    def __init__(self, url: DatabaseUrl, counts: dict[str, int]) -> None:
        held = ", ".join(f"{name} {count}" for name, count in counts.items() if count)
        super().__init__(
            f"the database {url} already holds console data ({held}). Nothing was copied. Use"
            " --force to replace it with the data directory's (its rows are deleted first), or"
            " --append to merge the data directory into it (rows it already holds are kept)."
        )
        self.counts = counts


class TargetInUseError(MigrationError):
    """Engines are running on the target database (its instance registry says they are alive)."""

    def __init__(self, url: DatabaseUrl, alive: list[tuple[str, str, int]]) -> None:
        names = ", ".join(f"{instance} (PID {pid} on host {host})" for instance, host, pid in alive)
        super().__init__(
            f"the database {url} is in use by {len(alive)} running engine(s): {names}. Nothing"
            " was copied. Stop them first: they would not see the copied rows their maps need"
            " (cursors, events) and would deliver the outbox alongside the copy."
        )
        self.alive = alive


class MigrationFailedError(MigrationError):
    """The copy did not verify: the transaction was rolled back."""


@dataclass
class _Copied:
    source: int = 0
    copied: int = 0
    target_before: int = 0
    target: int = 0
    present: int = 0
    verified: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "copied": self.copied,
            "target_before": self.target_before,
            "target": self.target,
            "source_rows_in_target": self.present,
            "verified": self.verified,
        }


@dataclass
class _Run:
    mode: Mode
    tables: dict[str, _Copied] = field(default_factory=dict)
    outbox_source: dict[str, int] = field(default_factory=dict)
    outbox_target: dict[str, int] = field(default_factory=dict)
    left_behind: dict[str, dict[str, Any]] = field(default_factory=dict)
    pause: dict[str, Any] = field(
        default_factory=lambda: {"carried": False, "data_dir": None, "target": None}
    )


def _pg_connect(url: DatabaseUrl) -> psycopg.Connection[Any]:
    import psycopg

    from wanderer_console.store.postgres import connection_bounds, open_error

    try:  # the engine's bounds on a server gone silent: a copy never hangs on a network cut
        return psycopg.connect(url.secret(), autocommit=True, **connection_bounds(url))
    except psycopg.Error as exc:
        raise open_error(url, exc) from None


def _pg_migrate(conn: psycopg.Connection[Any], url: DatabaseUrl) -> int:
    import psycopg

    from wanderer_console.store.postgres import migrate_postgres, open_error

    try:
        return migrate_postgres(conn)
    except psycopg.Error as exc:
        raise open_error(url, exc) from None
    except RuntimeError as exc:
        if "newer than this build" not in str(exc):
            raise
        raise SchemaTooNewError(
            url, str(exc), "Copy it with the build that last used this database."
        ) from exc


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """The data directory's engine lock for the copy (no engine may start on it meanwhile)."""
    holder = lock_holder(data_dir)
    if holder is not None:
        raise DataDirBusyError(data_dir, holder)
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirInUseError as exc:  # it started just now
        raise DataDirBusyError(data_dir, exc.holder) from None
    try:
        yield
    finally:
        lock.release()


def _pg_columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def _pg_count(conn: psycopg.Connection[Any], table: str) -> int:
    row = conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()
    return 0 if row is None else int(row[0])


def _alive_instances(conn: psycopg.Connection[Any]) -> list[tuple[str, str, int]]:
    """Engines registered in the target and alive by its clock (none before schema 8)."""
    if "instances" not in _pg_tables(conn):
        return []
    rows = conn.execute(
        "SELECT instance_id, host, pid FROM instances WHERE stopped_at IS NULL"
        " AND expires_at > extract(epoch from clock_timestamp()) ORDER BY instance_id"
    ).fetchall()
    return [(str(i), str(host), int(pid)) for i, host, pid in rows]


def _pg_tables(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
    ).fetchall()
    return {str(row[0]) for row in rows}


def _sqlite_tables(src: sqlite3.Connection) -> list[str]:
    rows = src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    ).fetchall()
    return [str(row[0]) for row in rows]


def _outbox_by_status(rows: Any) -> dict[str, int]:
    return {str(status): int(count) for status, count in sorted(rows)}


def _q(name: str) -> str:
    return f'"{name}"'


def _copy_table(
    src: sqlite3.Connection,
    dst: psycopg.Connection[Any],
    table: Table,
    mode: Mode,
) -> _Copied:
    """Copy one table inside the open target transaction; return its counts."""
    result = _Copied()
    columns = _pg_columns(dst, table.name)
    have = {str(row[1]) for row in src.execute(f"PRAGMA table_info({_q(table.name)})")}
    missing = [column for column in columns if column not in have]
    if not columns or missing:
        raise MigrationFailedError(
            f"the table {table.name} differs between the two databases (columns missing in the"
            f" SQLite file: {', '.join(missing) or 'the whole table in PostgreSQL'});"
            f" both should be at schema version {SCHEMA_VERSION}"
        )
    cols = ", ".join(_q(c) for c in columns)
    result.target_before = _pg_count(dst, table.name)
    stage = f"wc_move_{table.name}"
    dst.execute(f"CREATE TEMP TABLE {_q(stage)} (LIKE {_q(table.name)}) ON COMMIT DROP")
    order = "id" if table.identity else "rowid"
    with dst.cursor() as cur, cur.copy(f"COPY {_q(stage)} ({cols}) FROM STDIN") as copy:
        for row in src.execute(f"SELECT {cols} FROM {_q(table.name)} ORDER BY {order}"):
            copy.write_row(row)
            result.source += 1
    inserted = [c for c in columns if not (table.identity and mode == "append" and c == "id")]
    into = ", ".join(_q(c) for c in inserted)
    ordered = "ORDER BY id" if table.identity else ""
    same = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in table.keys)
    if table.name == "cursors":
        # A cursor only moves forward: the larger position (bytewise) wins.
        conflict = (
            " ON CONFLICT (stream) DO UPDATE SET value = GREATEST(cursors.value, excluded.value),"
            " updated_at = GREATEST(cursors.updated_at, excluded.updated_at)"
        )
        where = ""
    elif table.unique:
        conflict = " ON CONFLICT DO NOTHING"
        where = ""
    else:
        conflict = ""
        where = f" WHERE NOT EXISTS (SELECT 1 FROM {_q(table.name)} t WHERE {same})"
    sql = (
        f"INSERT INTO {_q(table.name)} ({into}) SELECT {into} FROM {_q(stage)} s{where}"
        f" {ordered}{conflict}"
    )
    result.copied = max(0, dst.execute(sql).rowcount)
    if table.identity:
        # Ids were given explicitly: the next one the engine takes comes after them.
        dst.execute(
            f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
            f" COALESCE(MAX(id), 0) + 1, false) FROM {_q(table.name)}"
        )
    check = same
    if table.name == "cursors":
        check += ' AND t.value COLLATE "C" >= s.value COLLATE "C"'
    row = dst.execute(
        f"SELECT COUNT(*) FROM {_q(stage)} s"
        f" WHERE EXISTS (SELECT 1 FROM {_q(table.name)} t WHERE {check})"
    ).fetchone()
    result.present = 0 if row is None else int(row[0])
    result.target = _pg_count(dst, table.name)
    src_count = int(src.execute(f"SELECT COUNT(*) FROM {_q(table.name)}").fetchone()[0])
    result.verified = result.present == result.source == src_count and (
        result.target == result.source
        if mode != "append"
        else table.name == "cursors" or result.target == result.target_before + result.copied
    )
    return result


def _report(
    run: _Run, data_dir: Path, url: DatabaseUrl, started: float, *, verified: bool
) -> dict[str, Any]:
    return {
        "migrated": verified,
        "source": {
            "backend": "sqlite",
            "data_dir": str(data_dir),
            "database": str(data_dir / DB_NAME),
            "schema_version": SCHEMA_VERSION,
        },
        "target": {
            "backend": "postgresql",
            "database": str(url),
            "schema_version": SCHEMA_VERSION,
            "mode": run.mode,
        },
        "tables": {name: copied.as_json() for name, copied in run.tables.items()},
        "outbox": {"source": run.outbox_source, "target": run.outbox_target},
        "not_copied": run.left_behind,
        "pause": run.pause,
        "verified": verified,
        "seconds": round(time.perf_counter() - started, 3),
    }


def migrate_data_dir(
    data_dir: Path,
    url: DatabaseUrl,
    *,
    saved_pause: PauseReader,
    mode: Mode = "empty",
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Copy ``data_dir``'s SQLite store into the PostgreSQL database at ``url``, and the pause
    ``saved_pause`` reads there (under the directory's lock) into the cluster's; return the
    report (JSON-ready; the URL in it is masked).

    Raises :class:`DataDirBusyError` while an engine holds ``data_dir``,
    :class:`TargetInUseError` while engines run on the target (its instance registry),
    :class:`TargetNotEmptyError` when ``mode`` is ``empty`` and the target holds console data,
    :class:`MigrationFailedError` when the copy does not verify (rolled back), and
    :class:`~wanderer_console.store.integrity.StorageError` when either database cannot be
    opened.
    """
    import psycopg

    say = progress or (lambda _text: None)
    started = time.perf_counter()
    path = data_dir / DB_NAME
    if not path.is_file():
        raise MigrationError(
            f"there is no SQLite database in {data_dir} (no {DB_NAME}): nothing to copy. Pass"
            " the engine's --data-dir (or its --config)."
        )
    run = _Run(mode)
    with _locked(data_dir):
        src = open_database(path)  # integrity checked, schema migrated (we hold the lock)
        pause = saved_pause(data_dir)
        try:
            dst = _pg_connect(url)
            try:
                _pg_migrate(dst, url)
                alive = _alive_instances(dst)
                if alive:
                    raise TargetInUseError(url, alive)
                before = {table.name: _pg_count(dst, table.name) for table in TABLES}
                if mode == "empty" and any(before.values()):
                    raise TargetNotEmptyError(url, before)
                src.execute("BEGIN")  # one snapshot of the whole file
                try:
                    for name in _sqlite_tables(src):
                        if name in NOT_COPIED or any(t.name == name for t in TABLES):
                            continue
                        rows = int(src.execute(f"SELECT COUNT(*) FROM {_q(name)}").fetchone()[0])
                        run.left_behind[name] = {"rows": rows, "why": "not a table of the store"}
                    for name, why in NOT_COPIED.items():
                        if name in _sqlite_tables(src):
                            rows = int(
                                src.execute(f"SELECT COUNT(*) FROM {_q(name)}").fetchone()[0]
                            )
                            run.left_behind[name] = {"rows": rows, "why": why}
                    _copy_all(src, dst, url, run, say, pause=(pause, _origin(data_dir)))
                finally:
                    src.execute("ROLLBACK")
            except psycopg.Error as exc:
                raise _failed(url, exc) from None
            finally:
                dst.close()
        finally:
            src.close()
    report = _report(run, data_dir, url, started, verified=True)
    say(f"db migrate-to: verified and committed in {report['seconds']:.1f} s")
    return report


def _copy_all(
    src: sqlite3.Connection,
    dst: psycopg.Connection[Any],
    url: DatabaseUrl,
    run: _Run,
    say: Callable[[str], None],
    *,
    pause: tuple[SavedPause | None, str],
) -> None:
    """Every table, and the data directory's pause (``pause``: it, and where it comes from),
    in one target transaction, verified before it commits.

    The target's registry is read again last: an engine that started on it during the copy
    (which can take minutes) would go on without the copied rows and deliver alongside them,
    so the copy is rolled back. One that registers later waits its first heartbeat before
    taking a map, and by then sees the committed copy."""
    with dst.transaction():
        dst.execute("SELECT pg_advisory_xact_lock(%s)", (_COPY_LOCK,))
        if run.mode == "replace":
            names = ", ".join(_q(table.name) for table in TABLES)
            dst.execute(f"TRUNCATE {names} RESTART IDENTITY")
        for table in TABLES:
            copied = _copy_table(src, dst, table, run.mode)
            run.tables[table.name] = copied
            say(
                f"db migrate-to: {table.name}: {copied.source} rows read, {copied.copied}"
                f" written, {copied.target} in the target"
                + ("" if copied.verified else " (DOES NOT VERIFY)")
            )
        if run.tables["config_audit"].copied and "data_migrations" in _pg_tables(dst):
            dst.execute("DELETE FROM data_migrations WHERE name = %s", (_AUDIT_REDACTION,))
        run.outbox_source = _outbox_by_status(
            src.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
        )
        run.outbox_target = _outbox_by_status(
            dst.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
        )
        _carry_pause(dst, *pause, run, say)
        alive = _alive_instances(dst)
        if alive:
            raise TargetInUseError(url, alive)
        bad = [name for name, copied in run.tables.items() if not copied.verified]
        if run.mode != "append" and run.outbox_source != run.outbox_target:
            bad.append("outbox (by status)")
        if bad:
            raise MigrationFailedError(
                f"the copy did not verify ({', '.join(bad)}): rolled back, the target is as it"
                " was. Run it again; if it fails again, report it with this output.",
                report={"tables": {n: c.as_json() for n, c in run.tables.items()}},
            )


def _origin(data_dir: Path) -> str:
    """The ``paused_on`` of a pause the copy carried: not an engine, the copy and its source."""
    return f"db migrate-to from {socket.gethostname()}:{data_dir}"


def _target_pause(dst: psycopg.Connection[Any]) -> ClusterPause | None:
    row = dst.execute(
        "SELECT paused_by, paused_at, paused_on FROM delivery_pause WHERE scope = %s",
        (PAUSE_SCOPE,),
    ).fetchone()
    return None if row is None else ClusterPause(str(row[0]), float(row[1]), str(row[2]))


def _carry_pause(
    dst: psycopg.Connection[Any],
    saved: SavedPause | None,
    origin: str,
    run: _Run,
    say: Callable[[str], None],
) -> None:
    """The data directory's pause becomes the cluster's, unless the database is paused already
    (its pause is kept: who paused first and when). Never lifted: a pause is an operator's
    decision, ``--force`` included. No NOTIFY: no engine runs on the target (checked)."""
    kept = _target_pause(dst)
    if saved is not None:
        run.pause["data_dir"] = {
            "paused_by": redact(saved.actor),
            "paused_at": saved.since or None,
            "damaged": saved.damaged,
        }
    if saved is not None and kept is None:
        dst.execute(
            "INSERT INTO delivery_pause (scope, paused_by, paused_at, paused_on)"
            " VALUES (%s, %s, %s, %s)",
            (PAUSE_SCOPE, saved.actor, saved.since, origin),
        )
        run.pause["carried"] = True
    found = _target_pause(dst)
    if saved is not None and found is None:
        raise MigrationFailedError(
            "the data directory's pause did not verify in the target: rolled back, the target"
            " is as it was. Run it again; if it fails again, report it with this output."
        )
    if found is not None:
        run.pause["target"] = {
            "paused_by": redact(found.actor),
            "paused_at": found.since or None,
            "paused_on": redact(found.instance),
        }
    _say_pause(saved, kept, found, say)


def _say_pause(
    saved: SavedPause | None,
    kept: ClusterPause | None,
    found: ClusterPause | None,
    say: Callable[[str], None],
) -> None:
    """One progress line on the pause, when there is one: an operator must not miss that the
    engines will start paused, nor why."""
    if found is None:
        return
    if kept is not None:
        line = f"the database was already paused ({_by(kept)}): its pause is kept"
        if saved is not None:
            line += f"; the data directory's (by {redact(saved.actor)}) is not applied"
    elif saved is not None and saved.damaged:
        line = (
            "delivery paused on every engine of the database, carried from the data directory,"
            f" whose pause file {redact(saved.damaged)}: an engine treats it as a pause (who and"
            " when unknown), and so does the copy. Check who paused before resuming"
        )
    else:
        line = (
            f"delivery paused on every engine of the database ({_by(found)}), carried from the"
            " data directory: the engines start paused; resume when ready"
        )
    say(f"db migrate-to: {line}")


def _by(pause: ClusterPause) -> str:
    return f"by {redact(pause.actor)} {_since(pause.since) or 'since an unknown time'}"


def _since(stamp: float) -> str:
    """``since 2026-12-04 03:12:09 UTC``; a time no clock can show is unknown."""
    try:
        return time.strftime("since %Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp)) if stamp else ""
    except (OverflowError, ValueError, OSError):
        return ""


def _failed(url: DatabaseUrl, exc: BaseException) -> StorageError:
    """A :class:`StorageError` for what psycopg raised during the copy (the URL masked)."""
    text = " ".join(url.scrub(str(exc)).split()) or type(exc).__name__
    return StorageError(
        url,
        f"the copy failed ({text}); nothing was committed, the target is as it was",
        "Fix the cause (the server's log says more) and run the command again.",
    )
