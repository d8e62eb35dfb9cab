"""End to end with the kill sources: Simulator + Runtime over loopback, fake Discord at the end.

The R2Z2 poller must pass the same kill test as the WebSocket, a kill seen on both is notified
once, and the REST fallback fills in while the killstream socket is down.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.ingest.conftest import FAST
from tests.support import connected, wait_for
from wanderer_console.config.model import R2z2Settings, Settings
from wanderer_console.launch import demo_settings
from wanderer_console.runtime import Runtime
from wanderer_console.sim import Simulator
from wanderer_console.sim.r2z2 import FakeR2z2

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def _with(settings: Settings, **sections: Any) -> Settings:
    update = {
        name: getattr(settings, name).model_copy(update=values)
        for name, values in sections.items()
        if name != "r2z2"
    }
    if "r2z2" in sections:
        update["r2z2"] = R2z2Settings(**sections["r2z2"])
    return settings.model_copy(update=update)


def kill_messages(sim: Simulator, killmail_id: int) -> list[Any]:
    footer = f"Killmail ID: {killmail_id}"
    return [
        m
        for m in sim.discord.received
        for embed in m.body.get("embeds") or []
        if str((embed.get("footer") or {}).get("text", "")).startswith(footer)
    ]


@pytest.fixture
def sim_options() -> dict[str, Any]:
    fake = FakeR2z2(min_interval=0.02, miss_cooldown=0.3, ban_seconds=60.0)
    return {"seed": 3, "r2z2": fake, "killstream_rest": True}


async def _runtime(settings: Settings, tmp_path: Path) -> Runtime:
    runtime = Runtime(settings, data_dir=tmp_path)
    runtime.kills.r2z2_timing = FAST
    await runtime.start()
    return runtime


async def test_r2z2_passes_the_websocket_kill_test(sim: Simulator, tmp_path: Path) -> None:
    assert sim.r2z2 is not None
    settings = _with(
        demo_settings(sim, data_dir=tmp_path),
        killstream={"enabled": False},
        r2z2={"enabled": True, "url": sim.r2z2_url, "max_age_hours": 1.0},
    )
    runtime = await _runtime(settings, tmp_path)
    try:
        await connected(runtime, sources=2)  # the map stream and the R2Z2 poller
        assert runtime.kills.sockets == {}
        gen = sim.generator
        system_id = sorted(sim.tracked_system_ids)[0]
        system_name = gen.system(system_id).name
        km = gen.make_killmail(system_id=system_id, exclude_character_ids=sim.tracked_character_ids)
        sim.r2z2.publish(km)
        (kill,) = await wait_for(lambda: kill_messages(sim, km["killmail_id"]))
        assert kill.target == f"webhook:{sim.webhook_id('system-kills')}"
        embed = kill.body["embeds"][0]
        ship, place = embed["title"].split(" destroyed in ")
        assert place == system_name
        # R2Z2 carries the ESI killmail (ids only): names come from ESI through the cache.
        assert ship == km["victim"]["ship_name"]
        assert km["victim"]["character_name"] in embed["description"]
        assert embed["url"] == f"https://zkillboard.com/kill/{km['killmail_id']}/"
        assert embed["author"]["name"] == "Killmail"
        assert embed["author"]["url"] == embed["url"]
        assert embed["thumbnail"]["url"].startswith(
            f"https://images.evetech.net/types/{km['victim']['ship_type_id']}/render"
        )
        assert "Value: " in embed["description"]
        assert embed["timestamp"].startswith(km["kill_time"][:19])
        assert kill.body["allowed_mentions"] == {"parse": []}
        assert runtime.metrics.value("wc_events_received_total", source="r2z2") == 1
        assert sim.r2z2.count(429) == 0
        assert sim.r2z2.count(403) == 0
    finally:
        await runtime.stop()


async def test_the_same_kill_over_websocket_and_r2z2_is_notified_once(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.r2z2 is not None
    settings = _with(
        demo_settings(sim, data_dir=tmp_path),
        r2z2={"enabled": True, "url": sim.r2z2_url},
    )
    runtime = await _runtime(settings, tmp_path)
    try:
        await connected(runtime, sources=4)  # map, killstream systems + characters, R2Z2
        system_id = sorted(sim.tracked_system_ids)[0]
        km = sim.generator.make_killmail(system_id=system_id)
        sim.r2z2.publish(km)
        await sim.killstream.push_kill(km)
        await wait_for(lambda: kill_messages(sim, km["killmail_id"]))
        await wait_for(
            lambda: (
                runtime.metrics.value("wc_events_duplicate_total", source="r2z2")
                + runtime.metrics.value("wc_events_duplicate_total", source="killstream")
                >= 2
            )  # the socket sends it twice, R2Z2 once: two of three are duplicates
        )
        await runtime.drain(timeout=2.0)
        await asyncio.sleep(0.2)
        assert len(kill_messages(sim, km["killmail_id"])) == 1
    finally:
        await runtime.stop()


async def test_rest_fallback_while_the_killstream_socket_is_down(
    sim: Simulator, tmp_path: Path
) -> None:
    assert sim.killstream_rest is not None
    settings = _with(
        demo_settings(sim, data_dir=tmp_path),
        killstream={
            "rest_url": sim.killstream_rest_url,
            "fallback_after_seconds": 0.3,
            "fallback_interval_seconds": 0.2,
        },
    )
    runtime = await _runtime(settings, tmp_path)
    try:
        await connected(runtime, sources=3)
        assert runtime.kills.fallback is not None
        assert not runtime.kills.fallback.active
        port = int(sim.killstream.url.rsplit(":", 1)[1])
        await sim.killstream.stop()
        km = sim.generator.make_killmail(system_id=sorted(sim.tracked_system_ids)[1])
        await sim.killstream.push_kill(km)  # reaches nobody: only the REST API has it
        await wait_for(lambda: runtime.kills.fallback is not None and runtime.kills.fallback.active)
        await wait_for(lambda: kill_messages(sim, km["killmail_id"]))
        assert runtime.metrics.value("wc_events_received_total", source="fallback") == 1
        await sim.killstream.start(port=port)
        # Back on the socket: polling stops once the one backfill of the gap is done (the
        # rejoin's backfill is a request too, and may land after the socket is back).
        fallback = runtime.kills.fallback
        await wait_for(lambda: fallback.settled, timeout=20)
        polled = len(sim.killstream_rest.requests)
        await asyncio.sleep(0.5)
        assert len(sim.killstream_rest.requests) == polled
    finally:
        await runtime.stop()
