"""Durable storage: event log, stream cursors and the notification outbox.

:class:`SqliteStore` (one WAL connection, used from the event loop) is what every other package
writes through; :class:`StoredEvent` and :class:`OutboxRow` are the rows they read back. An event,
its notifications and its stream cursor are written in one transaction. Around it: the outbox's
states and dead targets (:mod:`~.outbox`), schema :mod:`~.migrations`, the write guard that
stops delivery while the store cannot write (:mod:`~.writes`, ``StoreWriteError``), integrity
checks at open (:mod:`~.integrity`), WAL checkpoints off the loop (:mod:`~.checkpoint`) and the
data-directory lock (:class:`~.lock.DataDirLock`).
"""

from wanderer_console.store.base import OutboxRow, StoredEvent
from wanderer_console.store.sqlite import SqliteStore

__all__ = ["OutboxRow", "SqliteStore", "StoredEvent"]
