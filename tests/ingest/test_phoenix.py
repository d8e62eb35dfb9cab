"""The sans-IO Phoenix V2 core: frames, refs, join state, heartbeats."""

from __future__ import annotations

import json

import pytest

from wanderer_console.ingest.phoenix import (
    ChannelClosed,
    ChannelErrored,
    ChannelState,
    FrameError,
    PhoenixChannel,
    Push,
    Reply,
)

TOPIC = "killmails:lobby"


def joined() -> PhoenixChannel:
    channel = PhoenixChannel(TOPIC)
    frame = json.loads(channel.join({"systems": [31002238]}))
    channel.receive(
        json.dumps(
            [
                frame[0],
                frame[1],
                TOPIC,
                "phx_reply",
                {"status": "ok", "response": {"subscription_id": "x"}},
            ]
        )
    )
    return channel


def test_join_frame_is_a_v2_array() -> None:
    channel = PhoenixChannel(TOPIC)
    frame = json.loads(channel.join({"systems": [1, 2]}))
    assert frame == ["1", "1", TOPIC, "phx_join", {"systems": [1, 2]}]
    assert channel.state is ChannelState.JOINING


def test_join_reply_ok_and_error() -> None:
    assert joined().state is ChannelState.JOINED
    channel = PhoenixChannel(TOPIC)
    channel.join({})
    reply = channel.receive(
        '["1","1","killmails:lobby","phx_reply",{"status":"error","response":{"reason":"x"}}]'
    )
    assert isinstance(reply, Reply)
    assert reply.is_join
    assert reply.response == {"reason": "x"}
    assert channel.state is ChannelState.ERRORED


def test_refs_are_unique_and_pushes_carry_the_join_ref() -> None:
    channel = joined()
    ref_a, frame_a = channel.push("subscribe_systems", {"systems": [5]})
    ref_b, _ = channel.heartbeat()
    assert ref_a != ref_b
    assert json.loads(frame_a)[:4] == ["1", ref_a, TOPIC, "subscribe_systems"]


def test_push_before_join_is_refused() -> None:
    with pytest.raises(RuntimeError, match="closed"):
        PhoenixChannel(TOPIC).push("subscribe_systems", {})


def test_heartbeat_pending_until_its_reply() -> None:
    channel = joined()
    ref, frame = channel.heartbeat()
    assert json.loads(frame) == [None, ref, "phoenix", "heartbeat", {}]
    assert channel.heartbeat_pending
    channel.receive(json.dumps([None, "999", "phoenix", "phx_reply", {"status": "ok"}]))
    assert channel.heartbeat_pending  # a reply to another ref does not count
    reply = channel.receive(json.dumps([None, ref, "phoenix", "phx_reply", {"status": "ok"}]))
    assert isinstance(reply, Reply)
    assert reply.is_heartbeat
    assert not channel.heartbeat_pending


def test_pushes_errors_and_closes() -> None:
    channel = joined()
    push = channel.receive(json.dumps(["1", None, TOPIC, "killmail_update", {"killmails": []}]))
    assert push == Push(TOPIC, "killmail_update", {"killmails": []})
    assert channel.receive(json.dumps(["1", "1", TOPIC, "phx_error", {}])) == ChannelErrored(TOPIC)
    assert channel.state is ChannelState.ERRORED
    channel.join({})
    assert channel.receive(json.dumps(["1", "1", TOPIC, "phx_close", {}])) is None  # stale join
    close = channel.receive(
        json.dumps([channel.join_ref, channel.join_ref, TOPIC, "phx_close", {}])
    )
    assert close == ChannelClosed(TOPIC)


def test_broadcast_fast_lane_and_other_topics() -> None:
    channel = joined()
    assert isinstance(channel.receive(json.dumps([None, None, TOPIC, "killmail_update", {}])), Push)
    assert channel.receive(json.dumps(["1", None, "other:topic", "x", {}])) is None


@pytest.mark.parametrize(
    "frame",
    ["not json", "{}", "[1,2,3]", '["1","1",5,"x",{}]', '["1","1","t","x",[]]'],
)
def test_malformed_frames_raise_frame_error(frame: str) -> None:
    with pytest.raises(FrameError):
        joined().receive(frame)


def test_reset_forgets_the_join() -> None:
    channel = joined()
    channel.heartbeat()
    channel.reset()
    assert channel.state is ChannelState.CLOSED
    assert channel.join_ref is None
    assert not channel.heartbeat_pending
    assert json.loads(channel.join({}))[0] not in {"1"}  # refs keep increasing
