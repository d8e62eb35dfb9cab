"""What a sub-command of ``wanderer-console`` is: one :class:`Command` per command line action.

Every sub-command module exports its :class:`Command` (usually as ``COMMAND``); ``cli.py`` lists
them in one registry, builds the argument parser from it and runs the one the arguments chose.
Nothing here imports Textual, the engine or the simulator: the modules that define commands
import this one, and ``cli.py`` imports them all at start-up.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wanderer_console.telemetry.logging import redact, redacted

__all__ = [
    "EXIT_INVALID",
    "EXIT_BROKEN_PIPE",
    "EXIT_INTERRUPTED",
    "EXIT_IN_USE",
    "EXIT_OK",
    "EXIT_USAGE",
    "MAX_ROW_NUMBER",
    "Command",
    "database_url",
    "no_arguments",
    "one_line",
    "positive_count",
    "refuse",
    "refuse_json",
    "row_id",
]

EXIT_OK = 0
EXIT_INVALID = 1
"""The configuration, the database or the command's input is not usable."""
EXIT_USAGE = 2
"""The command line is wrong (argparse exits with this too)."""
EXIT_IN_USE = 3
"""Another engine owns the data directory."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (SIGINT) stopped the command before it finished: 128 + SIGINT, as a shell reports it."""
EXIT_BROKEN_PIPE = 141
"""The reader of the output went away (``| head``): 128 + SIGPIPE, as a shell tool would."""


def one_line(message: str) -> str:
    """``message`` as the one line a refusal is, masked: its runs of spaces and line breaks
    made single spaces, and a hint it carried on a line of its own (``AttachError``'s "no engine
    is running with data directory D; start one: ...") after ``; `` (after a space alone when
    the line before ends a sentence or a clause), so it still reads as a second thought rather
    than running into the first."""
    out = ""
    for line in (" ".join(part.split()) for part in message.splitlines()):
        if not line:
            continue
        if out:
            out += " " if out[-1] in ".;:!?" else "; "
        out += line
    return redact(out)


def refuse(command: str, message: str) -> None:
    """Say on stderr why ``command`` (``"export metrics"``; empty: the console itself) refused,
    in the one format every command uses: one line, ``wanderer-console COMMAND: what failed
    and what to do`` (:func:`one_line`). Each had its own (``export metrics: ...``,
    ``wanderer-console: ...``, two lines), so an operator or a script could not tell which
    command said it, nor read it the same way twice."""
    name = f"wanderer-console {command}" if command else "wanderer-console"
    print(f"{name}: {one_line(message)}", file=sys.stderr, flush=True)


def refuse_json(command: str, message: str, code: int, **details: Any) -> int:
    """:func:`refuse`, and for a command whose answer is JSON the same refusal as one JSON
    object on stdout: ``{"error": <the line's text>, "command": ..., "exit_code": code,
    ...details}``; return ``code``.

    A script reading such a command's stdout always gets a JSON document, done or not: some
    wrote their error as JSON on stderr (each with its own keys), ``db migrate-to`` on both,
    others only the text line, so ``cmd | jq`` read nothing on a failure. ``details`` are the
    keys a command's error already carried (``database``, ``not_dropped``...), kept for the
    scripts that read them; every string is masked."""
    refuse(command, message)
    answer = {**details, "error": one_line(message), "command": command, "exit_code": code}
    print(json.dumps(redacted(answer), sort_keys=True), flush=True)
    return code


def database_url(text: str) -> str:
    """An argparse ``type`` for a ``--database``: a ``postgresql://`` URL (argparse echoes a
    refused one masked, see ``cli.py``)."""
    scheme = text.partition("://")[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise argparse.ArgumentTypeError("must be a postgresql:// URL")
    return text


MAX_ROW_NUMBER = 2**63 - 1
"""The largest number a store column holds (SQLite's INTEGER, PostgreSQL's BIGINT)."""


def positive_count(text: str) -> int:
    """An argparse ``type`` for a ``--limit``: a whole number of 1 or more. ``-1`` would mean
    "all" to SQLite and be an error (a traceback) on PostgreSQL; ``0`` lists nothing, which reads
    as "there is nothing". At most :data:`MAX_ROW_NUMBER`: a larger one is a traceback from
    either database (SQLite's ``OverflowError``, PostgreSQL's ``bigint out of range``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of 1 or more")
    return row_id(text)


def row_id(text: str) -> int:
    """An argparse ``type`` for a row's id (``outbox drop --id``, ``config restore N``): a whole
    number from 1 to :data:`MAX_ROW_NUMBER`, the ids the store hands out; a larger one was an
    ``OverflowError`` traceback from SQLite and ``bigint out of range`` from PostgreSQL."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ROW_NUMBER:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a whole number from 1 to {MAX_ROW_NUMBER}"
        )
    return value


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """``add_arguments`` of a command that takes none of its own."""


@dataclass(frozen=True, slots=True)
class Command:
    """One action of the command line: how to parse its arguments and how to run it."""

    name: str
    """As typed: ``"bench"``, or ``"config history"`` for an action of the ``config`` group."""
    help: str
    """One line in the parent's list of commands."""
    run: Callable[[argparse.Namespace], int]
    """Carry the command out; return the process exit code (``EXIT_*``)."""
    add_arguments: Callable[[argparse.ArgumentParser], None] = no_arguments
    """Add the command's own options and positionals (and its actions, if it has some)."""
    description: str | None = None
    """The paragraph on top of the command's ``--help``."""
    common_options: bool = False
    """Also accept the engine's options (--config, --data-dir, --no-ui, --dry-run, --log-level)
    after the command name; they are added before :attr:`add_arguments`'s."""
    answers_json: bool | Callable[[argparse.Namespace], bool] = False
    """Its answer on stdout is JSON (with these arguments, when a function): it refuses with
    :func:`refuse_json`, and so does ``cli.main`` for what it catches on the command's way out
    (a data directory in use, an unusable store, Ctrl-C)."""

    def answers_json_to(self, args: argparse.Namespace) -> bool:
        """Whether its answer to ``args`` is JSON (:attr:`answers_json`)."""
        if callable(self.answers_json):
            return self.answers_json(args)
        return self.answers_json
