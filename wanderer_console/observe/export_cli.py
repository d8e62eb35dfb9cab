"""``wanderer-console export metrics --since 24h --format csv|json``: the stored trends.

Reads the per-minute trends the engine keeps in its store (:mod:`~.trends`), beside a running
engine or not, and prints them per minute (or per ``--step``), summed over the engines sharing
the database: start time, events in, notifications queued and delivered, failed deliveries, 429s,
errors, and delivery latency percentiles in milliseconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import time
from pathlib import Path
from typing import Any

from wanderer_console.command import EXIT_INVALID, EXIT_OK, EXIT_USAGE, Command, refuse, refuse_json
from wanderer_console.config.paths import command_store, store_arguments, unknown_location
from wanderer_console.domain.clock import iso_utc
from wanderer_console.observe.trends import COUNTS, stored_buckets
from wanderer_console.store.backends import open_store

__all__ = ["COMMAND", "parse_duration", "run"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_SINCE = 366 * 86_400
"""The longest ``--since``: ``[trends] days`` is at most 366, nothing older is kept. Every minute
of the span becomes a row (empty ones too), so an unbounded span would fill memory."""
FIELDS = ("start", *COUNTS, "latency_p50_ms", "latency_p95_ms", "latency_p99_ms")
"""The columns of the export, in order."""


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``24h``, ``7d`` (or plain seconds) in seconds; ``ValueError`` else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration: a number with s, m, h or d (24h, 7d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if not math.isfinite(seconds) or seconds > 2**53:
        raise ValueError(f"{text!r} is too long a duration (at most 366d)")
    return int(seconds)


def add_arguments(export: argparse.ArgumentParser) -> None:
    """The ``export`` command's actions: ``metrics``."""
    actions = export.add_subparsers(dest="export_command", metavar="WHAT", required=True)
    metrics = actions.add_parser(
        "metrics",
        help="the per-minute trends kept in the store (throughput, latency, errors)",
        description="Print the stored per-minute trends from --since ago to now, summed over the"
        " engines sharing the database: start (UTC), events, queued, delivered, failures,"
        " rate_limited (429s), errors, and delivery latency p50/p95/p99 in ms (empty when"
        " nothing was delivered). Kept [trends] days (7 by default).",
    )
    metrics.add_argument(
        "--since",
        default="24h",
        metavar="DURATION",
        help="how far back: 90m, 24h, 7d, at most 366d (24h)",
    )
    metrics.add_argument(
        "--step", default="1m", metavar="DURATION", help="one row per this long (1m)"
    )
    metrics.add_argument("--format", choices=("csv", "json"), default="csv", help="(csv)")
    store_arguments(metrics)


def _row(bucket: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"start": iso_utc(bucket["start"])}
    out.update({name: bucket[name] for name in COUNTS})
    for q in ("p50", "p95", "p99"):
        value = bucket[f"latency_{q}"]
        out[f"latency_{q}_ms"] = None if value is None else round(value * 1000, 1)
    return out


def _answers_json(args: argparse.Namespace) -> bool:
    return bool(args.format == "json")


def _refuse(args: argparse.Namespace, message: str, code: int) -> int:
    """Refuse, with the JSON object on stdout when the answer asked for is JSON."""
    if _answers_json(args):
        return refuse_json("export metrics", message, code)
    refuse("export metrics", message)
    return code


def run(args: argparse.Namespace) -> int:
    """Print the trends; return the exit code."""
    try:
        option = "--since"
        since = parse_duration(args.since)
        option = "--step"
        step = parse_duration(args.step)
    except ValueError as exc:
        return _refuse(args, f"{option}: {exc}", EXIT_USAGE)
    if since > MAX_SINCE:
        return _refuse(
            args,
            f"--since {args.since} reaches past what the store can keep"
            " ([trends] days is at most 366): use 366d or less",
            EXIT_USAGE,
        )
    if step < 60 or step % 60:
        return _refuse(args, "--step must be whole minutes (1m, 5m, 1h)", EXIT_USAGE)
    unknown = unknown_location(args)
    if unknown is not None:
        return _refuse(args, unknown, EXIT_INVALID)
    path = command_store(args)
    if isinstance(path, Path) and not path.exists():
        return _refuse(
            args,
            f"no database at {path}; pass --data-dir or --config (or --database"
            " URL when the engine stores in PostgreSQL)",
            EXIT_INVALID,
        )
    now = time.time()
    store = open_store(path, checkpoint_interval=3600.0)
    try:
        buckets = stored_buckets(store, now, since, step)
    finally:
        store.close()
    rows = [_row(b.as_dict()) for b in buckets]
    if args.format == "json":
        answer = {"database": str(path), "since": iso_utc(now - since), "step": step, "rows": rows}
        json.dump(answer, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"export metrics: read {path}", file=sys.stderr)  # CSV on stdout stays CSV
        writer = csv.DictWriter(sys.stdout, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return EXIT_OK


COMMAND = Command(
    "export",
    help="export what the engine kept: metrics (the per-minute trends) as CSV or JSON",
    description="Export data the engine keeps in its store. Works beside a running engine.",
    add_arguments=add_arguments,
    run=run,
    answers_json=_answers_json,
)
