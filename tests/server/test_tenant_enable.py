"""``tenant rotate-key`` refuses a disabled tenant; ``tenant enable`` brings one back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wanderer_console.cli import main
from wanderer_console.server.tenants import TenantRegistry

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


def test_rotate_key_on_disabled_tenant_refuses_and_enable_restores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    db = Path(data) / "wanderer-console.db"
    code, added, _ = run(capsys, "tenant", "add", "home", "--data-dir", data)
    assert code == 0
    key = added["key"]
    assert run(capsys, "tenant", "disable", "home", "--data-dir", data)[0] == 0

    code, out, err = run(capsys, "tenant", "rotate-key", "home", "--data-dir", data)
    assert code == 1
    assert out == {}  # no key printed: it would never have worked
    assert "tenant 'home' is disabled" in err["error"]
    assert "wanderer-console tenant enable home --rotate-key" in err["error"]

    registry = TenantRegistry(db)
    try:
        assert registry.authenticate(key) is None
        code, enabled, _ = run(capsys, "tenant", "enable", "home", "--data-dir", data)
        assert code == 0
        assert enabled["tenant"] == "home"
        assert enabled["enabled"] is True
        assert "key" not in enabled
        assert "rotate-key home" in enabled["note"]
        assert registry.authenticate(key) == "home"  # the refused rotation changed nothing

        code, listed, _ = run(capsys, "tenant", "list", "--data-dir", data)
        assert listed["tenants"][0]["enabled"] is True
        code, rotated, _ = run(capsys, "tenant", "rotate-key", "home", "--data-dir", data)
        assert code == 0
        assert registry.authenticate(rotated["key"]) == "home"
    finally:
        registry.close()


def test_enable_with_rotate_key_gives_a_working_key_and_kills_the_old_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    _, added, _ = run(capsys, "tenant", "add", "home", "--data-dir", data)
    run(capsys, "tenant", "disable", "home", "--data-dir", data)
    code, out, _ = run(capsys, "tenant", "enable", "home", "--rotate-key", "--data-dir", data)
    assert code == 0
    assert out["enabled"] is True
    assert out["key"].startswith("wci_")
    assert "shown once" in out["note"]
    registry = TenantRegistry(Path(data) / "wanderer-console.db")
    try:
        assert registry.authenticate(out["key"]) == "home"
        assert registry.authenticate(added["key"]) is None
    finally:
        registry.close()


def test_enable_is_idempotent_and_unknown_tenant_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    run(capsys, "tenant", "add", "home", "--data-dir", data)
    assert run(capsys, "tenant", "enable", "home", "--data-dir", data)[0] == 0
    code, _, err = run(capsys, "tenant", "enable", "ghost", "--data-dir", data)
    assert code == 1
    assert err["error"] == "no tenant 'ghost'"


@pytest.mark.slow
def test_tenant_help_lists_enable_and_the_disabled_rule(tmp_path: Path) -> None:
    env = {**os.environ, "WANDERER_CONSOLE_CONFIG": str(tmp_path / "absent.toml")}
    done = subprocess.run(
        [sys.executable, "-m", "wanderer_console", "tenant", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "enable" in done.stdout
    assert "use enable --rotate-key" in done.stdout
    top = subprocess.run(
        [sys.executable, "-m", "wanderer_console", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert "rotate-key, disable, enable" in top.stdout
