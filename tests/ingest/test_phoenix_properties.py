"""Properties of the sans-IO Phoenix V2 codec (hypothesis): frames round-trip, garbage is a
:class:`FrameError` and nothing else."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wanderer_console.ingest.phoenix import (
    ChannelClosed,
    ChannelErrored,
    ChannelState,
    FrameError,
    PhoenixChannel,
    Push,
    Reply,
)

PROPERTY = settings(
    max_examples=150,
    database=None,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],  # a busy CI machine is not a failure
)

_TEXT = st.text(max_size=12)
# What orjson writes and reads back unchanged: 64-bit integers and finite floats.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    _TEXT,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
payloads = st.dictionaries(_TEXT, json_values, max_size=5)
_CONTROL = ("phx_reply", "phx_error", "phx_close", "phx_join", "phx_leave")
events = _TEXT.filter(lambda e: e not in _CONTROL) | st.sampled_from(["killmail_update"])
topics = st.text(min_size=1, max_size=20).filter(lambda t: t != "phoenix")


def joined(topic: str) -> PhoenixChannel:
    channel = PhoenixChannel(topic)
    join_ref = orjson.loads(channel.join({}))[0]
    reply = [join_ref, join_ref, topic, "phx_reply", {"status": "ok", "response": {}}]
    channel.receive(orjson.dumps(reply))
    assert channel.state is ChannelState.JOINED
    return channel


@pytest.mark.slow
@PROPERTY
@given(topic=topics, payload=payloads)
def test_join_frame_decodes_to_its_parts_and_the_ok_reply_joins(
    topic: str, payload: dict[str, Any]
) -> None:
    channel = PhoenixChannel(topic)
    frame = orjson.loads(channel.join(payload))
    assert frame == [channel.join_ref, channel.join_ref, topic, "phx_join", payload]
    assert channel.state.value == "joining"
    response = {"subscription_id": "s"}
    reply = channel.receive(
        orjson.dumps(
            [frame[0], frame[1], topic, "phx_reply", {"status": "ok", "response": response}]
        )
    )
    assert reply == Reply(frame[1], topic, "ok", response, True, False)
    assert channel.state is ChannelState.JOINED


@pytest.mark.slow
@PROPERTY
@given(topic=topics, event=events, payload=payloads, as_bytes=st.booleans())
def test_a_pushed_frame_read_back_is_the_same_push(
    topic: str, event: str, payload: dict[str, Any], as_bytes: bool
) -> None:
    channel = joined(topic)
    ref, frame = channel.push(event, payload)
    assert orjson.loads(frame) == [channel.join_ref, ref, topic, event, payload]
    echoed = channel.receive(frame.encode() if as_bytes else frame)
    assert echoed == Push(topic, event, payload)
    # A server push carries no ref of ours; the same payload comes out of it.
    server = orjson.dumps([None, None, topic, event, payload])
    assert channel.receive(server) == Push(topic, event, payload)


@pytest.mark.slow
@PROPERTY
@given(topic=topics, status=_TEXT, response=json_values)
def test_heartbeat_round_trip_clears_the_pending_flag(
    topic: str, status: str, response: Any
) -> None:
    channel = joined(topic)
    ref, frame = channel.heartbeat()
    assert orjson.loads(frame) == [None, ref, "phoenix", "heartbeat", {}]
    assert channel.heartbeat_pending
    body = {"status": status, "response": response}
    reply = channel.receive(orjson.dumps([None, ref, "phoenix", "phx_reply", body]))
    assert isinstance(reply, Reply)
    assert reply.is_heartbeat
    assert reply.response == (response if isinstance(response, dict) else {})
    assert not channel.heartbeat_pending


def _receive_only_frame_errors(channel: PhoenixChannel, frame: str | bytes) -> None:
    try:
        result = channel.receive(frame)
    except FrameError:
        return
    assert result is None or isinstance(result, Reply | Push | ChannelErrored | ChannelClosed)
    assert isinstance(channel.state, ChannelState)


@PROPERTY
@given(text=st.text(max_size=60))
def test_any_text_is_decoded_or_a_frame_error(text: str) -> None:
    _receive_only_frame_errors(joined("killmails:lobby"), text)


@PROPERTY
@given(raw=st.binary(max_size=60))
def test_any_bytes_are_decoded_or_a_frame_error(raw: bytes) -> None:
    _receive_only_frame_errors(joined("killmails:lobby"), raw)


@PROPERTY
@given(text=st.text(alphabet='[]{}",:0123456789.eE-+ntrufalsphx_ ', max_size=60))
def test_json_like_garbage_is_decoded_or_a_frame_error(text: str) -> None:
    _receive_only_frame_errors(joined("killmails:lobby"), text)


_FIELD = json_values | st.sampled_from(["1", "2", "killmails:lobby", "phoenix", *_CONTROL])


@PROPERTY
@given(frame=st.lists(_FIELD, min_size=0, max_size=7) | json_values)
def test_any_json_value_is_decoded_or_a_frame_error(frame: Any) -> None:
    channel = joined("killmails:lobby")
    text = orjson.dumps(frame)
    well_formed = (
        isinstance(frame, list)
        and len(frame) == 5
        and isinstance(frame[2], str)
        and isinstance(frame[3], str)
        and isinstance(frame[4], dict)
    )
    if well_formed:
        result = channel.receive(text)  # the documented shape is never refused
        assert result is None or isinstance(result, Reply | Push | ChannelErrored | ChannelClosed)
    else:
        with pytest.raises(FrameError):
            channel.receive(text)
