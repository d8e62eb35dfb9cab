"""Where a command finds its data: one reading of the configuration per command."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from wanderer_console.config.paths import (
    UnknownLocationError,
    command_data_dir,
    command_store,
    unknown_location,
)


def _config(path: Path, data_dir: Path) -> Path:
    path.write_text(f'[console]\ndata_dir = "{data_dir}"\n')
    return path


def test_a_command_reads_the_configuration_once_and_keeps_to_that_reading(
    tmp_path: Path,
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    config = _config(tmp_path / "config.toml", first)
    args = argparse.Namespace(config=config, data_dir=None, database=None)
    assert unknown_location(args) is None
    # The file is edited while the command runs (an operator saving, a ConfigMap update):
    # the command goes on with the configuration it checked, not half of each.
    _config(config, second)
    assert command_data_dir(args) == first
    assert command_store(args) == first / "wanderer-console.db"


def test_a_configuration_that_does_not_load_is_refused_alike_each_time(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[console\n")
    args = argparse.Namespace(config=config, data_dir=None, database=None)
    reason = unknown_location(args)
    assert reason is not None
    assert "pass --data-dir DIR" in reason
    config.write_text(f'[console]\ndata_dir = "{tmp_path}"\n')  # fixed meanwhile
    with pytest.raises(UnknownLocationError, match="pass --data-dir DIR"):
        command_data_dir(args)
