"""Ingest API tenants: who may post events, identified by a key we only keep as a digest.

A tenant is a map key (the same slug as ``[maps.<slug>]``). Its ingest key is random, shown once
at creation or rotation, and stored as a SHA-256 digest: the key carries 256 bits of entropy, so a
fast hash is enough and lets a request be authenticated with one indexed look-up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

from wanderer_console.domain.clock import iso_utc
from wanderer_console.store.backends import connect
from wanderer_console.store.base import StoreLocation, is_unique_violation

__all__ = [
    "KEY_PREFIX",
    "Tenant",
    "TenantDisabledError",
    "TenantError",
    "TenantRegistry",
    "hash_key",
]

KEY_PREFIX = "wci_"
"""Every ingest key starts with this, so a leaked one is easy to recognise (and to grep for)."""

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class TenantError(Exception):
    """A provisioning request that cannot be done (duplicate slug, unknown tenant, bad slug)."""


class TenantDisabledError(TenantError):
    """The request needs an enabled tenant (``rotate-key`` on a disabled one)."""


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
    migrated)."""

    def __init__(self, db_path: StoreLocation) -> None:
        self._conn = connect(db_path)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._conn.close()

    def add(self, slug: str, *, now: float | None = None) -> str:
        """Create a tenant; return its key (the only time it is visible)."""
        if not _SLUG.match(slug):
            raise TenantError(
                f"invalid tenant slug {slug!r}: lower-case letters, digits, '-' or '_' (max 63)"
            )
        key = _new_key()
        try:
            self._conn.execute(
                "INSERT INTO tenants (slug, key_hash, key_prefix, created_at) VALUES (?, ?, ?, ?)",
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

    def rotate_key(self, slug: str, *, now: float | None = None) -> str:
        """Replace a tenant's key (the old one stops working at once); return the new key.

        Refused for a disabled tenant: the new key would be refused too, and printing a key that
        never works is worse than an error (:meth:`enable` can rotate while enabling).
        """
        key = _new_key()
        cursor = self._conn.execute(
            "UPDATE tenants SET key_hash = ?, key_prefix = ?, rotated_at = ?"
            " WHERE slug = ? AND disabled_at IS NULL",
            (hash_key(key), key[:8], time.time() if now is None else now, slug),
        )
        if cursor.rowcount == 0:
            if self.get(slug) is None:
                raise TenantError(f"no tenant {slug!r}")
            raise TenantDisabledError(
                f"tenant {slug!r} is disabled, so a new key would be refused too; re-enable it"
                f" with a new key: wanderer-console tenant enable {slug} --rotate-key"
                f" (or without --rotate-key to make its current key work again)"
            )
        return key

    def disable(self, slug: str, *, now: float | None = None) -> None:
        """Refuse every request made with this tenant's key from now on."""
        cursor = self._conn.execute(
            "UPDATE tenants SET disabled_at = COALESCE(disabled_at, ?) WHERE slug = ?",
            (time.time() if now is None else now, slug),
        )
        if cursor.rowcount == 0:
            raise TenantError(f"no tenant {slug!r}")

    def enable(self, slug: str, *, rotate: bool = False, now: float | None = None) -> str | None:
        """Accept the tenant's requests again (idempotent); with ``rotate``, under a new key.

        Without ``rotate`` the key it had when disabled works again, which is wrong when it was
        disabled because that key leaked: ``rotate`` replaces the key in the same transaction, so
        the old key never works again. Returns the new key, or None without ``rotate``.
        """
        stamp = time.time() if now is None else now
        key = _new_key() if rotate else None
        if key is None:
            cursor = self._conn.execute(
                "UPDATE tenants SET disabled_at = NULL WHERE slug = ?", (slug,)
            )
        else:
            cursor = self._conn.execute(
                "UPDATE tenants SET disabled_at = NULL, key_hash = ?, key_prefix = ?,"
                " rotated_at = ? WHERE slug = ?",
                (hash_key(key), key[:8], stamp, slug),
            )
        if cursor.rowcount == 0:
            raise TenantError(f"no tenant {slug!r}")
        return key

    def authenticate(self, key: str) -> str | None:
        """The enabled tenant this key belongs to, or None (unknown, wrong or disabled)."""
        if not key.startswith(KEY_PREFIX):
            return None
        digest = hash_key(key)
        row = self._conn.execute(
            "SELECT slug, key_hash FROM tenants WHERE key_hash = ? AND disabled_at IS NULL",
            (digest,),
        ).fetchone()
        if row is None or not hmac.compare_digest(str(row[1]), digest):
            return None
        return str(row[0])
