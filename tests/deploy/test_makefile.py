"""The Makefile: ``make demo`` and ``make test`` bootstrap ``.venv`` and run the README's commands.

Only ``make -n`` runs here (it prints the commands without running them), in a scratch directory
holding a copy of the Makefile: nothing is installed. The commands are the README's quick start,
and ``.ci/run`` runs the same test command.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.deploy.files import ROOT

INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e '.[dev]'"
DEMO = ".venv/bin/wanderer-console demo --no-ui --duration 20"
TEST = ".venv/bin/python -m pytest -q -n 3 --cov"


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    """A directory with the Makefile and a pyproject.toml, and no virtual environment."""
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("", encoding="utf-8")
    return tmp_path


def _dry_run(directory: Path, *targets: str) -> list[str]:
    """The commands ``make -n`` would run, one per line."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("MAKE")}
    env.pop("PYTHON", None)  # the Makefile's default interpreter, as on a fresh machine
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *targets],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_readme_and_ci_run_these_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in (INSTALL, DEMO, TEST):
        assert command in readme, f"the README no longer shows {command!r}: update the Makefile"
    assert "python -m pytest -q -n 3 --cov" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize(("target", "command"), [("demo", DEMO), ("test", TEST)])
def test_a_fresh_clone_gets_the_environment_first(scratch: Path, target: str, command: str) -> None:
    lines = _dry_run(scratch, target)
    assert INSTALL in lines
    assert command in lines
    assert lines.index(INSTALL) < lines.index(command)


@pytest.mark.parametrize(("target", "command"), [("demo", DEMO), ("test", TEST)])
def test_an_existing_environment_is_used_as_it_is(scratch: Path, target: str, command: str) -> None:
    script = scratch / ".venv" / "bin" / "wanderer-console"
    script.parent.mkdir(parents=True)
    script.write_text("", encoding="utf-8")
    later = time.time() + 10
    os.utime(script, (later, later))  # installed after pyproject.toml last changed
    assert _dry_run(scratch, target) == [command]


def test_a_changed_pyproject_installs_again(scratch: Path) -> None:
    script = scratch / ".venv" / "bin" / "wanderer-console"
    script.parent.mkdir(parents=True)
    script.write_text("", encoding="utf-8")
    earlier = time.time() - 10
    os.utime(script, (earlier, earlier))  # pyproject.toml changed since (new dependencies)
    assert _dry_run(scratch, "test")[0] == INSTALL


def test_the_compose_and_bench_targets(scratch: Path) -> None:
    (scratch / ".env").write_text("", encoding="utf-8")
    assert _dry_run(scratch, "up") == ["docker compose up --detach --build"]
    assert _dry_run(scratch, "down") == ["docker compose down"]
    health = _dry_run(scratch, "health")
    assert health[0].startswith("curl ")
    assert health[0].endswith("http://127.0.0.1:8787/ready")
    assert "--fail-with-body" in health[0]  # a 503 exits non-zero and shows the reasons
    assert _dry_run(scratch, "bench")[-1] == ".venv/bin/wanderer-console bench --quick"
    assert _dry_run(scratch, "attach") == ["docker compose exec console wanderer-console attach"]


def test_up_without_an_env_file_says_what_to_do(scratch: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "up"],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    assert "cp .env.example .env" in result.stderr
    assert "POSTGRES_PASSWORD" in result.stderr
