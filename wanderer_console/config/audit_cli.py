"""``wanderer-console config history`` and ``config restore N``.

The history keeps no secrets (:mod:`wanderer_console.config.redact`), so a restore takes them
from the config file as it is now (same key) or leaves them to the environment, and refuses,
naming the keys, when neither has one: it never writes a placeholder as a value.

The history lives in the engine's database, found through the configuration (its data directory
or ``[store] url``). When the configuration cannot be read, both commands say so and ask for
``--data-dir`` rather than read the history of whatever directory the default would be; when
the data directory holds no database (a mistyped ``--data-dir``), they say so rather than create
an empty one and report an empty history.
Times are ISO 8601 (UTC).
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

from wanderer_console.command import (
    EXIT_INVALID,
    EXIT_OK,
    Command,
    positive_count,
    refuse_json,
    row_id,
)
from wanderer_console.config.audit import ConfigAudit, diff_settings
from wanderer_console.config.edit import atomic_write_text
from wanderer_console.config.loader import ConfigError, parse_settings_text
from wanderer_console.config.paths import (
    command_data_dir,
    command_store,
    store_arguments,
    unknown_location,
)
from wanderer_console.config.redact import PLACEHOLDER, UnresolvedSecrets, restore_secrets

__all__ = ["HISTORY_COMMAND", "RESTORE_COMMAND", "run"]

_DB_NAME = "wanderer-console.db"


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=positive_count, default=50, help="how many (default 50)")
    _location_arguments(parser)


def _restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "id", type=row_id, metavar="N", help="history id to restore (`config history` lists them)"
    )
    _location_arguments(parser)


def _location_arguments(parser: argparse.ArgumentParser) -> None:
    store_arguments(parser)


def _data_dir(args: argparse.Namespace) -> Path:
    return command_data_dir(args)


def _fail(args: argparse.Namespace, message: str, database: str | None = None) -> int:
    """Refuse (:func:`~wanderer_console.command.refuse_json`), naming, once the store is open,
    which database answered: a version missing from one engine's history may be in another's;
    exit code 1."""
    details = {} if database is None else {"database": database}
    return refuse_json(f"config {args.config_command}", message, EXIT_INVALID, **details)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


def run(args: argparse.Namespace) -> int:
    """Carry out ``config history`` or ``config restore``; return the exit code."""
    unreadable = unknown_location(args)
    if unreadable is not None:
        return _fail(args, unreadable)
    location = command_store(args, _data_dir(args))
    if isinstance(location, Path) and not location.exists():  # a typo: not a new, empty history
        return _fail(
            args,
            f"no database at {location}; pass the engine's --data-dir or --config (or"
            " --database URL when the engine stores in PostgreSQL)",
        )
    audit = ConfigAudit(location)
    try:
        if args.config_command == "history":
            entries = [
                {**entry.as_json(), "at": _iso(entry.at)} for entry in audit.history(args.limit)
            ]
            answer = {"database": str(location), "history": entries}
            print(json.dumps(answer, sort_keys=True, default=str))
            return EXIT_OK
        return _restore(args, audit, str(location))
    finally:
        audit.close()


def _restore(args: argparse.Namespace, audit: ConfigAudit, database: str) -> int:
    """Write version ``args.id`` back to the config file, recorded as ``cli:restore``;
    ``database`` (a PostgreSQL URL's password masked) is named in the answer and each error."""
    entry = audit.get(args.id)
    if entry is None:
        return _fail(args, f"no configuration version {args.id} in the history", database)
    if entry.diff.get("status") == "rejected":
        return _fail(
            args, f"version {args.id} was a rejected edit; it cannot be restored", database
        )
    target = args.config or (Path(entry.path) if entry.path else None)
    if target is None:
        return _fail(args, "no config file path recorded; pass --config PATH", database)
    try:
        current_text = target.read_text(encoding="utf-8") if target.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(
            args, f"cannot read {target} (its secrets fill the restored version): {exc}", database
        )
    try:
        filled = restore_secrets(entry.content, current_text)
    except UnresolvedSecrets as exc:
        return _fail(args, _unresolved(args.id, target, exc), database)
    try:
        restored, _ = parse_settings_text(filled.text, file=f"history #{args.id}")
    except ConfigError as exc:
        return _fail(args, f"version {args.id} no longer validates: {exc}", database)
    current = None
    if current_text:
        try:
            current, _ = parse_settings_text(current_text)
        except ConfigError:
            current = None
    try:  # the file keeps its mode, owner and group (a new one is 0600)
        atomic_write_text(target, filled.text)
    except OSError as exc:
        return _fail(args, f"cannot write {target}: {exc.strerror or exc}", database)
    changes = [c.as_json() for c in diff_settings(current, restored)]
    new_id = audit.record(
        "cli:restore",
        target,
        filled.text,
        {"status": "applied", "changes": changes, "restored_from": args.id},
    )
    print(
        json.dumps(
            {
                "database": database,
                "restored": args.id,
                "path": str(target),
                "history_id": new_id,
                "secrets": filled.sources,
            }
        )
    )
    return EXIT_OK


def _unresolved(version: int, target: Path, exc: UnresolvedSecrets) -> str:
    """Why version ``version`` cannot be written back, naming the keys and the way out."""
    keys = ", ".join(exc.keys)
    if not exc.secret:
        return (
            f"version {version} cannot be restored: {keys} held text that looked like a secret"
            f" and the history keeps it only as {PLACEHOLDER}; edit {target} by hand instead"
        )
    variables = " / ".join("WANDERER_CONSOLE_" + "__".join(k.split(".")).upper() for k in exc.keys)
    values = "the value" if len(exc.keys) == 1 else "the values"
    return (
        f"version {version} cannot be restored: the history keeps no secrets, and neither"
        f" {target} nor the environment sets {keys}; put {values} in {target} (or set"
        f" {variables}) and run the restore again"
    )


HISTORY_COMMAND = Command(
    "config history",
    help="list recorded configuration changes (JSON)",
    add_arguments=_history_arguments,
    run=run,
    answers_json=True,
)
RESTORE_COMMAND = Command(
    "config restore",
    help="write version N from the history back to the config file",
    add_arguments=_restore_arguments,
    run=run,
    answers_json=True,
)
