"""Structured JSON logging with secrets redacted.

Log calls pass context in ``extra={"ctx": {...}}``; the formatter writes one JSON object per line:
``time``, ``level``, ``logger``, ``event`` (the message), then ``tenant``, ``source`` and
``correlation_id`` when they are known (from the record's context, else from the contextvars in
:mod:`~wanderer_console.telemetry.context`), ``trace_id`` next to it while a traced event or
request is being handled (:mod:`~wanderer_console.telemetry.tracing`), then the rest of the
context. A last-line-of-defence
filter masks anything that looks like a Discord webhook token, a bot token, an ingest key or a
Bearer credential, in case a message or exception text carries one.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import Any, Final, TextIO

import orjson

from wanderer_console.telemetry.context import bound_fields
from wanderer_console.telemetry.tracing import current_trace_id

__all__ = [
    "ContextFilter",
    "JsonFormatter",
    "LIBRARY_LOGGERS",
    "RedactingFilter",
    "command_logging",
    "configure_logging",
    "redact",
    "redacted",
]

_PATTERNS: Final = (
    (re.compile(r"(/webhooks/\d+/)[A-Za-z0-9_\-\.]+"), r"\1***"),
    # An interaction's token (valid 15 minutes) in its callback URL.
    (re.compile(r"(/interactions/\d+/)[A-Za-z0-9_\-\.]+"), r"\1***"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1***"),
    (re.compile(r"(?i)(bot\s+)[A-Za-z0-9_\-\.]{20,}"), r"\1***"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"), r"\1***"),
    # A Discord bot token anywhere: base64 user id . timestamp . HMAC.
    (re.compile(r"\b[MNO][A-Za-z0-9_\-]{23,27}\.[A-Za-z0-9_\-]{6}\.[A-Za-z0-9_\-]{27,40}"), "***"),
    # An ingest key (``wci_`` prefix) anywhere.
    (re.compile(r"\b(wci_)[A-Za-z0-9_\-]{8,}"), r"\1***"),
    # The password of credentials inside a URL (``https://user:password@host``): a map server
    # behind a proxy's basic auth, a killstream URL, any URL an operator writes that way.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s/:@\"'<>]*:)[^\s/@\"'<>]+@"), r"\1***@"),
    # Credentials in a query string.
    (re.compile(r"(?i)([?&](?:api_key|apikey|token|key|secret|password)=)[^&\s\"']+"), r"\1***"),
)


_BOUND_KEYS: Final = ("tenant", "source", "correlation_id")
"""The record attributes :func:`~wanderer_console.telemetry.context.bound_fields` fills."""


def redact(text: str) -> str:
    """Mask webhook tokens and credentials inside free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redacted(value: Any) -> Any:
    """``value`` with every string in it redacted, lists, tuples and dicts included (a context
    carries a rejected config's problems, a diff of changes); numbers as they are; anything else
    (an exception, a path) as its redacted text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redacted(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))  # an exception, a path: written as its text, so masked as text


def _encodable(value: Any) -> Any:
    """``value`` in a shape JSON can carry: a non-string key as its text, an integer beyond
    64 bits as its digits, a lone surrogate (undecodable bytes of a path, an environment
    variable, argv, decoded with ``surrogateescape``) as its ``\\udcXX`` escape, anything else as
    its text. Only for a line the fast path refused, so the common line pays nothing."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        return value if _INT_MIN <= value <= _UINT_MAX else str(value)
    if isinstance(value, dict):
        return {_encodable(str(key)): _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return _encodable(str(value))


_INT_MIN: Final = -(2**63)
_UINT_MAX: Final = 2**64 - 1
"""The integers a JSON line carries as numbers (orjson's range)."""


class ContextFilter(logging.Filter):
    """Stamps the bound tenant, source, correlation id and trace id on each record.

    Attach it to a handler: the values are read where the record is emitted (the caller's
    context), so they survive a handler that formats later or elsewhere (tests, queues).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Copy the context onto the record; never drops one."""
        for key, value in zip(_BOUND_KEYS, bound_fields(), strict=True):
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        if getattr(record, "trace_id", None) is None:
            record.trace_id = current_trace_id()
        return True


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message before any handler sees it.

    For third-party loggers the console does not write itself (httpx logs each request URL, and
    a webhook URL carries its token): attach it to the logger, so every handler, the host's
    included, gets the redacted text.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the rendered message in place; never drops a record."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, event (the message) and context."""

    def format(self, record: logging.LogRecord) -> str:
        """Render the record as a JSON line."""
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        ctx = getattr(record, "ctx", None)
        # Bound by the engine or the HTTP surface (stamped by ContextFilter, else read now);
        # an explicit ctx value wins.
        for key, bound in zip(_BOUND_KEYS, bound_fields(), strict=True):
            if not (isinstance(ctx, dict) and key in ctx):
                value = getattr(record, key, None) or bound
                if value is not None:
                    entry[key] = value
        trace_id = getattr(record, "trace_id", None) or current_trace_id()
        if trace_id is not None:
            entry["trace_id"] = trace_id
        if isinstance(ctx, dict):
            for key, value in ctx.items():
                entry[key] = redacted(value)
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        try:
            return orjson.dumps(entry, default=str).decode()
        except orjson.JSONEncodeError:
            # Rare: a line the fast path refuses would otherwise not be written at all (logging
            # prints a traceback to stderr instead), losing the very error being logged.
            return orjson.dumps(_encodable(entry)).decode()


LIBRARY_LOGGERS: Final = ("psycopg", "uvicorn.error")
"""Libraries whose warnings are the engine's news (``psycopg.pool``: a connection PostgreSQL
ended, discarded; ``uvicorn.error``: the console's HTTP server). With no handler of their own,
Python's last resort printed them bare on stderr: no time, no level, not JSON, not redacted
(over the console's screen when it ran), a line a JSON log collector cannot read."""


class _ToConsoleLog(logging.Handler):
    """Hands a library's record to the console's logger: it goes wherever the console's own
    lines go (the JSON stream; the log ring while the console UI owns the terminal)."""

    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger("wanderer_console").handle(record)


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the console's logs as JSON lines to ``stream`` (stdout by default), and the
    warnings of :data:`LIBRARY_LOGGERS` with them (their chatter below warning is not ours)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger("wanderer_console")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for name in LIBRARY_LOGGERS:
        library = logging.getLogger(name)
        library.handlers[:] = [_ToConsoleLog()]
        library.setLevel(max(logging.WARNING, root.level))
        library.propagate = False


COMMAND_LOG_LEVEL: Final = "ERROR"
"""What a command (``kill``, ``replay``, ``notify test`` …) logs without ``--log-level``."""


@contextlib.contextmanager
def command_logging(level: str | None) -> Iterator[None]:
    """While a command runs: the console's logs as JSON lines on stderr (stdout is the
    command's output), from ``level`` (``--log-level``), else errors only.

    The command says itself what went wrong (``kill: cannot fetch killmail …``); the engine's
    code it runs logs too (each failed request). With no handler, Python's last resort printed
    those messages bare on stderr, their context dropped, next to the command's own line. The
    logger is put back as it was afterwards (a test calling ``main`` keeps its own capture).
    """
    loggers = [logging.getLogger(name) for name in ("wanderer_console", *LIBRARY_LOGGERS)]
    saved = [(logger.handlers[:], logger.level, logger.propagate) for logger in loggers]
    configure_logging(level or COMMAND_LOG_LEVEL, stream=sys.stderr)
    try:
        yield
    finally:
        for logger, (handlers, level_was, propagate) in zip(loggers, saved, strict=True):
            logger.handlers[:], logger.level, logger.propagate = handlers, level_was, propagate
