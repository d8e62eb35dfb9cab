"""Properties of the bounded SSE decoder (hypothesis): chunking never matters, limits hold."""

from __future__ import annotations

import itertools

import pytest
from httpx_sse._decoders import SSEDecoder, SSELineDecoder
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wanderer_console.http.sse_decoder import SseDecoder, SseEvent, SseOversize

Output = list[SseEvent | SseOversize]

PROPERTY = settings(
    max_examples=150,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],  # a busy CI machine is not a failure
)

_BOM = b"\xef\xbb\xbf"
_BREAKS = st.sampled_from(["\n", "\r\n", "\r"])
# Field values: any text without a line break (a break would end the line early).
_VALUES = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=12
)
_NAMES = st.sampled_from(["data", "data", "data", "event", "id", "retry", "foo", ""])
# Raw pieces that stress the line splitter: field names, every line break, BOM, invalid UTF-8.
_PIECES = st.one_of(
    st.sampled_from(
        [
            *(b"data:", b"data: ", b"event: e", b"id: 1", b"id:\x00", b":"),
            *(b"\n", b"\r", b"\r\n", b"\n\n", _BOM, b"\xff", b"\xc3\xa9", b"x", b"xxxxxxxx"),
        ]
    ),
    st.binary(max_size=8),
)


@st.composite
def _line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["field", "field", "field", "bare", "comment", "blank"]))
    if kind == "blank":
        return ""
    if kind == "comment":
        return ":" + draw(_VALUES)
    name = draw(_NAMES)
    if kind == "bare":
        return name  # "data" alone: a field with an empty value
    space = draw(st.sampled_from(["", " ", "  "]))
    return f"{name}:{space}{draw(_VALUES)}"


@st.composite
def valid_streams(draw: st.DrawFn) -> str:
    """A well-formed event stream (no BOM): lines, each with its own kind of line break."""
    lines = draw(st.lists(_line(), max_size=25))
    text = "".join(line + draw(_BREAKS) for line in lines)
    if draw(st.booleans()):
        text += draw(_line())  # the stream may end inside a line
    return text


any_bytes = st.lists(_PIECES, max_size=40).map(b"".join)


@st.composite
def splits(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """``body`` cut at drawn points into non-empty chunks (as httpx hands them over)."""
    points = draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=len(body) // 2))
    bounds = [0, *sorted(p for p in points if 0 < p < len(body)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _run(decoder: SseDecoder, chunks: list[bytes]) -> Output:
    """Feed every chunk, then finish; the memory bound must hold after every step."""
    out: Output = []
    for chunk in chunks:
        out += decoder.feed(chunk)
        assert decoder.buffered <= decoder.max_line_bytes + decoder.max_event_bytes
    report = decoder.finish()
    assert decoder.buffered == 0
    return out if report is None else [*out, report]


def _reference(text: str) -> list[tuple[str, str, str]]:
    """What httpx-sse makes of the stream (the console never dispatched empty data)."""
    lines, decoder, out = SSELineDecoder(), SSEDecoder(), []
    for line in lines.decode(text) + lines.flush():
        sse = decoder.decode(line)
        if sse is not None and sse.data:
            out.append((sse.event, sse.id, sse.data))
    return out


def _assert_within_limits(out: Output, decoder: SseDecoder) -> None:
    """Every event fits both limits; every report names a limit it really broke."""
    for item in out:
        # A decoded character comes from at least one byte: characters bound the bytes kept.
        assert item.event == "message" or len(item.event) <= decoder.max_line_bytes
        assert len(item.id) <= decoder.max_line_bytes
        if isinstance(item, SseEvent):
            assert 0 < len(item.data) <= decoder.max_event_bytes
        else:
            assert item.reason in ("line", "event")
            expected = decoder.max_line_bytes if item.reason == "line" else decoder.max_event_bytes
            assert item.limit == expected
            assert item.size > item.limit


@pytest.mark.slow
@PROPERTY
@given(data=st.data())
def test_any_split_of_a_valid_stream_gives_the_events_httpx_sse_gives(data: st.DataObject) -> None:
    text = data.draw(valid_streams(), label="stream")
    body = text.encode()
    whole = _run(SseDecoder(), [body])
    assert _run(SseDecoder(), data.draw(splits(body), label="chunks")) == whole
    assert _run(SseDecoder(), [body[i : i + 1] for i in range(len(body))]) == whole
    assert [(e.event, e.id, e.data) for e in whole if isinstance(e, SseEvent)] == _reference(text)
    assert not [e for e in whole if isinstance(e, SseOversize)]


@pytest.mark.slow
@PROPERTY
@given(data=st.data())
def test_a_leading_bom_changes_nothing_wherever_the_chunks_split_it(data: st.DataObject) -> None:
    text = data.draw(valid_streams(), label="stream")
    plain = _run(SseDecoder(), [text.encode()])
    body = _BOM + text.encode()
    assert _run(SseDecoder(), data.draw(splits(body), label="chunks")) == plain


@PROPERTY
@given(
    body=any_bytes,
    max_line=st.integers(1, 40),
    max_event=st.integers(1, 60),
    data=st.data(),
)
def test_limits_hold_and_chunking_does_not_matter_for_any_bytes(
    body: bytes, max_line: int, max_event: int, data: st.DataObject
) -> None:
    whole = _run(SseDecoder(max_line, max_event), [body])
    _assert_within_limits(whole, SseDecoder(max_line, max_event))
    split = _run(SseDecoder(max_line, max_event), data.draw(splits(body), label="chunks"))
    assert split == whole


@pytest.mark.slow
@PROPERTY
@given(text=valid_streams(), max_line=st.integers(1, 30), max_event=st.integers(1, 40))
def test_kept_events_of_valid_text_fit_the_byte_limits(
    text: str, max_line: int, max_event: int
) -> None:
    out = _run(SseDecoder(max_line, max_event), [text.encode()])
    for item in out:
        if isinstance(item, SseEvent):
            assert len(item.data.encode()) <= max_event
            assert item.event == "message" or len(item.event.encode()) <= max_line
            assert len(item.id.encode()) <= max_line


@PROPERTY
@given(body=any_bytes)
def test_limits_larger_than_the_body_never_drop_anything(body: bytes) -> None:
    size = max(1, len(body))
    assert _run(SseDecoder(size, size), [body]) == _run(SseDecoder(), [body])
    assert not [e for e in _run(SseDecoder(size, size), [body]) if isinstance(e, SseOversize)]


@PROPERTY
@given(text=valid_streams(), empties=st.lists(st.integers(0, 10_000), max_size=4))
@example(text="data: a\r\ndata: b\n\n", empties=[8])
def test_empty_chunks_change_nothing(text: str, empties: list[int]) -> None:
    body = text.encode()
    chunks: list[bytes] = []
    at = 0
    for point in sorted({p % (len(body) + 1) for p in empties}):
        chunks += [body[at:point], b""]
        at = point
    chunks.append(body[at:])
    assert _run(SseDecoder(), chunks) == _run(SseDecoder(), [body])
