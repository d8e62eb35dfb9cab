"""PostgreSQL for the tests: a fresh schema per test on the server named by an env variable.

``WANDERER_CONSOLE_TEST_PG`` names a database the tests may create schemas in
(``postgresql://wc:wc@127.0.0.1:5432/wc_test``; ``.ci/run`` starts the server and sets it).
Without it the PostgreSQL half of each parametrised test is skipped, unless
``WANDERER_CONSOLE_REQUIRE_PG=1`` (CI) makes that a failure: under CI a skipped PostgreSQL test
would be a backend nobody tested.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from wanderer_console.store.base import DatabaseUrl

__all__ = [
    "PG_URL_ENV",
    "REQUIRE_PG_ENV",
    "connections",
    "end_connections",
    "fresh_schema",
    "named_schema",
    "pg_base_url",
    "pg_required",
]

PG_URL_ENV = "WANDERER_CONSOLE_TEST_PG"
REQUIRE_PG_ENV = "WANDERER_CONSOLE_REQUIRE_PG"


def pg_required() -> bool:
    """True when a PostgreSQL test may not be skipped (CI)."""
    return os.environ.get(REQUIRE_PG_ENV, "").strip() not in ("", "0", "false", "no")


def pg_base_url() -> str:
    """The test server's URL; skips the test without one (fails it when PostgreSQL is required)."""
    url = os.environ.get(PG_URL_ENV, "").strip()
    if not url:
        message = f"PostgreSQL tests need {PG_URL_ENV}=postgresql://USER:PASSWORD@HOST/DB"
        if pg_required():
            pytest.fail(f"{message} ({REQUIRE_PG_ENV} is set)")
        pytest.skip(message)
    return url


def _with_search_path(base: str, schema: str) -> str:
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def fresh_schema(base: str | None = None) -> Iterator[DatabaseUrl]:
    """A new, empty schema (dropped afterwards), as a URL whose connections work in it."""
    import psycopg

    base = base or pg_base_url()
    name = f"wc_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield DatabaseUrl(_with_search_path(base, name))
    finally:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as admin:
            admin.execute("SET lock_timeout = '10s'")
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@contextlib.contextmanager
def named_schema() -> Iterator[DatabaseUrl]:
    """:func:`fresh_schema`, its connections named (``application_name``) so a test can find
    them, and end them as a server restart does (:func:`end_connections`)."""
    with fresh_schema() as base:
        yield DatabaseUrl(f"{base.secret()}&application_name=wc-{uuid.uuid4().hex[:10]}")


def connections(url: DatabaseUrl, *, count: str = "COUNT(*)", where: str = "") -> int:
    """``count`` over the connections opened with ``url`` (by its application name), the one
    asking left out; ``where`` narrows them (``" AND query LIKE 'LISTEN %%'"``)."""
    import psycopg

    name = url.secret().rpartition("application_name=")[2]
    with psycopg.connect(url.secret(), autocommit=True) as admin:
        row = admin.execute(
            f"SELECT {count} FROM pg_stat_activity"
            f" WHERE application_name = %s AND pid <> pg_backend_pid(){where}",
            (name,),
        ).fetchone()
    return 0 if row is None else int(row[0])


def end_connections(url: DatabaseUrl) -> int:
    """End every connection opened with ``url`` (by its application name), as a PostgreSQL
    restart ends them all at once; return how many were ended."""
    return connections(url, count="COUNT(pg_terminate_backend(pid))")
