"""Several instances on one database: the instance registry and the map leases.

Used on PostgreSQL, where any number of engines share one database (SQLite stays one engine per
data directory, behind its lock); the statements run on both backends, so their tests do too.

* **Registry** (``instances``): each engine upserts its row at every heartbeat with an expiry
  ``ttl`` seconds ahead; an engine is *alive* while its expiry is ahead of the database's clock.
  A graceful stop expires the row at once (:meth:`LeaseMixin.leave_cluster`).
* **Leases** (``leases``, one row per resource, ``map:<tenant>``): an owner, an expiry and a
  *fencing token*. :meth:`~LeaseMixin.acquire_lease` takes a lease only when it is free
  (released, or expired by the database's clock) and then increases its token, so every holder
  of a lease has a token larger than every earlier holder's. A heartbeat renews only the leases
  still unexpired: one that expired (the instance stalled past it) is lost even if nobody took it
  yet, and must be acquired again, under a new token.
* **Fencing.** A claim of outbox rows under a lease (:class:`~.base.LeaseFence`) checks, in the
  same statement, that the lease is still the caller's, under that token, and unexpired
  (:meth:`~wanderer_console.store.outbox.OutboxMixin.claim`); the claimed rows record who claimed
  them under which token, so a claim left by an instance that lost its lease is told apart from
  one in flight (:meth:`~wanderer_console.store.outbox.OutboxMixin.recover_in_flight`).
* **The cluster's pause** (``delivery_pause``, one row while paused): an operator's pause of
  delivery holds every engine on the database; each reads it at start and at every heartbeat
  (:meth:`LeaseMixin.heartbeat` returns it), and a resume on any engine deletes it. On
  PostgreSQL a pause and a resume are announced (``NOTIFY``, see
  :func:`~.postgres.pause_changes`), so the engines heartbeat, and follow it, at once.

Every time here is the database's clock (:attr:`~.dialect.Dialect.clock`), never an instance's:
instances on several hosts disagree about the time, the server does not disagree with itself.
"""

from __future__ import annotations

from typing import Any

from wanderer_console.store.base import (
    ClusterPause,
    ClusterState,
    DbConnection,
    InstanceInfo,
    InstanceRow,
    LeaseFence,
    LeaseGrant,
    LeaseRow,
)
from wanderer_console.store.dialect import Dialect
from wanderer_console.store.writes import WriteGuard

__all__ = ["FORGET_INSTANCES_AFTER", "PAUSE_SCOPE", "LeaseMixin"]

FORGET_INSTANCES_AFTER = 86_400.0
"""Seconds after its expiry an instance's registry row is deleted (by any heartbeat)."""

_INSTANCE_COLUMNS = (
    "instance_id, host, pid, version, started_at, heartbeat_at, expires_at, stopped_at"
)
_LEASE_COLUMNS = "resource, owner, token, expires_at, acquired_at, renewed_at"
PAUSE_SCOPE = "cluster"
"""The key of the cluster's pause in ``delivery_pause`` (the only row it holds)."""


def _instance(row: Any) -> InstanceRow:
    i, host, pid, version, started, beat, expires, stopped = row
    return InstanceRow(
        str(i),
        str(host),
        int(pid),
        str(version),
        float(started),
        float(beat),
        float(expires),
        None if stopped is None else float(stopped),
    )


def _lease(row: Any) -> LeaseRow:
    resource, owner, token, expires, acquired, renewed = row
    return LeaseRow(
        str(resource),
        None if owner is None else str(owner),
        int(token),
        float(expires),
        None if acquired is None else float(acquired),
        None if renewed is None else float(renewed),
    )


