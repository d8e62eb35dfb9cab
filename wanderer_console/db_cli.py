"""``wanderer-console db migrate-to|status``: moving a data directory to PostgreSQL, and what a
store holds.

``db migrate-to [URL]`` copies the SQLite store of a data directory (``--data-dir``, else the
config's, else the default) into the PostgreSQL database at ``URL`` (else ``[store] url`` or
``WANDERER_CONSOLE_STORE__URL``, which keep the password off the command line), in one
transaction, verified before it commits (:mod:`~wanderer_console.store.migrate`). It refuses
while an engine holds the data directory, and when the target already holds console data unless
``--force`` (replace it) or ``--append`` (merge into it). The report is JSON on stdout, progress
on stderr; a refusal is its line on stderr and the same as one JSON object on stdout
(``{"error": ..., "command": "db migrate-to", "exit_code": N, ...details}``); the password
never appears in any.

``db status`` reads the store the engine would open (``--database``, ``[store] url``, else the
SQLite file in the data directory, unless that directory's engine recorded that it stores in
PostgreSQL: :func:`~wanderer_console.config.paths.command_store`) without changing it: backend,
schema version, rows per table, the outbox by status, the data directory's engine and the
instances sharing the database when the schema has their leases
(:mod:`~wanderer_console.store.status`). JSON on stdout.

Both refuse, asking for ``--data-dir``, when no ``--data-dir`` is given and the configuration
that names the data directory does not load (never the default data directory's store instead).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from wanderer_console.command import (
    EXIT_IN_USE,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    database_url,
    refuse_json,
)

__all__ = ["MIGRATE_COMMAND", "STATUS_COMMAND"]


def _location_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, metavar="PATH", help="TOML config file")
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the engine's data directory (default: from the config, else the XDG data dir)",
    )


def _emit(payload: dict[str, Any], *, stream: Any = None) -> None:
    print(json.dumps(payload, indent=2, sort_keys=True), file=stream or sys.stdout, flush=True)


# -- db migrate-to -------------------------------------------------------------------------------


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url",
        nargs="?",
        type=database_url,
        metavar="URL",
        help="postgresql://USER:PASSWORD@HOST:5432/DBNAME (default: [store] url or"
        " WANDERER_CONSOLE_STORE__URL, which keep the password out of the process list)",
    )
    _location_options(parser)
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument(
        "--force",
        action="store_true",
        help="the target holds console data: delete it first (same transaction)",
    )
    existing.add_argument(
        "--append",
        action="store_true",
        help="the target holds console data: merge into it (rows it holds are kept, cursors"
        " take the larger position)",
    )


def _target(args: argparse.Namespace) -> str | None:
    if args.url:
        return str(args.url)
    from wanderer_console.config.loader import ConfigError, load_settings

    try:
        secret = load_settings(args.config, required=args.config is not None).settings.store.url
    except ConfigError:
        return None
    return None if secret is None else secret.get_secret_value()


def _migrate(args: argparse.Namespace) -> int:
    from wanderer_console.config.paths import command_data_dir, unknown_location
    from wanderer_console.delivery.hold import read_saved_pause
    from wanderer_console.store.base import DatabaseUrl
    from wanderer_console.store.integrity import StorageError
    from wanderer_console.store.migrate import (
        DataDirBusyError,
        MigrationError,
        Mode,
        TargetInUseError,
        TargetNotEmptyError,
        migrate_data_dir,
    )

    unknown = unknown_location(args, store=False)
    if unknown is not None:  # not the default data dir's store in place of the engine's
        return refuse_json("db migrate-to", unknown, EXIT_INVALID)
    text = _target(args)
    if not text:
        return refuse_json(
            "db migrate-to",
            "name the PostgreSQL database: db migrate-to postgresql://USER:PASSWORD@HOST/DB,"
            " or set [store] url (WANDERER_CONSOLE_STORE__URL)",
            EXIT_USAGE,
        )
    try:
        url = DatabaseUrl(text)
    except ValueError as exc:
        return refuse_json("db migrate-to", str(exc), EXIT_USAGE)
    data_dir = command_data_dir(args)
    mode: Mode = "replace" if args.force else "append" if args.append else "empty"

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    progress(f"db migrate-to: {data_dir} -> {url} ({mode})")
    try:
        report = migrate_data_dir(
            data_dir, url, saved_pause=read_saved_pause, mode=mode, progress=progress
        )
    except DataDirBusyError as exc:
        return refuse_json(
            "db migrate-to",
            str(exc),
            EXIT_IN_USE,
            data_dir=str(data_dir),
            holder=exc.holder.describe(),
        )
    except TargetInUseError as exc:
        engines = [{"instance": i, "host": h, "pid": p} for i, h, p in exc.alive]
        return refuse_json("db migrate-to", str(exc), EXIT_IN_USE, target=str(url), engines=engines)
    except TargetNotEmptyError as exc:
        return refuse_json(
            "db migrate-to", str(exc), EXIT_INVALID, target=str(url), target_rows=exc.counts
        )
    except MigrationError as exc:
        details = {"report": exc.report} if exc.report else {}
        return refuse_json("db migrate-to", str(exc), EXIT_INVALID, **details)
    except StorageError as exc:
        return refuse_json("db migrate-to", str(exc), EXIT_INVALID)
    report["next"] = _next_steps(report)
    _emit(report)
    return EXIT_OK


def _next_steps(report: dict[str, Any]) -> str:
    """What the operator does after the copy; first, that the engines start paused, if so."""
    text = (
        "Set [store] url (or WANDERER_CONSOLE_STORE__URL) to this database and start the engine"
        " with the same --data-dir: it delivers the pending outbox and resumes every stream from"
        " its cursor. Keep the SQLite file as the backup of the moment, and do not start an"
        " engine on it again: it would deliver its pending notifications a second time."
    )
    target = report["pause"]["target"]
    if target is None:
        return text
    from wanderer_console.delivery.hold import RESUME_HOW

    return (
        f"Delivery is paused on every engine of this database (by {target['paused_by']}): the"
        f" engines start paused and send nothing until resumed ({RESUME_HOW}, on any engine)."
        f" {text}"
    )


MIGRATE_COMMAND = Command(
    "db migrate-to",
    help="copy a data directory's SQLite store into PostgreSQL (verified, one transaction)",
    description="Copy the SQLite store of a data directory (events, cursors, the outbox in every"
    " state, dead targets, the config audit, tenants, the cache) into a PostgreSQL database,"
    " its schema created first, in one transaction verified before it commits. Refused while"
    " an engine holds the data directory, and when the target already holds console data"
    " (unless --force or --append). Prints a JSON report.",
    add_arguments=_migrate_arguments,
    run=_migrate,
    answers_json=True,
)


# -- db status -----------------------------------------------------------------------------------


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    from wanderer_console.config.paths import DATABASE_HELP

    parser.add_argument("--database", type=database_url, metavar="URL", help=DATABASE_HELP)
    _location_options(parser)


def _status(args: argparse.Namespace) -> int:
    from wanderer_console.config.paths import command_data_dir, command_store, unknown_location
    from wanderer_console.store.integrity import StorageError
    from wanderer_console.store.status import store_status

    unknown = unknown_location(args)
    if unknown is not None:  # not the default data dir's store in place of the engine's
        return refuse_json("db status", unknown, EXIT_INVALID)
    data_dir = command_data_dir(args)
    try:
        location = command_store(args, data_dir)
    except ValueError as exc:
        return refuse_json("db status", str(exc), EXIT_USAGE)
    try:
        doc = store_status(location, data_dir=data_dir)
    except StorageError as exc:
        return refuse_json("db status", str(exc), EXIT_INVALID)
    _emit(doc)
    return EXIT_OK


STATUS_COMMAND = Command(
    "db status",
    help="the store: backend, schema version, rows per table, outbox, instances (JSON)",
    description="Read the store the engine would open (--database, [store] url, else the"
    " SQLite file in the data directory) without changing it: backend, schema version, rows"
    " per table, the outbox by status, the data directory's engine, and the instances sharing"
    " the database when the schema has their leases. Works beside a running engine.",
    add_arguments=_status_arguments,
    run=_status,
    answers_json=True,
)
