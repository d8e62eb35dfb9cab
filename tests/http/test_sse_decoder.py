"""The bounded SSE decoder: same events as httpx-sse under any chunking, memory capped."""

from __future__ import annotations

import random

import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder

from wanderer_console.http.sse_decoder import SseDecoder, SseEvent, SseOversize

PIECES = [
    b'event: add_system\nid: 01A\ndata: {"x": 1}\n\n',
    b": keepalive\n\n",
    b"data: a\ndata: b\n\n",
    b"id: 7\r\ndata: crlf\r\n\r\n",
    b"data:nospace\rdata: cr\r\r",
    b"event: e\nretry: 5\nfoo: bar\ndata\n\n",
    b"data: \xc3\xa9t\xc3\xa9\n\n",
    b"data:  two spaces\n\n",
    b"id: a\0b\ndata: nul id ignored\n\n",
    b"\n\n",
]


def _reference(body: bytes) -> list[tuple[str, str, str]]:
    """What httpx-sse made of the body (the console skipped its empty-data dispatches)."""
    lines, decoder, out = SSELineDecoder(), SSEDecoder(), []
    for line in lines.decode(body.decode()) + lines.flush():
        sse = decoder.decode(line)
        if sse is not None and sse.data:
            out.append((sse.event, sse.id, sse.data))
    return out


def _decode(decoder: SseDecoder, body: bytes, sizes: list[int]) -> list[SseEvent | SseOversize]:
    out: list[SseEvent | SseOversize] = []
    at = 0
    for size in sizes:
        out += decoder.feed(body[at : at + size])
        at += size
    out += decoder.feed(body[at:])
    report = decoder.finish()
    return out if report is None else [*out, report]


@pytest.mark.slow
def test_any_chunking_gives_the_events_httpx_sse_gave() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        body = b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 12)))
        sizes = [rng.randint(1, 9) for _ in range(len(body))]
        got = _decode(SseDecoder(), body, sizes)
        assert [(e.event, e.id, e.data) for e in got if isinstance(e, SseEvent)] == _reference(body)
        assert not [e for e in got if isinstance(e, SseOversize)]


def test_a_leading_bom_is_skipped_even_split_across_chunks() -> None:
    body = b"\xef\xbb\xbfdata: x\n\n"
    for cut in range(1, 5):
        got = _decode(SseDecoder(), body, [cut])
        assert got == [SseEvent("message", "", "x")]


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 20])
def test_long_line_is_reported_with_its_size_and_never_held(chunk: int) -> None:
    decoder = SseDecoder(max_line_bytes=1000, max_event_bytes=1000)
    body = b"event: big\nid: 9\ndata: " + b"x" * 50_000 + b"\n\ndata: next\n\n"
    out: list[SseEvent | SseOversize] = []
    for at in range(0, len(body), chunk):
        out += decoder.feed(body[at : at + chunk])
        assert decoder.buffered <= 1000 + 1000
    assert out == [
        SseOversize("line", 50_006, 1000, "big", "9"),
        SseEvent("message", "9", "next"),
    ]


def test_event_over_the_cap_in_short_lines_is_reported_and_the_next_one_kept() -> None:
    decoder = SseDecoder(max_line_bytes=100, max_event_bytes=1000)
    line = b"data: " + b"y" * 90 + b"\n"  # 96 bytes: under the line cap
    out = decoder.feed(b"event: big\n" + line * 30 + b"\nevent: small\ndata: ok\n\n")
    size = 30 * 90 + 29  # the data with its line breaks, counted to the end though dropped
    assert out == [SseOversize("event", size, 1000, "big", ""), SseEvent("small", "", "ok")]
    assert decoder.buffered == 0


def test_event_exactly_at_the_caps_is_kept() -> None:
    decoder = SseDecoder(max_line_bytes=10, max_event_bytes=9)
    out = decoder.feed(b"data:1234\ndata:1234\n\n")  # "1234\n1234": 9 bytes, lines of 9
    assert out == [SseEvent("message", "", "1234\n1234")]


def test_stream_ending_inside_a_long_line_still_reports_it() -> None:
    decoder = SseDecoder(max_line_bytes=10)
    assert decoder.feed(b"data: " + b"z" * 100) == []
    assert decoder.finish() == SseOversize("line", 106, 10, "message", "")
    assert decoder.finish() is None  # told once


def test_cr_then_lf_in_the_next_chunk_is_one_line_break() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [SseEvent("message", "", "a")]
    assert decoder.feed(b"\ndata: b\n\n") == [SseEvent("message", "", "b")]
