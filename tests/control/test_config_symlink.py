"""A config path that is a symlink, edited from an attached console over the real socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.control.conftest import text_of
from wanderer_console.http.control_client import RemoteBackend
from wanderer_console.launch import demo_config_text
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator


@pytest.fixture
def config_file(sim: Simulator, tmp_path: Path) -> Path:
    """The demo config in a directory of its own (a checkout, a secrets mount), reached
    through a link in the data directory."""
    mounted = tmp_path / "mounted"
    mounted.mkdir()
    target = mounted / "config.toml"
    target.write_text(demo_config_text(sim, data_dir=tmp_path), encoding="utf-8")
    target.chmod(0o640)
    link = tmp_path / "config.toml"
    link.symlink_to(target)
    return link


def points_at(link: Path) -> Path | None:
    """Where ``link`` points, ``None`` once it is no link (plain functions: small local calls
    need no thread)."""
    return link.readlink() if link.is_symlink() else None


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


async def test_a_console_save_writes_through_the_link_to_its_target(
    engine: Runtime, remote: RemoteBackend, config_file: Path
) -> None:
    target = points_at(config_file)
    assert target is not None
    loaded = await remote.config_text()
    edited = loaded.text.replace("dry_run = false", "dry_run = true")

    result = await remote.apply_config(edited, base_digest=loaded.digest, actor="t")

    assert result.status == "applied", result
    assert engine.settings.console.dry_run is True
    assert points_at(config_file) == target  # it was replaced by a regular file
    assert "dry_run = true" in text_of(target)
    assert mode_of(target) == 0o640
    # A flag flipped from the console goes the same way.
    flipped = await remote.set_flag(None, "kill", False, actor="t")
    assert flipped.ok, flipped.message
    assert points_at(config_file) == target
    assert "kill = false" in text_of(target)
