"""Every log record becomes one valid JSON line, whatever its message and context hold.

A line the formatter cannot encode is not written at all: ``logging`` prints a traceback to
stderr and the record (often the very error an operator needs) is gone from the JSON log.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import orjson
import pytest

from tests.telemetry.conftest import JsonCapture
from wanderer_console.telemetry.context import bind_request_id
from wanderer_console.telemetry.logging import configure_logging

log = logging.getLogger("wanderer_console.test.json_lines")


def test_a_context_with_non_string_keys_is_written(json_logs: JsonCapture) -> None:
    """A tally keyed by status code or killmail id, or an int key at the top of the context."""
    log.warning("statuses", extra={"ctx": {"by_status": {404: 2, 503: 1}}})
    log.warning("ids", extra={"ctx": {7: "seven"}})

    lines = json_logs.lines()
    assert [line["event"] for line in lines] == ["statuses", "ids"]
    assert lines[0]["by_status"] == {"404": 2, "503": 1}
    assert lines[1]["7"] == "seven"


def test_text_that_is_not_valid_utf8_is_written_escaped(
    json_logs: JsonCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python decodes undecodable bytes of a path, an environment variable or argv into lone
    surrogates ("surrogateescape"); a message or a context carrying one is still a line."""
    # Not to pytest's own log capture too: its report would carry the lone surrogates, which
    # pytest-xdist cannot send from a worker (the run ends with an INTERNALERROR).
    monkeypatch.setattr(logging.getLogger("wanderer_console"), "propagate", False)
    raw = b"/data/caf\xe9".decode("utf-8", "surrogateescape")
    log.error("cannot open %s", raw, extra={"ctx": {"path": Path(raw), "name": raw}})
    try:
        raise ValueError(f"bad name {raw}")
    except ValueError:
        log.exception("failed")

    lines = json_logs.lines()
    assert [line["event"] for line in lines] == ["cannot open /data/caf\\udce9", "failed"]
    assert lines[0]["path"] == lines[0]["name"] == "/data/caf\\udce9"
    assert "bad name /data/caf\\udce9" in lines[1]["error"]


def test_an_integer_too_big_for_json_numbers_is_written(json_logs: JsonCapture) -> None:
    """An id taken from outside input may be any size; it is written as its digits."""
    log.info("big", extra={"ctx": {"event_id": 2**70, "ids": [1, 2**64]}})

    (line,) = json_logs.lines()
    assert line["event_id"] == str(2**70)
    assert line["ids"] == [1, str(2**64)]


def test_control_characters_and_bytes_keep_the_line_and_its_correlation_id(
    json_logs: JsonCapture,
) -> None:
    with bind_request_id("corr-1"):
        log.info("ctrl \x00\x1b[31mend", extra={"ctx": {"b": b"\xff\x00", 5: 2**80}})

    (line,) = json_logs.lines()
    assert line["event"] == "ctrl \x00\x1b[31mend"
    assert line["correlation_id"] == "corr-1"
    assert line["5"] == str(2**80)


def test_the_database_pools_warnings_are_json_lines_with_the_engines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """psycopg_pool warns when it discards a connection PostgreSQL ended (a restart, a
    failover: seen after every cut in test_chaos_cluster's engine logs). With no handler of its
    own, Python's last resort printed it bare on stderr: no time, no level, not JSON, not
    redacted. It is now a JSON line on the engine's log stream, at the engine's level or above
    warning."""
    names = ("wanderer_console", "psycopg")
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, names)]
    stream = io.StringIO()
    try:
        configure_logging("INFO", stream=stream)
        pool = logging.getLogger("psycopg.pool")
        pool.info("connection returned to the pool")  # below warning: the driver's chatter
        pool.warning("discarding closed connection: %s", "postgresql://wc:hunter2@db/wc")
        configure_logging("ERROR", stream=stream)
        pool.warning("discarding broken connection: %s", "<psycopg.Connection [BAD]>")
    finally:
        for logger, handlers, level, propagate in saved:
            logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["level"], r["logger"]) for r in lines] == [("warning", "psycopg.pool")]
    assert lines[0]["event"] == "discarding closed connection: postgresql://wc:***@db/wc"
    assert capsys.readouterr().err == ""
