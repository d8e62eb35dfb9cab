"""Every log record becomes one valid JSON line, whatever its message and context hold.

A line the formatter cannot encode is not written at all: ``logging`` prints a traceback to
stderr and the record (often the very error an operator needs) is gone from the JSON log.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.telemetry.conftest import JsonCapture
from wanderer_console.telemetry.context import bind_request_id

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
