"""``wanderer-console tenant ...``: JSON output, keys shown once and stored hashed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from wanderer_console.cli import main
from wanderer_console.server.tenants import TenantRegistry, hash_key

_REFUSAL = {"error", "command", "exit_code", "database"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict, dict]:
    """The exit code, the answer and the refusal (the one JSON object on stdout of a refused
    action, nothing else in it: no key printed; its line on stderr says the same)."""
    code = main(list(argv))
    captured = capsys.readouterr()
    out = json.loads(captured.out) if captured.out.strip() else {}
    if "error" not in out:
        return code, out, {}
    assert set(out) <= _REFUSAL, out
    assert captured.err == f"wanderer-console {out['command']}: {out['error']}\n"
    return code, {}, out


@pytest.fixture(autouse=True)
def _no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WANDERER_CONSOLE_CONFIG", str(tmp_path / "absent.toml"))


def test_add_list_rotate_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    code, added, _ = run(capsys, "tenant", "add", "home", "--data-dir", data)
    assert code == 0
    key = added["key"]
    assert added["tenant"] == "home"
    assert key.startswith("wci_")
    assert "shown once" in added["note"]

    # Stored hashed: the key itself is nowhere in the database.
    db = Path(data) / "wanderer-console.db"
    assert key.encode() not in db.read_bytes()
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT key_hash FROM tenants WHERE slug = 'home'").fetchone()
    assert stored == hash_key(key)

    code, listed, _ = run(capsys, "tenant", "list", "--data-dir", data)
    assert code == 0
    (tenant,) = listed["tenants"]
    assert tenant["slug"] == "home"
    assert tenant["enabled"] is True
    assert "key" not in tenant

    code, rotated, _ = run(capsys, "tenant", "rotate-key", "home", "--data-dir", data)
    assert code == 0
    assert rotated["key"] != key
    registry = TenantRegistry(db)
    try:
        assert registry.authenticate(key) is None
        assert registry.authenticate(rotated["key"]) == "home"
        code, disabled, _ = run(capsys, "tenant", "disable", "home", "--data-dir", data)
        assert code == 0
        assert disabled == {"tenant": "home", "enabled": False, "database": str(db)}
        assert registry.authenticate(rotated["key"]) is None
    finally:
        registry.close()


def test_duplicate_slug_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert run(capsys, "tenant", "add", "home", "--data-dir", data)[0] == 0
    code, out, err = run(capsys, "tenant", "add", "home", "--data-dir", data)
    assert code == 1
    assert out == {}
    assert err["error"] == "tenant 'home' already exists (use rotate-key)"


def test_unknown_tenant_and_bad_slug(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    code, _, err = run(capsys, "tenant", "rotate-key", "ghost", "--data-dir", data)
    assert code == 1
    assert err["error"] == "no tenant 'ghost'"
    code, _, err = run(capsys, "tenant", "add", "Bad Slug!", "--data-dir", data)
    assert code == 1
    assert "invalid tenant slug" in err["error"]


def test_a_slug_with_a_trailing_newline_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``$'home\\n'`` (a pasted line) is not the map 'home': a tenant under it would store every
    event under a slug no map has, so nothing would ever reach Discord."""
    data = str(tmp_path / "data")
    code, out, err = run(capsys, "tenant", "add", "home\n", "--data-dir", data)
    assert code == 1
    assert out == {}
    assert "invalid tenant slug" in err["error"]
    assert run(capsys, "tenant", "list", "--data-dir", data)[1]["tenants"] == []
