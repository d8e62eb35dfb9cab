"""Structured JSON logging with secrets redacted.

Log calls pass context in ``extra={"ctx": {...}}``; the formatter writes one JSON object per line.
A last-line-of-defence filter masks anything that looks like a Discord webhook token or a Bearer
credential, in case a message or exception text carries one.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any, Final, TextIO

import orjson

__all__ = ["JsonFormatter", "configure_logging", "redact"]

_PATTERNS: Final = (
    (re.compile(r"(/webhooks/\d+/)[A-Za-z0-9_\-\.]+"), r"\1***"),
    (re.compile(r"(?i)(bearer\s+)[^\s\"']+"), r"\1***"),
    (re.compile(r"(?i)(bot\s+)[A-Za-z0-9_\-\.]{20,}"), r"\1***"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)[^'\"\s,}]+"), r"\1***"),
)


def redact(text: str) -> str:
    """Mask webhook tokens and credentials inside free text."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


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
        if isinstance(ctx, dict):
            for key, value in ctx.items():
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send the console's logs as JSON lines to ``stream`` (stdout by default)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("wanderer_console")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
