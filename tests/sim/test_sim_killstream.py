"""FakeKillstream over a real WebSocket: Phoenix V2 frames, join rules, preload, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream

LOBBY = "killmails:lobby"
J_SYSTEM = 31002238
K_SYSTEM = 30000142


@pytest.fixture
async def ks() -> AsyncIterator[FakeKillstream]:
    fake = FakeKillstream()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def gen() -> DataGenerator:
    return DataGenerator(5)


def socket_url(fake: FakeKillstream) -> str:
    return f"{fake.url}/socket/websocket?vsn=2.0.0&client_identifier=test%20client%21"


async def send(ws: ClientConnection, frame: list[Any]) -> None:
    await ws.send(json.dumps(frame))


async def recv(ws: ClientConnection, timeout: float = 2.0) -> list[Any]:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    frame = json.loads(raw)
    assert isinstance(frame, list)
    assert len(frame) == 5
    return frame


async def no_frame(ws: ClientConnection, timeout: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        return True
    return False


async def join(ws: ClientConnection, payload: dict[str, Any], ref: str = "1") -> list[Any]:
    await send(ws, [ref, ref, LOBBY, "phx_join", payload])
    return await recv(ws)


async def test_heartbeat_and_join_reply(ks: FakeKillstream) -> None:
    async with connect(socket_url(ks)) as ws:
        await send(ws, [None, "7", "phoenix", "heartbeat", {}])
        assert await recv(ws) == [
            None,
            "7",
            "phoenix",
            "phx_reply",
            {"status": "ok", "response": {}},
        ]
        reply = await join(ws, {"systems": [J_SYSTEM, K_SYSTEM, J_SYSTEM], "character_ids": []})
        assert reply[:4] == ["1", "1", LOBBY, "phx_reply"]
        assert reply[4]["status"] == "ok"
        response = reply[4]["response"]
        assert response["subscribed_systems"] == [J_SYSTEM, K_SYSTEM]
        assert response["subscribed_characters"] == []
        assert response["status"] == "connected"
        assert len(response["subscription_id"]) == 22
        await send(ws, ["1", "2", LOBBY, "get_status", {}])
        status = (await recv(ws))[4]["response"]
        assert status["subscription_id"] == response["subscription_id"]
        assert set(status) >= {"connected_at", "user_id", "subscribed_systems"}
    assert ks.heartbeats == 1
    assert ks.connections == 1
    assert ks.joins[0]["systems"] == [J_SYSTEM, K_SYSTEM, J_SYSTEM]
    assert ks.client_identifiers == ["test_client_"]


async def test_withheld_heartbeat_gets_no_reply(ks: FakeKillstream) -> None:
    ks.withhold_heartbeats = True
    async with connect(socket_url(ks)) as ws:
        await send(ws, [None, "1", "phoenix", "heartbeat", {}])
        assert await no_frame(ws)
    assert ks.heartbeats == 1


@pytest.mark.slow
async def test_preload_then_realtime_twice(ks: FakeKillstream, gen: DataGenerator) -> None:
    old = [gen.make_killmail(system_id=J_SYSTEM) for _ in range(7)]
    for kill in old:
        await ks.push_kill(kill)  # nobody connected: only remembered for preload
    async with connect(socket_url(ks)) as ws:
        await join(ws, {"systems": [J_SYSTEM, K_SYSTEM]})
        preload = await recv(ws)
        assert preload[0] == "1"
        assert preload[1] is None
        assert preload[3] == "killmail_update"
        assert preload[4]["preload"] is True
        assert preload[4]["system_id"] == J_SYSTEM
        ids = [k["killmail_id"] for k in preload[4]["killmails"]]
        assert ids == [k["killmail_id"] for k in old[-5:]]
        assert await no_frame(ws)  # no kills in K_SYSTEM, so no second preload frame

        live = gen.make_killmail(system_id=K_SYSTEM)
        assert await ks.push_kill(live) == 1
        first, second = await recv(ws), await recv(ws)
        assert first == second
        assert first[4]["preload"] is False
        assert first[4]["killmails"] == [live]
        assert first[4]["timestamp"].endswith("Z")
        await ks.push_kill(gen.make_killmail(system_id=31000100))  # not subscribed
        assert await no_frame(ws)


async def test_character_only_subscription(ks: FakeKillstream, gen: DataGenerator) -> None:
    pilot = gen.character()
    async with connect(socket_url(ks)) as ws:
        await join(ws, {"character_ids": [pilot.eve_id]})
        anywhere = gen.make_killmail(system_id=30002187, attacker_character_ids=[pilot.eve_id])
        await ks.push_kill(anywhere)
        frame = await recv(ws)
        assert frame[4]["killmails"][0]["killmail_id"] == anywhere["killmail_id"]
        await recv(ws)  # duplicate
        other = gen.make_killmail(system_id=30002187, exclude_character_ids=[pilot.eve_id])
        await ks.push_kill(other)
        assert await no_frame(ws)


async def test_subscribe_and_unsubscribe(ks: FakeKillstream, gen: DataGenerator) -> None:
    await ks.push_kill(gen.make_killmail(system_id=31000100))
    async with connect(socket_url(ks)) as ws:
        await join(ws, {"systems": [J_SYSTEM]})
        await send(ws, ["1", "2", LOBBY, "subscribe_systems", {"systems": [31000100]}])
        reply = await recv(ws)
        assert reply[4] == {
            "status": "ok",
            "response": {"subscribed_systems": [J_SYSTEM, 31000100]},
        }
        preload = await recv(ws)
        assert preload[4]["preload"] is True
        assert preload[4]["system_id"] == 31000100
        await send(ws, ["1", "3", LOBBY, "subscribe_systems", {"systems": [J_SYSTEM]}])
        again = (await recv(ws))[4]["response"]
        assert again == {"message": "Already subscribed to all requested systems"}
        await send(ws, ["1", "4", LOBBY, "unsubscribe_systems", {"systems": [J_SYSTEM]}])
        assert (await recv(ws))[4]["response"] == {"subscribed_systems": [31000100]}
        await send(ws, ["1", "5", LOBBY, "subscribe_characters", {"character_ids": [2112000001]}])
        reply = (await recv(ws))[4]["response"]
        assert reply == {"subscribed_characters": [2112000001]}


async def test_unknown_event_crashes_channel(ks: FakeKillstream, gen: DataGenerator) -> None:
    async with connect(socket_url(ks)) as ws:
        await join(ws, {"systems": [J_SYSTEM]})
        await send(ws, ["1", "2", LOBBY, "update_subscriptions", {}])
        assert await recv(ws) == ["1", "1", LOBBY, "phx_error", {}]
        await ks.push_kill(gen.make_killmail(system_id=J_SYSTEM))
        assert await no_frame(ws)
        # Invalid ids on subscribe also crash the channel (§3.4).
        reply = await join(ws, {"systems": [K_SYSTEM]}, ref="3")
        assert reply[4]["status"] == "ok"
        await send(ws, ["3", "4", LOBBY, "subscribe_systems", {"systems": [0]}])
        assert (await recv(ws))[3] == "phx_error"


async def test_validation_errors_and_unmatched_topic(ks: FakeKillstream) -> None:
    async with connect(socket_url(ks)) as ws:
        reply = await join(ws, {"systems": [0, 31000001]})
        assert reply[4]["status"] == "error"
        assert reply[4]["response"]["reason"].startswith("[validation:invalid_system_ids]")
        reply = await join(ws, {"systems": ["x"]}, ref="2")
        assert reply[4]["response"]["reason"].startswith("[validation:non_integer_system_ids]")
        reply = await join(ws, {"character_ids": [5]}, ref="3")
        assert reply[4]["response"]["reason"].startswith("[validation:invalid_character_ids]")
        reply = await join(ws, {"systems": list(range(1, 10_002))}, ref="4")
        assert reply[4]["response"]["reason"].startswith("[validation:too_many_systems]")
        reply = await join(ws, {"systems": "31000001", "character_ids": [2112000001]}, ref="5")
        assert reply[4]["response"] == {"reason": "join crashed"}
        reply = await join(ws, {"systems": None}, ref="6")
        assert reply[4]["status"] == "ok"
        assert reply[4]["response"]["subscribed_systems"] == []
        await send(ws, [None, "9", "other:topic", "phx_join", {}])
        unmatched = await recv(ws)
        assert unmatched == [
            None,
            "9",
            "other:topic",
            "phx_reply",
            {"status": "error", "response": {"reason": "unmatched topic"}},
        ]


async def test_double_join_closes_old_join(ks: FakeKillstream) -> None:
    async with connect(socket_url(ks)) as ws:
        await join(ws, {"systems": [J_SYSTEM]})
        await send(ws, ["2", "2", LOBBY, "phx_join", {"systems": [K_SYSTEM]}])
        assert await recv(ws) == ["1", "1", LOBBY, "phx_close", {}]
        reply = await recv(ws)
        assert reply[:2] == ["2", "2"]
        assert reply[4]["response"]["subscribed_systems"] == [K_SYSTEM]


async def test_fault_injection(ks: FakeKillstream) -> None:
    async with connect(socket_url(ks)) as ws:
        await join(ws, {"systems": [J_SYSTEM]})
        assert await ks.send_phx_close() == 1
        assert await recv(ws) == ["1", "1", LOBBY, "phx_close", {}]
        await join(ws, {"systems": [J_SYSTEM]}, ref="2")
        assert await ks.send_phx_error() == 1
        assert await recv(ws) == ["2", "2", LOBBY, "phx_error", {}]
        assert await ks.drop_connections() == 1
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)


async def test_wrong_path_is_404(ks: FakeKillstream) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{ks.url}/socket/other"):
            pass
    assert info.value.response.status_code == 404
