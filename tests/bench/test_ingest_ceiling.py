"""The ingest ceiling parses the very bytes the console's socket got, and stores every kill."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect

from wanderer_console.bench.harness import kill_frame
from wanderer_console.bench.ingest import client_side, measure_ceiling
from wanderer_console.sim.generator import DataGenerator
from wanderer_console.sim.killstream import FakeKillstream

pytestmark = pytest.mark.timeout(30)


async def test_ceiling_decodes_the_wire_frames_the_console_receives(tmp_path: Path) -> None:
    killstream = FakeKillstream()
    await killstream.start()
    generator = DataGenerator(5)
    kills = [generator.make_killmail(system_id=30000142) for _ in range(40)]
    frames = [kill_frame(kill) for kill in kills]
    try:
        async with connect(f"{killstream.url}/socket/websocket?vsn=2.0.0") as ws:
            join = ["1", "1", "killmails:lobby", "phx_join", {"systems": [30000142]}]
            await ws.send(orjson.dumps(join).decode())
            await ws.recv()  # the join reply
            wires = killstream.wire_frames(frames)
            (server, wire), *_ = wires.items()
            assert killstream.write_wire(wires) == 1
            # The client gets the frames compressed, and reads them back as the same text.
            received = [await ws.recv() for _ in frames]
            assert received == frames
            extensions = client_side(server.protocol.extensions)
    finally:
        await killstream.stop()
    assert len(wire) < sum(len(f) for f in frames)  # permessage-deflate on the wire
    seconds = measure_ceiling(wire, len(frames), extensions, tmp_path / "ceiling.db")
    assert seconds > 0
    conn = sqlite3.connect(tmp_path / "ceiling.db")
    ids = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    conn.close()
    assert ids == {f"kill:{kill['killmail_id']}" for kill in kills}
