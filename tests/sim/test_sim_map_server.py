"""FakeMapServer over real sockets: SSE framing, backfill, keepalive, auth and REST shapes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.map_server import FakeMapServer
from wanderer_console.sim.server import AppServer
from wanderer_console.sim.ulid import is_valid_ulid

MAP_ID = "5d0f7c2e-8a41-4c55-9f0b-2b6c1e7d9a10"
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}", "Accept": "text/event-stream"}


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeMapServer, str]]:
    fake = FakeMapServer("demo", KEY, MAP_ID, keepalive_seconds=0.2, generator=DataGenerator(3))
    server = AppServer(fake.app, on_stop=fake.close)
    await server.start()
    try:
        yield fake, server.url
    finally:
        await server.stop()


async def read_frames(lines: AsyncIterator[str], count: int) -> list[dict[str, Any]]:
    """Collect ``count`` SSE frames (dicts with event/id/data or comment) from raw lines."""
    frames: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    async for line in lines:
        if line == "":
            if current:
                frames.append(current)
                current = {}
                if len(frames) >= count:
                    return frames
            continue
        if line.startswith(":"):
            current["comment"] = line[1:].strip()
            continue
        key, _, value = line.partition(": ")
        current[key] = value
    return frames


def url(base: str, path: str = "/api/maps/demo/events/stream") -> str:
    return base + path


async def test_connected_frame_then_live_event(served: tuple[FakeMapServer, str]) -> None:
    fake, base = served
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", url(base), headers=AUTH) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.aiter_lines()
        [connected] = await asyncio.wait_for(read_frames(lines, 1), 3)
        assert connected["event"] == "connected"
        assert is_valid_ulid(connected["id"])
        data = json.loads(connected["data"])
        assert data["map_id"] == MAP_ID
        assert data["server_time"].endswith("Z")

        envelope = fake.add_system(31002238, "J154624")
        [frame] = await asyncio.wait_for(read_frames(lines, 1), 3)
        assert frame["event"] == "add_system"
        assert frame["id"] == envelope["id"]
        body = json.loads(frame["data"])
        assert set(body) == {"id", "type", "map_id", "timestamp", "payload"}
        assert body["map_id"] == MAP_ID
        assert body["timestamp"].endswith("Z")
        assert "." in body["timestamp"]
        assert body["payload"]["solar_system_id"] == 31002238
        assert body["payload"]["name"] == "J154624"
        assert connected["id"] < frame["id"]
    assert fake.connect_log[0]["last_event_id"] is None


async def test_backfill_after_last_event_id(served: tuple[FakeMapServer, str]) -> None:
    fake, base = served
    first = fake.add_system(31000100)
    second = fake.add_character(2112000001, "Some Pilot")
    third = fake.add_rally()
    params = {"last_event_id": first["id"]}
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", url(base), headers=AUTH, params=params) as resp,
    ):
        frames = await asyncio.wait_for(read_frames(resp.aiter_lines(), 3), 3)
    assert [f["event"] for f in frames] == ["connected", "character_added", "rally_point_added"]
    assert [f["id"] for f in frames[1:]] == [second["id"], third["id"]]
    added = json.loads(frames[1]["data"])["payload"]
    assert set(added) == {"id", "name"}
    rally = json.loads(frames[2]["data"])["payload"]
    assert rally["character_eve_id"] == "2112000001"
    assert rally["solar_system_id"] == 31000100
    assert fake.connect_log[-1]["last_event_id"] == first["id"]


async def test_invalid_cursor_skips_backfill_and_filter(served: tuple[FakeMapServer, str]) -> None:
    fake, base = served
    fake.add_system(31000100)
    params = {"last_event_id": "not-a-ulid", "events": "rally_point_added,bogus"}
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", url(base), headers=AUTH, params=params) as resp,
    ):
        lines = resp.aiter_lines()
        [connected] = await asyncio.wait_for(read_frames(lines, 1), 3)
        assert connected["event"] == "connected"
        fake.add_system(31000101)  # filtered out
        fake.add_rally(31000101)
        frames = await asyncio.wait_for(read_frames(lines, 2), 3)
    events = [f.get("event") for f in frames if "event" in f]
    assert events[0] == "rally_point_added"
    assert "add_system" not in events


async def test_keepalive_comment(served: tuple[FakeMapServer, str]) -> None:
    _, base = served
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", url(base), headers=AUTH) as resp,
    ):
        frames = await asyncio.wait_for(read_frames(resp.aiter_lines(), 2), 3)
    assert frames[1] == {"comment": "keepalive"}


async def test_drop_connections_ends_stream(served: tuple[FakeMapServer, str]) -> None:
    fake, base = served
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", url(base), headers=AUTH) as resp,
    ):
        lines = resp.aiter_lines()
        await asyncio.wait_for(read_frames(lines, 1), 3)
        assert fake.open_streams == 1
        assert fake.drop_connections() == 1
        rest = await asyncio.wait_for(read_frames(lines, 100), 3)
        assert all("event" not in f for f in rest)
    for _ in range(50):
        if fake.open_streams == 0:
            break
        await asyncio.sleep(0.02)
    assert fake.open_streams == 0


async def test_auth_and_unknown_map(served: tuple[FakeMapServer, str]) -> None:
    _, base = served
    async with httpx.AsyncClient(timeout=5) as client:
        missing = await client.get(url(base))
        assert missing.status_code == 401
        assert "error" in missing.json()
        wrong = await client.get(url(base), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        query_token = await client.get(url(base), params={"token": KEY})
        assert query_token.status_code == 401
        unknown = await client.get(url(base, "/api/maps/other/events/stream"), headers=AUTH)
        assert unknown.status_code == 404
        assert unknown.json()["error"].startswith("Map not found")


async def test_rest_systems_and_tracked_characters(served: tuple[FakeMapServer, str]) -> None:
    fake, base = served
    gen = fake.generator
    pilot = gen.character()
    fake.seed([31002238, 30000142], [pilot])
    fake.add_system(31000777)
    fake.remove_system(30000142)
    headers = {"Authorization": f"Bearer {KEY}"}
    async with httpx.AsyncClient(timeout=5) as client:
        systems = (
            await client.get(url(base, f"/api/maps/{MAP_ID}/systems"), headers=headers)
        ).json()
        tracked = await client.get(url(base, "/api/maps/demo/tracked-characters"), headers=headers)
        info = await client.get(
            url(base, "/api/common/system-static-info"), params={"id": 31002238}, headers=headers
        )
    assert set(systems["data"]) == {"systems", "connections"}
    assert systems["data"]["connections"] == []
    ids = [s["solar_system_id"] for s in systems["data"]["systems"]]
    assert ids == [31002238, 31000777]
    system = systems["data"]["systems"][0]
    for key in ("id", "map_id", "name", "original_name", "custom_name", "temporary_name"):
        assert key in system
    assert system["status"] == 0
    assert system["locked"] is False
    assert system["visible"] is True
    assert system["map_id"] == MAP_ID
    [row] = tracked.json()["data"]
    char = row["character"]
    assert char["eve_id"] == str(pilot.eve_id)
    assert char["name"] == pilot.name
    assert char["corporation_id"] == pilot.corporation_id
    assert char["corporation_ticker"] == gen.tickers[pilot.corporation_id]
    assert set(char) >= {"alliance_id", "alliance_ticker"}
    data = info.json()["data"]
    assert data["solar_system_id"] == 31002238
    assert data["solar_system_name"] == gen.system(31002238).name
    for key in ("region_name", "system_class", "security", "class_title", "effect_name"):
        assert key in data
    assert isinstance(data["statics"], list)
    assert isinstance(data["is_shattered"], bool)


async def test_stop_ends_open_streams_promptly() -> None:
    fake = FakeMapServer("demo", KEY, MAP_ID, keepalive_seconds=30)
    server = AppServer(fake.app, on_stop=fake.close)
    await server.start()
    async with (
        httpx.AsyncClient(timeout=5) as client,
        client.stream("GET", url(server.url), headers=AUTH) as resp,
    ):
        await asyncio.wait_for(read_frames(resp.aiter_lines(), 1), 3)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(server.stop(), 4)
        assert loop.time() - started < 2.0
    assert not server.running


async def test_over_limit_and_restart_buffer_loss(served: tuple[FakeMapServer, str]) -> None:
    fake, base = served
    first = fake.add_system(31000100)
    fake.add_system(31000101)
    fake.over_limit = True
    async with httpx.AsyncClient(timeout=5) as client:
        resp = await client.get(url(base), headers=AUTH)
        assert resp.status_code == 200
        assert resp.text == ""
        fake.over_limit = False
        fake.clear_buffer()
        params = {"last_event_id": first["id"]}
        async with client.stream("GET", url(base), headers=AUTH, params=params) as stream:
            lines = stream.aiter_lines()
            frames = await asyncio.wait_for(read_frames(lines, 2), 3)
    assert frames[0]["event"] == "connected"
    assert frames[1] == {"comment": "keepalive"}


def test_map_kill_payload_is_flattened() -> None:
    fake = FakeMapServer("demo", KEY, MAP_ID, generator=DataGenerator(4))
    km = fake.generator.make_killmail(system_id=31002238)
    envelope = fake.publish_map_kill([km])
    payload = envelope["payload"]
    assert envelope["type"] == "map_kill"
    assert payload["type"] == "killmail_update"
    assert payload["solar_system_id"] == 31002238
    [flat] = payload["killmails"]
    assert flat["killmail_id"] == km["killmail_id"]
    assert flat["solar_system_id"] == 31002238
    assert flat["victim_char_id"] == km["victim"]["character_id"]
    assert flat["victim_ship_name"] == km["victim"]["ship_name"]
    assert flat["total_value"] == km["zkb"]["totalValue"]
    assert flat["zkb"]["totalValue"] == km["zkb"]["totalValue"]
    assert "final_blow_char_name" in flat
    assert flat["attacker_count"] == km["attacker_count"]
