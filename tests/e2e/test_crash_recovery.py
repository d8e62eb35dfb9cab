"""``kill -9`` during delivery, then a restart: everything is delivered, nothing confirmed twice."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.support import headless_config, start_headless, wait_for
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

KILLS = 200


def _outbox(db: Path) -> dict[str, list[str]]:
    """Embeds (as canonical JSON) of the outbox rows per status, read beside the running engine."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT status, body FROM outbox").fetchall()
    finally:
        conn.close()
    out: dict[str, list[str]] = {}
    for status, body in rows:
        for embed in json.loads(body)["embeds"]:
            out.setdefault(status, []).append(json.dumps(embed, sort_keys=True))
    return out


async def test_kill_9_during_delivery_loses_nothing_and_repeats_nothing_confirmed(
    tmp_path: Path,
) -> None:
    async with Simulator(seed=11) as sim:
        config = headless_config(sim, tmp_path / "config.toml")
        data = tmp_path / "data"
        db = data / "wanderer-console.db"
        first = await start_headless(config, data)
        try:
            await wait_for(lambda: sim.killstream.joined_clients >= 2, timeout=20)
            tracked = sorted(sim.tracked_system_ids)
            for i in range(KILLS):
                await sim.killstream.push_kill(
                    sim.generator.make_killmail(system_id=tracked[i % 5])
                )
            # Every kill is in the outbox before the crash; delivery is still under way.
            await wait_for(lambda: db.exists() and sum(map(len, _outbox(db).values())) == KILLS, 20)
            await wait_for(lambda: len(_outbox(db).get("sent", [])) >= 20, 20)
            first.send_signal(signal.SIGKILL)
            await first.wait()
        finally:
            if first.returncode is None:
                first.kill()
        confirmed = set(_outbox(db).get("sent", []))
        assert 20 <= len(confirmed) < KILLS, "the crash should land mid-delivery"
        received_before = len(sim.discord.received)

        second = await start_headless(config, data)
        try:
            await wait_for(lambda: set(_outbox(db)) == {"sent"}, timeout=60)
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(second.communicate(), timeout=20)
        assert second.returncode == 0, err.decode()

        after = [
            json.dumps(embed, sort_keys=True)
            for message in sim.discord.received[received_before:]
            for embed in message.body["embeds"]
        ]
        assert confirmed.isdisjoint(after), "a notification Discord confirmed was sent again"
        everything = [
            json.dumps(embed, sort_keys=True)
            for message in sim.discord.received
            for embed in message.body["embeds"]
        ]
        footers = {json.loads(e)["footer"]["text"].split()[2] for e in everything}
        assert len(footers) == KILLS  # every kill delivered
        # At most the one message in flight at the crash can have been delivered twice.
        assert len(everything) - len(set(everything)) <= 10
