"""``wanderer-console outbox list|retry|drop``: the notifications that could not be delivered.

``list`` shows failed notifications and those held by a dead target (Discord answered 401, 403
or 404), with the reason kept on each. ``retry TARGET`` revives a dead target and puts its
failed notifications back in the queue, their maximum delivery age (and that of the ones the
dead target held) counted again from the retry; ``drop`` gives up on failed (or uncertain) ones for
good, and exits 1 naming each ``--id`` it left (unknown, sent, queued or in flight). They work
beside a running engine: it reads the outbox and the dead targets from the database before
every dispatch, so a retry is picked up within a second. Output is JSON. When the configuration
that names the data directory does not load, they refuse and ask for ``--data-dir`` (never the
outbox of the default data directory instead).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from wanderer_console.command import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    Command,
    positive_count,
    refuse_json,
    row_id,
)
from wanderer_console.config.paths import command_store, store_arguments, unknown_location
from wanderer_console.domain.clock import iso_utc
from wanderer_console.store.backends import open_store
from wanderer_console.store.base import Store, StoreLocation

__all__ = ["COMMAND", "run"]


def add_arguments(outbox: argparse.ArgumentParser) -> None:
    """The ``outbox`` command's actions: list, retry, drop."""
    actions = outbox.add_subparsers(dest="outbox_command", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list", help="failed and held notifications, newest first, with their reasons"
    )
    listing.add_argument("--target", metavar="KEY", help="only this target (e.g. webhook:123)")
    listing.add_argument(
        "--limit", type=positive_count, default=100, help="at most this many (100)"
    )
    retry = actions.add_parser(
        "retry",
        help="revive a dead target and re-queue its failed notifications",
        description="Revive TARGET (e.g. webhook:123 or channel:456, as `outbox list` and the "
        "console name it) and put its failed notifications back in the queue. They, and the "
        "ones a dead target held, get a fresh discord.max_delivery_age_hours from the retry. "
        "The answer (JSON): revived (it was a dead target), held_released (the notifications "
        "its dead mark held, which go now), requeued (failed ones queued again).",
    )
    retry.add_argument("target", metavar="TARGET")
    drop = actions.add_parser(
        "drop", help="give up on failed notifications for good (of a target, or by id)"
    )
    drop.add_argument("target", metavar="TARGET", nargs="?")
    drop.add_argument(
        "--id", type=row_id, action="append", default=[], help="an outbox row id (repeatable)"
    )
    for action in (listing, retry, drop):
        store_arguments(action)


def _database(args: argparse.Namespace) -> StoreLocation:
    return command_store(args)


def _emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, sort_keys=True))


def run(args: argparse.Namespace) -> int:
    """Carry out one ``outbox`` action; return the exit code."""
    name = f"outbox {args.outbox_command}"
    unknown = unknown_location(args)
    if unknown is not None:
        return refuse_json(name, unknown, EXIT_INVALID)
    path = _database(args)
    if isinstance(path, Path) and not path.exists():
        return refuse_json(
            name,
            f"no database at {path}; pass --data-dir or --config (or --database URL when the"
            " engine stores in PostgreSQL)",
            EXIT_INVALID,
        )
    store = open_store(path, checkpoint_interval=3600.0)
    database = str(path)  # which store answered (a PostgreSQL URL's password masked)
    try:
        action = args.outbox_command
        if action == "list":
            rows = store.failed_rows(target_key=args.target, limit=args.limit)
            # Each map's dead mark of a target: two maps posting to one webhook may both be
            # refused (each needs its fix), so never one entry per target key.
            _emit(
                {
                    "database": database,
                    "dead_targets": [
                        {"target": d.target_key, "tenant": d.tenant_id, "reason": d.reason}
                        for d in store.dead_targets()
                    ],
                    "notifications": [
                        {
                            **row._asdict(),
                            "created_at": iso_utc(row.created_at),
                            "held": row.status == "pending",
                        }
                        for row in rows
                    ],
                }
            )
            return EXIT_OK
        if action == "retry":
            revived = store.revive_target(args.target)
            if revived.nothing:  # a mistyped target: say so, not "revived"
                return refuse_json(
                    name,
                    f"nothing to retry for {args.target}: it is not a dead target and has no"
                    " failed notification (`outbox list` names them)",
                    EXIT_INVALID,
                    database=database,
                )
            _emit(
                {
                    "database": database,
                    "target": args.target,
                    "held_released": revived.held,
                    "requeued": revived.requeued,
                    "revived": revived.was_dead,
                }
            )
            return EXIT_OK
        if args.target is None and not args.id:
            return refuse_json(name, "name a TARGET or at least one --id", EXIT_USAGE)
        return _drop(store, args.target, args.id, database=database)
    finally:
        store.close()


def _drop(store: Store, target: str | None, row_ids: list[int], *, database: str) -> int:
    """Give up on failed or uncertain rows; exit 1 when a named id or target gave nothing up.

    Each id is dropped on its own so the answer can name the ones left: a mistyped id, or the
    id of a sent, queued or in-flight row, is not given up (the engine keeps sending a queued
    one), and a quiet ``dropped: 0`` with exit 0 would read as done.
    """
    if row_ids:
        left = [i for i in row_ids if not store.drop_failed(target_key=target, row_ids=[i])]
        dropped = len(row_ids) - len(left)
    else:
        left, dropped = [], store.drop_failed(target_key=target)
    answer: dict[str, Any] = {
        "database": database,
        "target": target,
        "ids": row_ids,
        "dropped": dropped,
    }
    if left:
        named = ", ".join(f"#{i}" for i in left)
        of = "" if target is None else f" of {target}"
        return refuse_json(
            "outbox drop",
            f"not dropped: {named}: no failed or uncertain notification{of} has that id (it"
            " does not exist, was sent, or is still queued or being sent; `outbox list` names"
            " the ones that can be dropped)",
            EXIT_INVALID,
            **answer,
            not_dropped=left,
        )
    if not dropped:
        return refuse_json(
            "outbox drop",
            f"nothing to drop for {target}: it has no failed or uncertain notification"
            " (`outbox list` names them)",
            EXIT_INVALID,
            **answer,
        )
    _emit(answer)
    return EXIT_OK


COMMAND = Command(
    "outbox",
    help="failed and held notifications: list, retry, drop",
    description="Notifications Discord refused or that expired, and those held by a dead "
    "target. Works beside a running engine, which picks changes up within a second. "
    "Output is JSON.",
    add_arguments=add_arguments,
    run=run,
    answers_json=True,
)
