"""Opening a store where it lives: the SQLite file (default) or a PostgreSQL database.

The PostgreSQL module (and psycopg with it) is imported only when a URL is given, so the
default, SQLite, loads nothing more than it did.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wanderer_console.store.base import DatabaseUrl, DbConnection, Store, StoreLocation
from wanderer_console.store.sqlite import DB_NAME, SqliteStore, open_database

__all__ = ["connect", "open_store", "store_location"]


def store_location(data_dir: Path, url: str | None) -> StoreLocation:
    """``url`` as a :class:`DatabaseUrl` when given, else the SQLite file in ``data_dir``."""
    return DatabaseUrl(url) if url else data_dir / DB_NAME


def open_store(
    location: StoreLocation,
    *,
    checkpoint_interval: float = 1.0,
    on_write_error: Callable[[str], None] | None = None,
) -> Store:
    """The store at ``location``, its schema migrated (``StorageError`` when it cannot be)."""
    if isinstance(location, DatabaseUrl):
        from wanderer_console.store.postgres import PostgresStore

        return PostgresStore(location, on_write_error=on_write_error)
    return SqliteStore(
        location, checkpoint_interval=checkpoint_interval, on_write_error=on_write_error
    )


def connect(location: StoreLocation) -> DbConnection:
    """A connection of its own to the store's database, schema migrated (the config audit and
    the tenant registry keep one): ``?`` placeholders, autocommit."""
    if isinstance(location, DatabaseUrl):
        from wanderer_console.store.postgres import connect_postgres

        return connect_postgres(location)
    return open_database(location)
