"""A bounded SSE decoder: bytes in, events out, memory capped per line and per event.

httpx-sse buffers a line until its newline arrives, however long: one 300 MB line without a
newline cost 300 MB and more. This decoder holds at most ``max_line_bytes`` of an unfinished
line; past that it drops what it holds and only counts bytes until the next line break. An
event whose ``data`` lines add up to more than ``max_event_bytes`` is dropped the same way. A
dropped event is reported (:class:`SseOversize`) when its blank line arrives, or when the stream
ends, and decoding goes on with the next event.

Parsing follows the WHATWG event-stream rules: lines end at CRLF, LF or CR; a leading UTF-8 BOM
is skipped; ``:`` starts a comment; ``event``, ``data`` and ``id`` (without NUL) are kept,
others ignored; a blank line dispatches. Like the console always did, an event without data
(a keepalive after an id) is not dispatched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_MAX_EVENT_BYTES",
    "DEFAULT_MAX_LINE_BYTES",
    "SseDecoder",
    "SseEvent",
    "SseOversize",
]

DEFAULT_MAX_LINE_BYTES = 1024 * 1024
"""Real map events are a few KiB on one ``data:`` line: 1 MiB is hundreds of times that."""
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
"""The ``data`` of one event, all lines together."""

_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SseEvent:
    """One dispatched SSE event (comments such as keepalives are not events)."""

    event: str
    id: str
    data: str


@dataclass(frozen=True, slots=True)
class SseOversize:
    """An event dropped for size: which limit, how big, and what is known of the event."""

    reason: Literal["line", "event"]
    """``line``: one line over ``max_line_bytes``; ``event``: data over ``max_event_bytes``."""
    size: int
    """Bytes of the line (``line``) or of the event's data (``event``) seen before it ended."""
    limit: int
    """The limit it broke."""
    event: str
    """The event's type, if its ``event:`` line came before the cut (else ``message``)."""
    id: str
    """The last event id seen (the dropped event's own when its ``id:`` came first)."""


class SseDecoder:
    """Feed it the body's chunks; it returns events and size reports in stream order."""

    def __init__(
        self,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if max_line_bytes < 1 or max_event_bytes < 1:
            raise ValueError("SSE limits must be positive")
        self.max_line_bytes = max_line_bytes
        self.max_event_bytes = max_event_bytes
        self._pending: list[bytes] = []  # the unfinished line, never over max_line_bytes
        self._pending_size = 0
        self._skipping = False  # inside a line already over the limit: count, keep nothing
        self._skipped = 0
        self._cr = False  # the last chunk ended in CR: a LF first in the next one is its pair
        self._first_line = True
        self._event = ""
        self._data: list[bytes] = []
        self._data_size = 0
        self._last_id = ""
        self._over: Literal["line", "event"] | None = None  # why the current event is dropped
        self._over_size = 0
        self.comments = 0
        """Comment lines read (the server's keepalives): a stream's sign of life between
        events, which dispatch nothing."""

    @property
    def buffered(self) -> int:
        """Bytes held for the unfinished line and event (bounded by the two limits)."""
        return self._pending_size + self._data_size

    def feed(self, chunk: bytes) -> list[SseEvent | SseOversize]:
        """Decode one chunk of the body; any chunking of the same bytes gives the same result."""
        out: list[SseEvent | SseOversize] = []
        if not chunk:
            return out  # nothing to read; a CR waiting for its LF keeps waiting
        if self._cr:
            self._cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]  # the LF of a CRLF split between chunks: that line has ended
        if chunk.endswith(b"\r"):
            self._cr = True
        if b"\r" in chunk:
            # Rare (the servers send LF): normalise so one split finds every line break.
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        # bytes.split runs in C; lines are a few per event, so the loop below stays short.
        parts = chunk.split(b"\n")
        tail = parts.pop()
        limit = self.max_line_bytes
        for index, part in enumerate(parts):
            if index == 0 and (self._skipping or self._pending):
                if self._skipping:
                    self._skipping = False
                    self._line_too_long(self._skipped + len(part))
                    self._skipped = 0
                    continue
                size = self._pending_size + len(part)
                self._pending.append(part)
                part = b"".join(self._pending)
                self._pending, self._pending_size = [], 0
                if size > limit:
                    self._line_too_long(size)
                    continue
            elif len(part) > limit:
                self._line_too_long(len(part))
                continue
            self._line(part, out)
        if self._skipping:
            self._skipped += len(tail)
        elif tail:
            size = self._pending_size + len(tail)
            if size > limit:
                # Drop what is held at once: the rest of this line is only counted.
                self._pending, self._pending_size = [], 0
                self._skipping, self._skipped = True, size
            else:
                self._pending.append(tail)
                self._pending_size = size
        return out

    def finish(self) -> SseOversize | None:
        """The stream ended: an unfinished event is not dispatched, but a dropped one is told."""
        if self._skipping:
            self._line_too_long(self._skipped)
        self._pending, self._pending_size, self._skipping, self._skipped = [], 0, False, 0
        report = self._report()
        self._reset_event()
        return report

    def _line_too_long(self, size: int) -> None:
        self._first_line = False
        if self._over is None:
            self._over, self._over_size = "line", size
        self._data, self._data_size = [], 0

    def _line(self, line: bytes, out: list[SseEvent | SseOversize]) -> None:
        if self._first_line:
            self._first_line = False
            if line.startswith(_BOM):
                line = line[3:]
        if not line:
            self._dispatch(out)
            return
        if line[0] == 0x3A:  # ":" a comment (the keepalive)
            self.comments += 1
            return
        name, colon, value = line.partition(b":")
        if colon and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            if self._over is not None:
                if self._over == "event":
                    self._over_size += len(value) + 1  # the size reported is the whole event's
                return
            size = self._data_size + len(value) + (1 if self._data else 0)
            if size > self.max_event_bytes:
                self._over, self._over_size = "event", size
                self._data, self._data_size = [], 0
                return
            self._data.append(value)
            self._data_size = size
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:  # an id with NUL is ignored (spec)
            self._last_id = value.decode("utf-8", "replace")
        # ``retry`` and unknown fields: nothing the console uses.

    def _dispatch(self, out: list[SseEvent | SseOversize]) -> None:
        lines = self._data
        report = self._report()
        if report is not None:
            out.append(report)
        elif lines:
            # One data line is the norm: decode it as it is, without a join's copy.
            raw = lines[0] if len(lines) == 1 else b"\n".join(lines)
            if raw:
                out.append(
                    SseEvent(
                        self._event or "message", self._last_id, raw.decode("utf-8", "replace")
                    )
                )
        self._reset_event()

    def _report(self) -> SseOversize | None:
        if self._over is None:
            return None
        limit = self.max_line_bytes if self._over == "line" else self.max_event_bytes
        return SseOversize(
            self._over, self._over_size, limit, self._event or "message", self._last_id
        )

    def _reset_event(self) -> None:
        # The last event id survives dispatch (SSE spec); everything else starts afresh.
        self._event = ""
        self._data, self._data_size = [], 0
        self._over, self._over_size = None, 0
