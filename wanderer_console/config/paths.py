"""Where the console keeps its data, for the engine and for every command that reads it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wanderer_console.config.loader import ConfigError, load_settings
from wanderer_console.store.backends import store_location
from wanderer_console.store.base import StoreLocation
from wanderer_console.store.sqlite import DB_NAME

__all__ = [
    "DB_NAME",
    "command_data_dir",
    "command_store",
    "default_data_dir",
    "unknown_location",
]


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/wanderer-console`` (``~/.local/share/wanderer-console``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wanderer-console"


def command_data_dir(args: argparse.Namespace) -> Path:
    """A command's data directory: ``--data-dir``, else the config's, else the default.

    A config that does not load is not an error here (its data directory is then unknown, and
    the default is returned): a command that acts on the store asks :func:`unknown_location`
    first and, when the configuration cannot say, wants ``--data-dir``, with which it works
    while the config is being fixed.
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


def unknown_location(args: argparse.Namespace) -> str | None:
    """Why a command cannot tell which store to use: no ``--data-dir`` (nor ``--database``) was
    given and the configuration that names it does not load. ``None`` when it loads, or when the
    location is given. A command that acts on the store refuses with this rather than use
    whatever store the default data directory holds."""
    if getattr(args, "data_dir", None) is not None or getattr(args, "database", None):
        return None
    config = getattr(args, "config", None)
    try:
        load_settings(config, required=config is not None)
    except ConfigError as exc:
        first = exc.problems[0]
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return (
            f"cannot read the configuration ({first}{more}), so the data directory it names is"
            " unknown: pass --data-dir DIR (the engine's data directory), or fix the"
            " configuration (wanderer-console config check)"
        )
    return None


def command_store(args: argparse.Namespace, data_dir: Path | None = None) -> StoreLocation:
    """A command's store: ``--database``, else ``[store] url`` (config file or environment), else
    the SQLite file in its data directory (``data_dir``, or :func:`command_data_dir`)."""
    url = getattr(args, "database", None)
    if not url:
        config = getattr(args, "config", None)
        try:
            secret = load_settings(config, required=config is not None).settings.store.url
        except ConfigError:
            secret = None
        url = None if secret is None else secret.get_secret_value()
    return store_location(command_data_dir(args) if data_dir is None else data_dir, url)