class LeaseMixin:
    """The registry and leases half of a store (:class:`~wanderer_console.store.sql.SqlStore`)."""

    _conn: DbConnection
    _writes: WriteGuard
    _sql: Dialect

    def _db_now(self, conn: DbConnection) -> float:
        return float(conn.execute(f"SELECT {self._sql.clock}").fetchone()[0])

    def _state(self, conn: DbConnection, now: float, held: list[LeaseRow]) -> ClusterState:
        instances = [
            _instance(row)
            for row in conn.execute(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE expires_at > ?"
                " ORDER BY started_at, instance_id",
                (now,),
            )
        ]
        leases = [
            _lease(row)
            for row in conn.execute(f"SELECT {_LEASE_COLUMNS} FROM leases ORDER BY resource")
        ]
        return ClusterState(now, instances, leases, held, self._pause(conn))

    def _pause(self, conn: DbConnection) -> ClusterPause | None:
        row = conn.execute(
            "SELECT paused_by, paused_at, paused_on FROM delivery_pause WHERE scope = ?",
            (PAUSE_SCOPE,),
        ).fetchone()
        return None if row is None else ClusterPause(str(row[0]), float(row[1]), str(row[2]))

    def heartbeat(self, instance: InstanceInfo, ttl: float) -> ClusterState:
        """Say this instance is alive for ``ttl`` more seconds and renew the leases it still
        holds (unexpired); return the registry, the leases, and the ones renewed (``held``).

        A lease of this instance that is not in ``held`` is lost: it expired, or another
        instance took it.
        """
        with self._writes.transaction("heartbeat") as conn:
            now = self._db_now(conn)
            conn.execute(
                "INSERT INTO instances (instance_id, host, pid, version, started_at,"
                " heartbeat_at, expires_at, stopped_at) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)"
                " ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,"
                " expires_at = excluded.expires_at, stopped_at = NULL",
                (*instance, now, now + ttl),
            )
            held = [
                _lease(row)
                for row in conn.execute(
                    "UPDATE leases SET expires_at = ?, renewed_at = ?"
                    f" WHERE owner = ? AND expires_at > ? RETURNING {_LEASE_COLUMNS}",
                    (now + ttl, now, instance.instance_id, now),
                )
            ]
            conn.execute(
                "DELETE FROM instances WHERE expires_at < ?", (now - FORGET_INSTANCES_AFTER,)
            )
            return self._state(conn, now, sorted(held))

    def acquire_lease(self, resource: str, owner: str, ttl: float) -> LeaseGrant | None:
        """Take ``resource``'s lease for ``ttl`` seconds if it is free (never held, released,
        or expired); its token grows by one. ``None`` when another instance holds it."""
        with self._writes.transaction("acquire lease") as conn:
            now = self._db_now(conn)
            found = conn.execute(
                f"SELECT {_LEASE_COLUMNS} FROM leases WHERE resource = ?", (resource,)
            ).fetchone()
            row = conn.execute(
                "INSERT INTO leases (resource, owner, token, expires_at, acquired_at, renewed_at)"
                " VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (resource) DO UPDATE SET"
                " owner = excluded.owner, token = leases.token + 1,"
                " expires_at = excluded.expires_at, acquired_at = excluded.acquired_at,"
                " renewed_at = excluded.renewed_at"
                " WHERE leases.owner IS NULL OR leases.expires_at <= ?"
                f" RETURNING {_LEASE_COLUMNS}",
                (resource, owner, now + ttl, now, now, now),
            ).fetchone()
        if row is None:
            return None
        return LeaseGrant(_lease(row), None if found is None else _lease(found))

    def release_lease(self, fence: LeaseFence) -> bool:
        """Give a lease up at once (a graceful stop, a rebalance); False when it was no longer
        the caller's under that token."""
        with self._writes.transaction("release lease") as conn:
            now = self._db_now(conn)
            cursor = conn.execute(
                "UPDATE leases SET owner = NULL, expires_at = ?"
                " WHERE resource = ? AND owner = ? AND token = ?",
                (now, *fence),
            )
            return int(cursor.rowcount) == 1

    def leave_cluster(self, instance_id: str) -> int:
        """A graceful stop: release every lease of the instance and expire its registry row, so
        the others take its maps over at their next look; return the leases released."""
        with self._writes.transaction("leave cluster") as conn:
            now = self._db_now(conn)
            released = conn.execute(
                "UPDATE leases SET owner = NULL, expires_at = ? WHERE owner = ?",
                (now, instance_id),
            ).rowcount
            conn.execute(
                "UPDATE instances SET expires_at = ?, stopped_at = ? WHERE instance_id = ?",
                (now, now, instance_id),
            )
        return int(released)

    def cluster_state(self) -> ClusterState:
        """The live instances and every lease, read at the database's clock (``db status``)."""
        now = self._db_now(self._conn)
        return self._state(self._conn, now, [])

    def pause_cluster(self, actor: str, instance_id: str) -> ClusterPause:
        """Pause delivery on every engine of the database; a cluster already paused keeps who
        paused it first and when. Returns the pause as now stored."""
        with self._writes.transaction("pause cluster") as conn:
            now = self._db_now(conn)
            conn.execute(
                "INSERT INTO delivery_pause (scope, paused_by, paused_at, paused_on)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (scope) DO NOTHING",
                (PAUSE_SCOPE, actor, now, instance_id),
            )
            self._announce_pause(conn)
            kept = self._pause(conn)
        return kept or ClusterPause(actor, now, instance_id)

    def resume_cluster(self) -> bool:
        """Lift the cluster's pause; False when it was not paused."""
        with self._writes.transaction("resume cluster") as conn:
            cursor = conn.execute("DELETE FROM delivery_pause WHERE scope = ?", (PAUSE_SCOPE,))
            self._announce_pause(conn)
            return int(cursor.rowcount) == 1

    def _announce_pause(self, conn: DbConnection) -> None:
        """Tell the engines listening that the pause changed (at the commit; PostgreSQL)."""
        if self._sql.notify_pause:
            conn.execute(self._sql.notify_pause)

    def cluster_pause(self) -> ClusterPause | None:
        """The cluster's pause, if one is set (read at start, before the dispatcher runs)."""
        return self._pause(self._conn)

    def lease_fence_valid(self, fence: LeaseFence) -> bool:
        """True when ``fence``'s lease is still the holder's, under its token, and unexpired."""
        row = self._conn.execute(
            "SELECT 1 FROM leases WHERE resource = ? AND owner = ? AND token = ?"
            f" AND expires_at > {self._sql.clock}",
            tuple(fence),
        ).fetchone()
        return row is not None
