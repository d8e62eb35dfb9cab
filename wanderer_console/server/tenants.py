"""Ingest API tenants: who may post events, identified by a key we only keep as a digest.

A tenant is a map key (the same slug as ``[maps.<slug>]``). Its ingest key is random, shown once
at creation or rotation, and stored as a SHA-256 digest: the key carries 256 bits of entropy, so a
fast hash is enough and lets a request be authenticated with one indexed look-up.

Given a change marker (the store's :meth:`~wanderer_console.store.base.Store.outside_commits`),
the registry remembers the digests it found enabled and answers from memory while the marker
stays put. Every change to a key is a commit by a connection other than the store's (this
registry's, the ``tenant`` command's, another process's), which moves the marker, so a key
disabled or rotated anywhere is refused from the next request on, as without the memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Final

from wanderer_console.domain.clock import iso_utc
from wanderer_console.store.backends import connect
from wanderer_console.store.base import DatabaseUrl, StoreLocation, is_unique_violation

__all__ = [
    "KEY_PREFIX",
    "Tenant",
    "TenantDisabledError",
    "TenantError",
    "TenantRegistry",
    "TenantStoreError",
    "database_errors",
    "hash_key",
]

KEY_PREFIX = "wci_"
"""Every ingest key starts with this, so a leaked one is easy to recognise (and to grep for)."""

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_REMEMBERED: Final = 1024
"""Enabled key digests kept at most (all are forgotten when it is reached)."""


class TenantError(Exception):
    """A provisioning request that cannot be done (duplicate slug, unknown tenant, bad slug)."""


class TenantDisabledError(TenantError):
    """The request needs an enabled tenant (``rotate-key`` on a disabled one)."""


class TenantStoreError(Exception):
    """The database did not answer a key look-up (a PostgreSQL restart or failover, a damaged
    file): the key is neither accepted nor refused, and the caller should retry."""


def database_errors(location: StoreLocation) -> tuple[type[Exception], ...]:
    """What a connection to ``location`` raises when the database itself fails (the tenant
    registry's key look-up, the engine's reads behind ``/api/status``)."""
    if isinstance(location, DatabaseUrl):
        import psycopg  # only with a PostgreSQL store (the pool's timeout is one of these)

        return (psycopg.Error,)
    return (sqlite3.Error,)


@dataclass(frozen=True, slots=True)
class Tenant:
    """One tenant as listed (never with its key)."""

    slug: str
    key_prefix: str
    """The first characters of the key, to tell keys apart without revealing them."""
    created_at: float
    rotated_at: float | None
    disabled_at: float | None

    @property
    def enabled(self) -> bool:
        """False once disabled."""
        return self.disabled_at is None

    def as_json(self) -> dict[str, Any]:
        """A JSON-safe view."""
        view = {**asdict(self), "enabled": self.enabled}
        for moment in ("created_at", "rotated_at", "disabled_at"):
            if moment in view:
                view[moment] = iso_utc(view[moment])
        return view


def hash_key(key: str) -> str:
    """The stored digest of an ingest key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class TenantRegistry:
    """Tenants in the console's database, SQLite or PostgreSQL (own connection; the schema is
    migrated).

    ``changes``: a marker that moves whenever a connection other than the store's commits (see
    the module); with it, :meth:`authenticate` answers a known enabled key from memory while
    the marker stays put. Without it (or when it returns ``None``) every call asks the database.
    """

    def __init__(
        self, db_path: StoreLocation, *, changes: Callable[[], int | None] | None = None
    ) -> None:
        self._conn = connect(db_path)
        self._errors = database_errors(db_path)
        self._changes = changes
        self._mark: int | None = None
        self._enabled: dict[str, str] = {}
        """Key digest -> slug, found enabled while the marker was :attr:`_mark`."""

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    @contextlib.contextmanager
    def _keeping(self, key: str, show: Callable[[str], None] | None) -> Iterator[None]:
        """One transaction around a change of key, committed only once ``show(key)`` returned.

        ``show`` prints the key, the only time it is visible: when it raises (its reader went
        away, a closed stdout), the change is rolled back, so no key nobody saw is stored and
        the one in use keeps working."""
        conn = self._conn
        if not isinstance(conn, sqlite3.Connection):  # PostgreSQL's pool: BEGIN … COMMIT
            transaction: Callable[[], contextlib.AbstractContextManager[Any]]
            transaction = conn.transaction  # type: ignore[attr-defined]
            with transaction():
                yield
                if show is not None:
                    show(key)
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            if show is not None:
                show(key)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def add(
        self, slug: str, *, now: float | None = None, show: Callable[[str], None] | None = None
    ) -> str:
        """Create a tenant; return its key (the only time it is visible).

        ``show`` (printing the key) is called before the tenant is committed: when it raises,
        no tenant is created (see :meth:`_keeping`)."""
        if not _SLUG.fullmatch(slug):  # match's "$" also allows a final newline
            raise TenantError(
                f"invalid tenant slug {slug!r}: lower-case letters, digits, '-' or '_' (max 63)"
            )
        key = _new_key()
        self._enabled.clear()
        try:
            with self._keeping(key, show):
                self._conn.execute(
                    "INSERT INTO tenants (slug, key_hash, key_prefix, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (slug, hash_key(key), key[:8], time.time() if now is None else now),
                )
        except Exception as exc:
            if not is_unique_violation(exc):
                raise
            raise TenantError(f"tenant {slug!r} already exists (use rotate-key)") from None
        return key

    def get(self, slug: str) -> Tenant | None:
        """One tenant, or None."""
        row = self._conn.execute(
            "SELECT slug, key_prefix, created_at, rotated_at, disabled_at FROM tenants"
            " WHERE slug = ?",
            (slug,),
        ).fetchone()
        return None if row is None else Tenant(*row)

    def list(self) -> list[Tenant]:
        """Every tenant, by slug."""
        rows = self._conn.execute(
            "SELECT slug, key_prefix, created_at, rotated_at, disabled_at FROM tenants"
            " ORDER BY slug"
        ).fetchall()
        return [Tenant(*row) for row in rows]

    def rotate_key(
        self, slug: str, *, now: float | None = None, show: Callable[[str], None] | None = None
    ) -> str:
        """Replace a tenant's key (the old one stops working at once); return the new key.

        Refused for a disabled tenant: the new key would be refused too, and printing a key that
        never works is worse than an error (:meth:`enable` can rotate while enabling).
        ``show`` (printing the key) is called before the change is committed: when it raises,
        the old key keeps working (see :meth:`_keeping`).
        """
        key = _new_key()
        self._enabled.clear()
        with self._keeping(key, show):
            cursor = self._conn.execute(
                "UPDATE tenants SET key_hash = ?, key_prefix = ?, rotated_at = ?"
                " WHERE slug = ? AND disabled_at IS NULL",
                (hash_key(key), key[:8], time.time() if now is None else now, slug),
            )
            if cursor.rowcount == 0:
                if self.get(slug) is None:
                    raise TenantError(f"no tenant {slug!r}")
                raise TenantDisabledError(
                    f"tenant {slug!r} is disabled, so a new key would be refused too; re-enable"
                    f" it with a new key: wanderer-console tenant enable {slug} --rotate-key"
                    f" (or without --rotate-key to make its current key work again)"
                )
        return key

    def disable(self, slug: str, *, now: float | None = None) -> None:
        """Refuse every request made with this tenant's key from now on."""
        self._enabled.clear()
        cursor = self._conn.execute(
            "UPDATE tenants SET disabled_at = COALESCE(disabled_at, ?) WHERE slug = ?",
            (time.time() if now is None else now, slug),
        )
        if cursor.rowcount == 0:
            raise TenantError(f"no tenant {slug!r}")

    def enable(
        self,
        slug: str,
        *,
        rotate: bool = False,
        now: float | None = None,
        show: Callable[[str], None] | None = None,
    ) -> str | None:
        """Accept the tenant's requests again (idempotent); with ``rotate``, under a new key.

        Without ``rotate`` the key it had when disabled works again, which is wrong when it was
        disabled because that key leaked: ``rotate`` replaces the key in the same transaction, so
        the old key never works again. Returns the new key, or None without ``rotate``. With
        ``rotate``, ``show`` (printing the key) is called before the change is committed: when
        it raises, the tenant stays disabled under its old key (see :meth:`_keeping`).
        """
        stamp = time.time() if now is None else now
        self._enabled.clear()
        if not rotate:
            cursor = self._conn.execute(
                "UPDATE tenants SET disabled_at = NULL WHERE slug = ?", (slug,)
            )
            if cursor.rowcount == 0:
                raise TenantError(f"no tenant {slug!r}")
            return None
        key = _new_key()
        with self._keeping(key, show):
            cursor = self._conn.execute(
                "UPDATE tenants SET disabled_at = NULL, key_hash = ?, key_prefix = ?,"
                " rotated_at = ? WHERE slug = ?",
                (hash_key(key), key[:8], stamp, slug),
            )
            if cursor.rowcount == 0:
                raise TenantError(f"no tenant {slug!r}")
        return key

    def authenticate(self, key: str) -> str | None:
        """The enabled tenant this key belongs to, or None (unknown, wrong or disabled).

        Raises :class:`TenantStoreError` when the database fails the look-up: that says
        nothing of the key, so the caller answers "retry", not "unauthorised".
        """
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        # The marker is read before the look-up: a change committed after it moves it again,
        # so nothing read here outlives the next request.
        mark = None if self._changes is None else self._changes()
        if mark is None or mark != self._mark:
            self._enabled.clear()
            self._mark = mark
        else:
            known = self._enabled.get(digest)
            if known is not None:
                return known
        try:
            row = self._conn.execute(
                "SELECT slug, key_hash FROM tenants WHERE key_hash = ? AND disabled_at IS NULL",
                (digest,),
            ).fetchone()
        except self._errors as exc:
            raise TenantStoreError(str(exc) or type(exc).__name__) from exc
        if row is None or not hmac.compare_digest(str(row[1]), digest):
            return None
        slug = str(row[0])
        if mark is not None:
            if len(self._enabled) >= _REMEMBERED:
                self._enabled.clear()
            self._enabled[digest] = slug
        return slug
