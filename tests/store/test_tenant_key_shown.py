"""A tenant key is stored only once it was printed: ``tenant add|rotate-key|enable
--rotate-key`` into a pipe whose reader has gone changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from wanderer_console.command import EXIT_BROKEN_PIPE
from wanderer_console.server.tenants import TenantRegistry
from wanderer_console.store.base import DatabaseUrl, StoreLocation

pytestmark = pytest.mark.slow  # subprocesses


def _closed_stdout(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``wanderer-console argv`` with a stdout whose reader has already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "wanderer_console", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            env={**os.environ, "WANDERER_CONSOLE_CONFIG": str(tmp_path / "absent.toml")},
        )
    finally:
        os.close(write_end)


def test_a_tenant_key_nobody_read_is_not_stored(
    store_location: StoreLocation, tmp_path: Path
) -> None:
    """``tenant add|rotate-key|enable --rotate-key | cmd`` with cmd already gone: the key is
    printed to no one. It was stored all the same: a tenant whose key nobody has, or a rotated
    key that locked the map host out with its replacement never seen. Nothing is stored now."""
    data = tmp_path / "data"
    data.mkdir()
    if isinstance(store_location, DatabaseUrl):
        where = ["--data-dir", str(data), "--database", store_location.secret()]
    else:
        store_location = data / "wanderer-console.db"
        where = ["--data-dir", str(data)]
    registry = TenantRegistry(store_location)
    try:
        key = registry.add("home")  # the key the map host uses
        registry.add("away")
        registry.disable("away")
        before = {t.slug: t for t in registry.list()}
    finally:
        registry.close()
    for argv in (
        ("tenant", "add", "new"),
        ("tenant", "rotate-key", "home"),
        ("tenant", "enable", "away", "--rotate-key"),
    ):
        done = _closed_stdout(tmp_path, *argv, *where)
        assert done.returncode == EXIT_BROKEN_PIPE, (argv, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
    registry = TenantRegistry(store_location)
    try:
        assert {t.slug: t for t in registry.list()} == before  # no "new"; the others unchanged
        assert registry.authenticate(key) == "home"
    finally:
        registry.close()
