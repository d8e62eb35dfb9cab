"""PostgreSQL implementation of the store (psycopg 3 and its connection pool).

Chosen by ``[store] url = "postgresql://…"`` (``--database URL``,
``WANDERER_CONSOLE_STORE__URL``). The statements are the SQLite store's
(:class:`~wanderer_console.store.sql.SqlStore`), with ``?`` turned into ``%s`` and the few
fragments that differ taken from :data:`~wanderer_console.store.dialect.POSTGRESQL`; the schema
is the same versions (:mod:`~wanderer_console.store.migrations`).

**Why psycopg 3, synchronously.** The store is called synchronously from the event loop (and
from commands with no loop at all): every call is one short statement or one transaction, as on
SQLite. psycopg's blocking API keeps that contract unchanged for the 30-odd callers; asyncpg
would have made every store call a coroutine. A call to a local server costs a round trip
(~0.1 ms), of the order of an SQLite commit. The pool (``psycopg_pool``) replaces a connection
the server dropped, so after an outage the next write succeeds on a new connection and the write
guard clears its fault, with no restart.

**Connections.** Outside a transaction a statement borrows a pool connection (autocommit) for
its own duration; a guarded write runs on one connection in ``BEGIN`` … ``COMMIT``. Waiting for
a connection is bounded (:data:`POOL_TIMEOUT`): a server that is gone fails a write within it
(``StoreWriteError``, delivery paused) instead of hanging the loop.

**Waits on another session.** Every pool connection bounds how long a statement waits for a
lock (:data:`LOCK_TIMEOUT`) and has the server end a transaction left idle
(:data:`IDLE_IN_TRANSACTION_TIMEOUT`). Another engine that stalls or is cut off inside a
transaction (its fenced claim share-locks a map's lease row) would otherwise hold its locks for as
long as its session lives, and the engine taking that map over would wait for them on its event
loop, frozen whole. Bounded, the wait fails as a write (tried again at the next look); the
stalled engine's transaction is rolled back, so what it claimed stays pending (its own COMMIT
fails: a write error, never a send). Migrations wait for each other without a bound (their own
connection).

**The cluster's pause is announced** (``NOTIFY``) in the transaction that writes it; each engine
keeps one more connection, outside the pool, listening (:func:`pause_changes`), and heartbeats
when told, so it follows a pause or a resume at once rather than at its next heartbeat.

**Migrations** run under a transaction-scoped advisory lock, one transaction per version, so
engines or commands opening the same database at once migrate it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Final

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from wanderer_console.store.base import DatabaseUrl, DbConnection
from wanderer_console.store.dialect import PAUSE_CHANNEL, POSTGRESQL
from wanderer_console.store.integrity import SchemaTooNewError, StorageError
from wanderer_console.store.migrations import MIGRATIONS, SCHEMA_VERSION, too_new
from wanderer_console.store.sql import SqlStore
from wanderer_console.store.writes import WriteGuard

__all__ = [
    "CONNECT_TIMEOUT",
    "IDLE_IN_TRANSACTION_TIMEOUT",
    "LINK_BOUNDS",
    "LOCK_TIMEOUT",
    "POOL_TIMEOUT",
    "PgConnection",
    "PgWriteGuard",
    "PostgresStore",
    "connect_postgres",
    "connection_bounds",
    "migrate_postgres",
    "pause_changes",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 5
"""Seconds to establish a connection to the server."""
LINK_BOUNDS: Final[dict[str, int]] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30_000,
}
"""libpq's TCP bounds on every connection (unless the URL sets its own): a server gone silent
(a network cut, a host frozen: nothing closes the connection) is noticed within about 25 s
idle, or 30 s with data unacknowledged, instead of the operating system's 15 minutes, through
which the engine, waiting on the connection, would hang whole."""
POOL_TIMEOUT: Final = 5.0
"""Longest wait for a pool connection (the server gone: a write fails after this)."""
PING_TIMEOUT: Final = 1.0
"""Longest wait of ``/ready``'s ping for a connection."""
LOCK_TIMEOUT: Final = 5.0
"""Longest wait of a pool connection's statement for a lock another session holds."""
IDLE_IN_TRANSACTION_TIMEOUT: Final = 10.0
"""Seconds after which the server ends a pool connection's transaction left idle (its client
stalled or cut off), releasing its locks. The store's transactions never wait between their
statements."""
_MIGRATION_LOCK: Final = 0x57435F4D49475254
"""The advisory lock key migrations take (``WC_MIGRT``)."""


