"""Durable storage: event log, stream cursors and the notification outbox."""

from wanderer_console.store.base import OutboxRow, StoredEvent
from wanderer_console.store.sqlite import SqliteStore

__all__ = ["OutboxRow", "SqliteStore", "StoredEvent"]
