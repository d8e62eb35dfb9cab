"""Where the console keeps its data, for the engine and for every command that reads it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from wanderer_console.command import database_url
from wanderer_console.config.loader import ConfigError, load_settings
from wanderer_console.config.model import Settings
from wanderer_console.store.backends import store_location
from wanderer_console.store.base import StoreLocation
from wanderer_console.store.lock import recorded_store
from wanderer_console.store.sqlite import DB_NAME

__all__ = [
    "DATABASE_HELP",
    "DB_NAME",
    "UnknownLocationError",
    "command_data_dir",
    "command_store",
    "default_data_dir",
    "store_arguments",
    "unknown_location",
]

DATABASE_HELP = (
    "the engine's PostgreSQL database (postgresql://USER:PASSWORD@HOST/DB) when it was started"
    " with --database URL (default: [store] url or WANDERER_CONSOLE_STORE__URL, else the SQLite"
    " file in the data dir); prefer the variable: the command line shows in ps"
)
"""``--database``'s help, the same for every command that reads or writes the store."""


def store_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--data-dir`` and ``--database``: where a command finds the engine's
    store (:func:`command_store`), the same on every command that reads or writes it."""
    parser.add_argument(
        "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="TOML config file"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="the engine's data directory (default: from the config, else the XDG data dir)",
    )
    parser.add_argument(
        "--database",
        type=database_url,
        metavar="URL",
        default=argparse.SUPPRESS,
        help=DATABASE_HELP,
    )


class UnknownLocationError(Exception):
    """No ``--data-dir`` (nor ``--database``) was given and the configuration that names the
    store does not load: a command must not guess (the default data directory may hold another
    engine's database, a demo's). Its text says what to do."""


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/wanderer-console`` (``~/.local/share/wanderer-console``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wanderer-console"


def command_data_dir(args: argparse.Namespace) -> Path:
    """A command's data directory: ``--data-dir``, else the config's, else the default.

    Raises :class:`UnknownLocationError` when the config does not load (its data directory is
    then unknown) and ``--data-dir`` was not given: a command checks :func:`unknown_location`
    first and refuses with its text; with ``--data-dir`` it works while the config is being
    fixed.
    """
    given = getattr(args, "data_dir", None)
    if given is not None:
        return Path(given)
    configured = _settings(args).console.data_dir
    return Path(configured) if configured is not None else default_data_dir()


def unknown_location(args: argparse.Namespace, *, store: bool = True) -> str | None:
    """Why a command cannot tell which store to use: no ``--data-dir`` (nor ``--database``) was
    given and the configuration that names it does not load. ``None`` when it loads, or when the
    location is given. A command that acts on the store refuses with this rather than use
    whatever store the default data directory holds. With ``store`` (the default), also when
    :func:`command_store` cannot tell the store (the data directory's engine is on PostgreSQL
    and no URL was given)."""
    try:
        if getattr(args, "data_dir", None) is None and not getattr(args, "database", None):
            _settings(args)
        if store:
            command_store(args)
    except UnknownLocationError as exc:
        return str(exc)
    return None


def command_store(args: argparse.Namespace, data_dir: Path | None = None) -> StoreLocation:
    """A command's store: ``--database``, else ``[store] url`` (config file or environment), else
    the SQLite file in its data directory (``data_dir``, or :func:`command_data_dir`).

    With ``--data-dir`` and a config that does not load, the SQLite file there; with neither
    ``--data-dir`` nor ``--database``, such a config raises :class:`UnknownLocationError`. So
    does the SQLite file of a data directory whose engine recorded, at its last start, that it
    stores in PostgreSQL (started with ``--database URL``, which no config here repeats): that
    file is not its store (an empty one, or the copy ``db migrate-to`` left), and the URL's
    password was never recorded, so the command asks for ``--database``."""
    url = getattr(args, "database", None)
    if not url:
        try:
            secret = _settings(args).store.url
        except UnknownLocationError:
            if getattr(args, "data_dir", None) is None:
                raise
            secret = None
        url = None if secret is None else secret.get_secret_value()
    if url:  # the data directory does not matter (nor need its config load)
        return store_location(Path() if data_dir is None else data_dir, url)
    where = command_data_dir(args) if data_dir is None else data_dir
    location = store_location(where, url)
    if isinstance(location, Path):
        recorded = recorded_store(where)
        if recorded is not None and recorded.get("backend") == "postgresql":
            database = recorded.get("database", "a PostgreSQL database")
            since = f" at its start on {recorded['since']}" if recorded.get("since") else ""
            raise UnknownLocationError(
                f"the engine on {where} stores in {database} (it recorded so{since}), not in"
                f" the SQLite file {location}: pass --database URL (the engine's), or set"
                " WANDERER_CONSOLE_STORE__URL or [store] url (--config) as the engine has it"
            )
    return location


_READING = "_wanderer_console_settings"
"""Where :func:`_settings` keeps a command's reading of its configuration, on its ``args``."""


def _settings(args: argparse.Namespace) -> Settings:
    """The settings ``--config`` (or the default config, when present) names; raises
    :class:`UnknownLocationError`, saying why and what to do, when they do not load.

    Read once per command (kept on ``args``): its checks and its store then agree even when the
    file changes while it runs, and the file is parsed once, not once per question."""
    reading = getattr(args, _READING, None)
    if reading is None:
        reading = _read(args)
        setattr(args, _READING, reading)
    if isinstance(reading, UnknownLocationError):
        raise UnknownLocationError(str(reading))
    return reading


def _read(args: argparse.Namespace) -> Settings | UnknownLocationError:
    config = getattr(args, "config", None)
    try:
        return load_settings(config, required=config is not None).settings
    except ConfigError as exc:
        first = exc.problems[0]
        more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        return UnknownLocationError(
            f"cannot read the configuration ({first}{more}), so the data directory it names is"
            " unknown: pass --data-dir DIR (the engine's data directory), or fix the"
            " configuration (wanderer-console config check)"
        )
