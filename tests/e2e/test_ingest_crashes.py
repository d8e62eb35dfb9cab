"""The ingest API across crashes and stops of a real engine process: a client posts events with
their ``event_id`` and retries each until it is answered ``accepted`` or ``duplicate``, while the
engine is killed (``kill -9``) or stopped (``SIGTERM``) at random moments and started again on the
same port. Every event must reach Discord once: none lost, none posted twice, none "accepted" twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_exactly_once import Engine
from tests.support import free_port, wait_for
from wanderer_console.sim import Simulator

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

CHANNEL = "100000000000000011"
EVENTS = 300


def _config(sim: Simulator, path: Path, port: int) -> Path:
    path.write_text(
        f"""
[console]
startup_suppression_seconds = 0
stop_grace_seconds = 5
[server]
enabled = true
port = {port}
[discord]
api_url = "{sim.discord_api_url}"
bot_token = "{sim.bot_token}"
[esi]
enabled = false
[killstream]
websocket_url = "{sim.killstream_url}"
[maps.home]
url = "{sim.map_url}"
slug = "{sim.map_slug}"
api_key = "{sim.map_api_key}"
[maps.home.discord]
system_channel_id = "{CHANNEL}"
"""
    )
    return path


def _add_tenant(config: Path, data: Path) -> str:
    out = subprocess.run(
        [
            *(sys.executable, "-m", "wanderer_console", "tenant", "add", "home"),
            *("--config", str(config), "--data-dir", str(data)),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return str(json.loads(out.stdout)["key"])


async def _post_until_answered(
    client: httpx.AsyncClient, key: str, event_id: str, answers: Counter[str]
) -> None:
    """One client's event: posted again after every failure (no answer, 5xx) until the engine
    says it has it."""
    body = {"event_id": event_id, "title": f"Ingest {event_id}", "notification_type": "system"}
    while True:
        try:
            response = await client.post(
                "/api/v1/events", json=body, headers={"authorization": f"Bearer {key}"}
            )
        except httpx.TransportError:
            answers["transport_error"] += 1
            await asyncio.sleep(0.05)  # the engine is down: a client's back-off
            continue
        if response.status_code == 200:
            status = response.json()["results"][0]["status"]
            answers[f"{event_id}:{status}"] += 1
            return
        assert response.status_code in (500, 502, 503), response.text
        answers[f"http_{response.status_code}"] += 1
        await asyncio.sleep(0.05)


async def _run(tmp_path: Path, signals: list[signal.Signals], seed: int) -> None:
    rng = random.Random(seed)
    sim = Simulator(seed=seed)
    sim.discord.answer_delay = 0.2
    await sim.start()
    port = free_port()
    config = _config(sim, tmp_path / "config.toml", port)
    data = tmp_path / "data"
    data.mkdir()
    engine = Engine(config, data)
    answers: Counter[str] = Counter()
    try:
        key = await asyncio.to_thread(_add_tenant, config, data)
        await engine.start()
        ids = [f"ev-{n}" for n in range(EVENTS)]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            lanes = [ids[lane::6] for lane in range(6)]

            async def lane(event_ids: list[str]) -> None:
                for event_id in event_ids:
                    await _post_until_answered(client, key, event_id, answers)
                    await asyncio.sleep(0.01)

            posting = asyncio.gather(*(lane(ids) for ids in lanes))
            for sig in signals:
                await asyncio.sleep(rng.uniform(0.1, 0.8))  # a random moment of the posting
                if posting.done():
                    break
                await engine.stop(sig)
                await engine.start()
            await asyncio.wait_for(posting, 120)
        expected = {f"Ingest {event_id}" for event_id in ids}

        def titles() -> Counter[str]:
            return Counter(
                str(embed.get("title"))
                for message in sim.discord.messages_for(f"channel:{CHANNEL}")
                for embed in message.body.get("embeds") or []
            )

        await wait_for(lambda: expected <= set(titles()), 120, "every event posted")
        await engine.stop(signal.SIGTERM)
    finally:
        engine.kill_now()
        await sim.stop()
    posted = titles()
    assert [t for t in expected if posted[t] != 1] == []  # none lost, none twice
    assert [a for a, n in answers.items() if a.endswith(":accepted") and n > 1] == []
    assert answers["transport_error"] > 0, "the stops should have landed while clients posted"


async def test_kill_9_at_random_moments_while_clients_retry_posts_each_event_once(
    tmp_path: Path,
) -> None:
    await _run(tmp_path, [signal.SIGKILL] * 6, seed=83)


async def test_sigterm_at_random_moments_while_clients_retry_posts_each_event_once(
    tmp_path: Path,
) -> None:
    await _run(tmp_path, [signal.SIGTERM] * 4, seed=84)
