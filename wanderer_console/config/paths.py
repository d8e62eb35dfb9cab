"""Where the console keeps its data, for the engine and for every command that reads it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wanderer_console.config.loader import ConfigError, load_settings
from wanderer_console.store.sqlite import DB_NAME

__all__ = ["DB_NAME", "command_data_dir", "default_data_dir"]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/wanderer-console`` (``~/.local/share/wanderer-console``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wanderer-console"


def command_data_dir(args: argparse.Namespace) -> Path:
    """A command's data directory: ``--data-dir``, else the config's, else the default.

    A config that does not load is not an error here: commands that only read the database
    (``config history``, ``outbox list``) must work when the config is being fixed.
    """
    given = getattr(args, "data_dir", None)
    if given is not None:
        return Path(given)
    config = getattr(args, "config", None)
    try:
        configured = load_settings(config, required=config is not None).settings.console.data_dir
    except ConfigError:
        configured = None
    return Path(configured) if configured is not None else default_data_dir()
