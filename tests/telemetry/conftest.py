"""Fixtures: JSON log capture on the ``wanderer_console`` logger, plus the server fixtures."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.server.conftest import client, ingest_key, runtime_settings  # noqa: F401 (fixtures)
from wanderer_console.telemetry.logging import ContextFilter, JsonFormatter


class JsonCapture:
    """Every record of the console's loggers, rendered by the production formatter."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(JsonFormatter())
        self.handler.addFilter(ContextFilter())
        self.handler.setLevel(logging.DEBUG)

    @property
    def text(self) -> str:
        """Every line written so far."""
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line parsed back from JSON."""
        return [orjson.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def json_logs() -> Iterator[JsonCapture]:
    """Capture the console's logs at DEBUG as JSON lines (restores the logger afterwards)."""
    capture = JsonCapture()
    logger = logging.getLogger("wanderer_console")
    level = logger.level
    logger.addHandler(capture.handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        logger.removeHandler(capture.handler)
        logger.setLevel(level)
