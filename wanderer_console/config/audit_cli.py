"""``wanderer-console config history`` and ``config restore N``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from wanderer_console.config.audit import ConfigAudit, diff_settings
from wanderer_console.config.loader import ConfigError, load_settings, parse_settings_text

__all__ = ["register", "run"]

_DB_NAME = "wanderer-console.db"


def register(config_sub: Any) -> None:
    """Add ``history`` and ``restore`` to the ``config`` command's actions."""
    history = config_sub.add_parser("history", help="list recorded configuration changes (JSON)")
    history.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    restore = config_sub.add_parser(
        "restore", help="write version N from the history back to the config file"
    )
    restore.add_argument("id", type=int, metavar="N", help="history id to restore")
    for parser in (history, restore):
        parser.add_argument(
            "--config", type=Path, metavar="PATH", default=argparse.SUPPRESS, help="config file"
        )
        parser.add_argument(
            "--data-dir",
            type=Path,
            metavar="DIR",
            default=argparse.SUPPRESS,
            help="where the database lives (default: from the config, else the XDG data dir)",
        )


def _data_dir(args: argparse.Namespace) -> Path:
    if getattr(args, "data_dir", None) is not None:
        return Path(args.data_dir)
    try:
        loaded = load_settings(args.config, required=args.config is not None)
    except ConfigError:
        loaded = None
    if loaded is not None and loaded.settings.console.data_dir is not None:
        return loaded.settings.console.data_dir
    from wanderer_console.runtime import default_data_dir

    return default_data_dir()


def _fail(message: str) -> int:
    print(json.dumps({"error": message}), file=sys.stderr)
    return 1


def run(args: argparse.Namespace) -> int:
    """Carry out ``config history`` or ``config restore``; return the exit code."""
    audit = ConfigAudit(_data_dir(args) / _DB_NAME)
    try:
        if args.config_command == "history":
            entries = [entry.as_json() for entry in audit.history(args.limit)]
            print(json.dumps({"history": entries}, sort_keys=True, default=str))
            return 0
        entry = audit.get(args.id)
        if entry is None:
            return _fail(f"no configuration version {args.id} in the history")
        if entry.diff.get("status") == "rejected":
            return _fail(f"version {args.id} was a rejected edit; it cannot be restored")
        target = args.config or (Path(entry.path) if entry.path else None)
        if target is None:
            return _fail("no config file path recorded; pass --config PATH")
        try:
            restored, _ = parse_settings_text(entry.content, file=f"history #{args.id}")
        except ConfigError as exc:
            return _fail(f"version {args.id} no longer validates: {exc}")
        current = None
        if target.exists():
            try:
                current, _ = parse_settings_text(target.read_text(encoding="utf-8"))
            except ConfigError:
                current = None
        tmp = target.with_name(target.name + ".restore-tmp")
        tmp.write_text(entry.content, encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
        changes = [c.as_json() for c in diff_settings(current, restored)]
        new_id = audit.record(
            "cli:restore",
            target,
            entry.content,
            {"status": "applied", "changes": changes, "restored_from": args.id},
        )
        print(json.dumps({"restored": args.id, "path": str(target), "history_id": new_id}))
        return 0
    finally:
        audit.close()
