"""The tenant registry's memory of enabled keys: used while no other connection commits, dropped
the moment one does, so a key disabled or rotated anywhere is refused from the next request on.

The look-ups are counted where they happen (SQLite's statement trace on the registry's own
connection), and the changes come from another connection in this process and from the
``tenant`` command in a child process, as an operator would run it beside the engine.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from wanderer_console.runtime import Runtime
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.store.sqlite import DB_NAME, SqliteStore

REPO = Path(__file__).resolve().parents[2]


class Traced:
    """A registry over ``store``'s database whose key look-ups are counted."""

    def __init__(self, store: SqliteStore) -> None:
        self.registry = TenantRegistry(store.path, changes=store.outside_commits)
        self.lookups = 0
        conn = self.registry._conn
        assert isinstance(conn, sqlite3.Connection)
        conn.set_trace_callback(self._trace)

    def _trace(self, statement: str) -> None:
        if statement.startswith("SELECT slug, key_hash FROM tenants"):
            self.lookups += 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / DB_NAME, checkpoint_interval=3600)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def traced(store: SqliteStore) -> Iterator[Traced]:
    made = Traced(store)
    try:
        yield made
    finally:
        made.registry.close()


def cli(data_dir: Path, *argv: str) -> dict[str, object]:
    """``wanderer-console tenant ARGV --data-dir DATA_DIR`` in a child process, its JSON."""
    env = {**os.environ, "WANDERER_CONSOLE_CONFIG": str(data_dir / "absent.toml")}
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console", "tenant", *argv, "--data-dir", str(data_dir)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def test_a_known_key_is_answered_from_memory_across_the_stores_own_commits(
    store: SqliteStore, traced: Traced
) -> None:
    key = traced.registry.add("home")
    assert traced.registry.authenticate(key) == "home"
    assert traced.lookups == 1
    for index in range(5):  # the engine's writes: its own commits leave the memory valid
        store.set_cursor("sse:home", f"cursor-{index}")
        assert traced.registry.authenticate(key) == "home"
    assert traced.lookups == 1
    # An unknown key is always looked up (nothing is remembered of refusals).
    assert traced.registry.authenticate("wci_unknown") is None
    assert traced.registry.authenticate("wci_unknown") is None
    assert traced.lookups == 3


def test_a_key_disabled_through_another_connection_is_refused_at_once(
    store: SqliteStore, traced: Traced
) -> None:
    key = traced.registry.add("home")
    assert traced.registry.authenticate(key) == "home"
    assert traced.registry.authenticate(key) == "home"
    other = TenantRegistry(store.path)
    try:
        other.disable("home")
        assert traced.registry.authenticate(key) is None
        other.enable("home")
        assert traced.registry.authenticate(key) == "home"
    finally:
        other.close()


@pytest.mark.slow
def test_keys_changed_by_the_tenant_command_in_another_process_take_effect_at_once(
    store: SqliteStore, traced: Traced, tmp_path: Path
) -> None:
    added = cli(tmp_path, "add", "home")
    key = str(added["key"])
    assert traced.registry.authenticate(key) == "home"
    assert traced.registry.authenticate(key) == "home"
    assert traced.lookups == 1

    cli(tmp_path, "disable", "home")
    assert traced.registry.authenticate(key) is None
    enabled = cli(tmp_path, "enable", "home", "--rotate-key")
    new_key = str(enabled["key"])
    assert traced.registry.authenticate(key) is None
    assert traced.registry.authenticate(new_key) == "home"
    rotated = cli(tmp_path, "rotate-key", "home")
    assert traced.registry.authenticate(new_key) is None
    assert traced.registry.authenticate(str(rotated["key"])) == "home"


def test_without_a_marker_every_call_asks_the_database(store: SqliteStore) -> None:
    # PostgreSQL's store has no cheap marker (outside_commits is None): no memory at all.
    registry = TenantRegistry(store.path, changes=lambda: None)
    lookups: list[str] = []
    conn = registry._conn
    assert isinstance(conn, sqlite3.Connection)
    conn.set_trace_callback(lambda sql: lookups.append(sql) if "FROM tenants" in sql else None)
    try:
        key = registry.add("home")
        for _ in range(3):
            assert registry.authenticate(key) == "home"
        assert len(lookups) == 3
    finally:
        registry.close()


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_over_http_a_key_disabled_by_the_tenant_command_is_refused_on_the_next_request(
    runtime: Runtime, client: httpx.AsyncClient, ingest_key: str
) -> None:
    headers = {"authorization": f"Bearer {ingest_key}"}
    event = {"title": "Fleet forming", "notification_type": "rally"}
    for _ in range(3):  # the key is remembered after the first
        accepted = await client.post("/api/v1/events", json=event, headers=headers)
        assert accepted.json()["accepted"] == 1, accepted.text
    database = runtime.database
    assert isinstance(database, Path)
    assert runtime.http is not None
    slug = runtime.http.tenants.list()[0].slug
    cli(database.parent, "disable", slug)
    refused = await client.post("/api/v1/events", json=event, headers=headers)
    assert refused.status_code == 401