@functools.lru_cache(maxsize=1024)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PgCursor:
    """A statement's rows, read whole (the connection goes back to the pool at once)."""

    __slots__ = ("_next", "_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._next = 0
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchall(self) -> list[Any]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A :class:`~wanderer_console.store.base.DbConnection` over a psycopg pool.

    Statements take ``?`` placeholders. Inside :meth:`transaction` they run on its connection
    (per thread); outside it each borrows a pool connection in autocommit.
    """

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool
        self._local = threading.local()

    def _current(self) -> psycopg.Connection[Any] | None:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        return conn

    @staticmethod
    def _run(conn: psycopg.Connection[Any], sql: str, parameters: Any) -> PgCursor:
        cur = conn.execute(_pg_sql(sql), tuple(parameters))
        rows = cur.fetchall() if cur.description is not None else []
        return PgCursor(rows, cur.rowcount)

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
        """Run one statement; its rows are read before the connection is given back."""
        conn = self._current()
        if conn is not None:
            return self._run(conn, sql, parameters)
        with self._lost_tested(), self._pool.connection() as conn:
            return self._run(conn, sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> PgCursor:
        """Run one statement for each parameter row (pipelined by psycopg)."""
        batch = [tuple(row) for row in parameters]
        conn = self._current()
        if conn is not None:
            return self._run_many(conn, sql, batch)
        with self._lost_tested(), self._pool.connection() as conn:
            return self._run_many(conn, sql, batch)

    @contextlib.contextmanager
    def _lost_tested(self) -> Iterator[None]:
        """A statement or transaction that fails on a connection the server ended (a restart)
        has the pool's idle connections tested (:meth:`drop_broken`), so the next one, read or
        write, does not draw another dead one; the error goes on to the caller."""
        try:
            yield
        except psycopg.OperationalError:
            self.drop_broken()
            raise

    @staticmethod
    def _run_many(conn: psycopg.Connection[Any], sql: str, batch: list[Any]) -> PgCursor:
        if not batch:
            return PgCursor([], 0)
        with conn.cursor() as cur:
            cur.executemany(_pg_sql(sql), batch)
            return PgCursor([], cur.rowcount)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """``BEGIN`` … ``COMMIT`` on one pool connection (rolled back if the block raises)."""
        if self._current() is not None:
            raise RuntimeError("the store's transactions do not nest")
        with self._lost_tested(), self._pool.connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield self
            finally:
                self._local.conn = None

    def ping(self, timeout: float = PING_TIMEOUT) -> bool:
        """True when a connection answers ``SELECT 1`` within ``timeout`` seconds.

        A pooled connection the server ended (a restart, a failover) says nothing of the server
        now: on such a failure the idle ones are tested and the question asked once more, so
        ``/ready`` says the database answers as soon as it does, not one poll per dead
        connection later."""
        for last in (False, True):
            try:
                with self._pool.connection(timeout=timeout) as conn:
                    conn.execute("SELECT 1").fetchone()
            except PoolTimeout:
                return False  # no connection at all within the time: asking again waits again
            except psycopg.OperationalError:
                if last:
                    return False
                self.drop_broken()
            except psycopg.Error:
                return False
            else:
                return True
        return False  # not reached: the second try returns

    def drop_broken(self) -> None:
        """Test the idle connections and replace those the server ended (never raises).

        A server restart ends every connection at once, and the pool learns that one borrow at
        a time: without this, each idle connection would fail one more statement (up to the pool's
        size) after the server is back."""
        with contextlib.suppress(Exception):
            self._pool.check()

    def close(self) -> None:
        """Close the pool and its connections (idempotent)."""
        self._pool.close()


class PgWriteGuard(WriteGuard):
    """The write guard over a :class:`PgConnection`: psycopg errors become
    :class:`~wanderer_console.store.writes.StoreWriteError` and set the fault."""

    def __init__(
        self,
        conn: PgConnection,
        url: DatabaseUrl,
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._pg = conn
        self._track(url, on_error)

    @contextlib.contextmanager
    def transaction(self, operation: str) -> Iterator[DbConnection]:
        """One transaction on one connection; any psycopg error becomes ``StoreWriteError``."""
        try:
            with self._pg.transaction() as conn:
                yield conn
        except psycopg.Error as exc:
            raise self._failed(operation, exc) from exc
        self._succeeded()

    def statement(self, operation: str, sql: str, params: object = ()) -> int:
        """One autocommitted statement, guarded like a transaction."""
        try:
            cursor = self._pg.execute(sql, params)
        except psycopg.Error as exc:
            raise self._failed(operation, exc) from exc
        self._succeeded()
        return cursor.rowcount


def migrate_postgres(conn: psycopg.Connection[Any], *, target: int = SCHEMA_VERSION) -> int:
    """Apply every pending migration (up to ``target``), one transaction each, under an
    advisory lock; return the resulting version. ``conn`` is in autocommit."""
    current = 0
    while True:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version (version) VALUES (0)")
                current = 0
            else:
                current = int(row[0])
            if current > SCHEMA_VERSION:
                raise too_new(current)
            if current >= target:
                return current
            # DDL and the version bump commit together, or not at all.
            conn.execute(MIGRATIONS[current].postgresql.encode())
            conn.execute("UPDATE schema_version SET version = %s", (current + 1,))


def connection_bounds(url: DatabaseUrl) -> dict[str, Any]:
    """The connection's own bounds on a server that went silent (:data:`LINK_BOUNDS`), each
    unless the URL sets it."""
    given = conninfo_to_dict(url.secret())
    return {"connect_timeout": CONNECT_TIMEOUT} | {
        key: value for key, value in LINK_BOUNDS.items() if key not in given
    }


def _connect(url: DatabaseUrl, **kwargs: Any) -> psycopg.Connection[Any]:
    return psycopg.connect(url.secret(), autocommit=True, **connection_bounds(url), **kwargs)


def _bounded_waits(conn: psycopg.Connection[Any]) -> None:
    """A new pool connection's session settings: bounded lock waits, idle transactions ended
    (see the module docstring)."""
    conn.execute(
        "SELECT set_config('lock_timeout', %s, false),"
        " set_config('idle_in_transaction_session_timeout', %s, false)",
        (f"{round(LOCK_TIMEOUT * 1000)}ms", f"{round(IDLE_IN_TRANSACTION_TIMEOUT * 1000)}ms"),
    )


async def pause_changes(url: DatabaseUrl, retry: float = 1.0) -> AsyncIterator[None]:
    """Yield once listening, then at every pause or resume of the cluster announced on the
    database (:data:`~.dialect.PAUSE_CHANNEL`), forever.

    A connection lost (the server restarted, the link cut) is opened again every ``retry``
    seconds, and the first yield after it stands for whatever was announced meanwhile: the
    caller reads the pause again at every yield, so none is missed. A notification of another
    schema of the same database (channels are the database's) costs one read more."""
    failing = False
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                url.secret(), autocommit=True, **connection_bounds(url)
            ) as conn:
                await conn.execute(f"LISTEN {PAUSE_CHANNEL}")
                if failing:
                    log.info("listening for the cluster's pause again")
                    failing = False
                yield
                async for _ in conn.notifies():
                    yield
        except psycopg.Error as exc:
            if not failing:
                log.warning(
                    "cannot listen for the cluster's pause: engines follow a pause or resume"
                    " sent elsewhere at their next heartbeat until this connection is back",
                    extra={"ctx": {"error": url.scrub(" ".join(str(exc).split()))}},
                )
            failing = True
        await asyncio.sleep(retry)


def open_error(url: DatabaseUrl, exc: BaseException) -> StorageError:
    """A :class:`StorageError` for what psycopg raised while opening ``url``."""
    text = " ".join(url.scrub(str(exc)).split()) or type(exc).__name__
    lowered = text.lower()
    if "invalid percent-encoded" in lowered or "invalid uri" in lowered:
        advice = (
            "Fix [store] url: a character such as % @ : / in the password must be"
            " percent-encoded (% as %25, @ as %40)."
        )
    elif "password authentication failed" in lowered or "role" in lowered:
        advice = "Check the user and password in [store] url (or WANDERER_CONSOLE_STORE__URL)."
    elif "does not exist" in lowered:
        advice = (
            "Create the database (createdb -O USER DBNAME) or fix its name in [store] url; the"
            " console creates its tables itself."
        )
    elif "permission denied" in lowered:
        advice = "Grant the user CREATE on the database (or its schema): it owns its tables."
    else:
        advice = (
            "Start the PostgreSQL server or fix the host and port in [store] url, then start again."
        )
    return StorageError(url, f"it cannot be opened ({text})", advice)


def _migrated(conn: psycopg.Connection[Any], url: DatabaseUrl) -> None:
    try:
        migrate_postgres(conn)
    except RuntimeError as exc:
        if "newer than this build" not in str(exc):
            raise
        raise SchemaTooNewError(
            url,
            str(exc),
            "Run the version that last used this database, or restore the backup taken before"
            " it (see the deployment guide, Upgrades).",
        ) from exc


def connect_postgres(url: DatabaseUrl) -> PgConnection:
    """A small pool of its own (the config audit, the tenant registry), schema migrated.

    Raises :class:`StorageError` naming the database (password masked) and what to do.
    """
    return PgConnection(_open_pool(url, max_size=2))


def _open_pool(url: DatabaseUrl, *, max_size: int) -> ConnectionPool:
    try:
        with _connect(url) as conn:
            _migrated(conn, url)
    except psycopg.Error as exc:
        raise open_error(url, exc) from None
    pool = ConnectionPool(
        url.secret(),
        min_size=1,
        max_size=max_size,
        kwargs={"autocommit": True, **connection_bounds(url)},
        configure=_bounded_waits,
        timeout=POOL_TIMEOUT,
        name="wanderer-console",
        open=False,
    )
    try:
        pool.open(wait=True, timeout=POOL_TIMEOUT + CONNECT_TIMEOUT)
    except psycopg.Error as exc:
        pool.close()
        raise open_error(url, exc) from None
    return pool


class PostgresStore(SqlStore):
    """The store on a PostgreSQL database (``[store] url``)."""

    _sql = POSTGRESQL

    def __init__(
        self,
        url: DatabaseUrl,
        *,
        pool_size: int = 4,
        on_write_error: Callable[[str], None] | None = None,
    ) -> None:
        self.path = url
        conn = PgConnection(_open_pool(url, max_size=pool_size))
        self._conn = conn
        self._pg = conn
        self._writes = PgWriteGuard(conn, url, on_error=on_write_error)
        self.schema_version = SCHEMA_VERSION  # _open_pool migrated it
        self._init_counters()

    def close(self) -> None:
        """Close the pool and its connections (idempotent)."""
        self._pg.close()

    def ping(self) -> bool:
        """True when the server answers a trivial query (within a second)."""
        return self._pg.ping()

    def outside_commits(self) -> int | None:
        """Not known without a round trip to the server (which the look-up itself costs)."""
        return None

    def check_integrity(self) -> str | None:
        """None when a fresh connection reaches the database and its schema is this build's.

        The server keeps its own files sound (and reports damage in its log); what the console
        can lose is the server, the database or its tables. Blocking: run it in a thread.
        """
        try:
            with _connect(self.path) as conn:
                row = conn.execute("SELECT version FROM schema_version").fetchone()
        except psycopg.Error as exc:
            return " ".join(self.path.scrub(str(exc)).split())
        if row is None or int(row[0]) != SCHEMA_VERSION:
            found = None if row is None else row[0]
            return f"schema version {found}, expected {SCHEMA_VERSION}"
        return None
